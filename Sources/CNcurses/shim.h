/*
 * ncursesw for ummutop (Debian: libncurses-dev; pkg-config ncursesw).
 * The wide-character API is enabled so UTF-8 strings draw correctly; the
 * inline helpers expose what curses.h only has as macros or globals, which
 * Swift cannot import.
 */
#ifndef UMMU_CNCURSES_SHIM_H
#define UMMU_CNCURSES_SHIM_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <stdlib.h>

static inline WINDOW *ummu_stdscr(void) { return stdscr; }
static inline FILE *ummu_stdout(void) { return stdout; }
static inline FILE *ummu_stdin(void) { return stdin; }
static inline int ummu_lines(void) { return LINES; }
static inline int ummu_cols(void) { return COLS; }
static inline int ummu_attr_bold(void) { return (int)A_BOLD; }
static inline int ummu_attr_reverse(void) { return (int)A_REVERSE; }
static inline int ummu_attr_dim(void) { return (int)A_DIM; }
static inline int ummu_color_pair(short n) { return (int)COLOR_PAIR(n); }
static inline int ummu_key_resize(void) { return KEY_RESIZE; }
static inline int ummu_key_up(void) { return KEY_UP; }
static inline int ummu_key_down(void) { return KEY_DOWN; }
static inline int ummu_key_ppage(void) { return KEY_PPAGE; }
static inline int ummu_key_npage(void) { return KEY_NPAGE; }
static inline int ummu_key_home(void) { return KEY_HOME; }
static inline int ummu_key_backspace(void) { return KEY_BACKSPACE; }
static inline int ummu_key_enter(void) { return KEY_ENTER; }
static inline int ummu_key_f(int n) { return KEY_F(n); }

/* True when the locale's charset is UTF-8 (after setlocale). */
static inline int ummu_utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);

	return cs && (cs[0] == 'U' || cs[0] == 'u') && (cs[1] == 'T' || cs[1] == 't') &&
	       (cs[2] == 'F' || cs[2] == 'f');
}

#endif
