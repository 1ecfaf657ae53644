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
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

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

/*
 * Terminal restore on a crash signal. The curses screen is left only by
 * endwin(), which is not async-signal-safe: a signal that kills ummutop
 * (SIGQUIT, a fault, abort(), a Swift trap: ud2 -> SIGILL on x86_64, brk ->
 * SIGTRAP on arm64) would leave the terminal raw, without echo, on the
 * alternate screen with the cursor hidden. So, while the screen is up:
 *
 *   ummu_restore_save(fd)     before newterm: the tty's modes (tcgetattr);
 *   ummu_restore_install()    after newterm: the bytes that leave curses
 *                             mode, from terminfo (sgr0, cnorm, rmkx,
 *                             rmcup; an absent one is left out), and a
 *                             handler for ummu_restore_signals;
 *   ummu_restore_remove()     after endwin: the previous actions back.
 *
 * The handler does only async-signal-safe things: write() the bytes,
 * tcsetattr() the saved modes, call the handler that was there before
 * if there was one (a Swift runtime's backtracer), then sigaction() the
 * default action and let the signal happen again: a fault the kernel
 * raised recurs when the handler returns, anything sent (kill, raise,
 * abort) is raised again. So the process ends by the signal as it would
 * have without ummutop's handler, core dump and exit status included;
 * SIGQUIT too (Ctrl-\ is not a clean exit, q is). SA_ONSTACK with an
 * alternate stack: it runs after a stack overflow too. SIGINT, SIGTERM
 * and SIGHUP are not here: the caller's signalfd ends the main loop and
 * endwin() runs.
 *
 * The state is one weak (so: one per program, whatever the number of
 * Swift files including this header) structure, filled before the
 * handlers are installed.
 */
#define UMMU_RESTORE_NSIG 7
#define UMMU_RESTORE_MAX 256

struct ummu_restore {
	int fd;              /* the tty; -1: nothing saved */
	int installed;
	struct termios saved; /* its modes before curses */
	size_t len;
	char seq[UMMU_RESTORE_MAX];
	struct sigaction old[UMMU_RESTORE_NSIG];
	int hooked[UMMU_RESTORE_NSIG];
	void *stack;          /* our alternate stack, NULL: none installed */
};

__attribute__((weak)) struct ummu_restore ummu_restore_state = { .fd = -1 };

static const int ummu_restore_signals[UMMU_RESTORE_NSIG] = {
	SIGQUIT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT,
};

/* Saves the modes of the terminal fd (before newterm); not a tty: no
 * restore. */
static inline void ummu_restore_save(int fd)
{
	struct ummu_restore *r = &ummu_restore_state;

	if (r->installed)
		return;
	r->fd = tcgetattr(fd, &r->saved) == 0 ? fd : -1;
}

/* Appends terminfo string capability `name` without its $<..> padding. */
static inline void ummu_restore_add_cap(const char *name)
{
	struct ummu_restore *r = &ummu_restore_state;
	const char *s = tigetstr(name);
	size_t n = 0;
	char buf[UMMU_RESTORE_MAX];

	if (s == NULL || s == (const char *)-1)
		return;
	for (; *s && n < sizeof(buf); s++) {
		if (s[0] == '$' && s[1] == '<') {
			const char *e = s + 2;

			while (*e && ((*e >= '0' && *e <= '9') || *e == '.' || *e == '*' || *e == '/'))
				e++;
			if (*e == '>') {
				s = e;
				continue;
			}
		}
		buf[n++] = *s;
	}
	if (*s || r->len + n > sizeof(r->seq))
		return; /* too long: left out rather than cut */
	for (size_t i = 0; i < n; i++)
		r->seq[r->len + i] = buf[i];
	r->len += n;
}

/* Async-signal-safe: the bytes, then the saved modes. */
static inline void ummu_restore_terminal(const struct ummu_restore *r)
{
	size_t off = 0;

	if (r->fd < 0)
		return;
	while (off < r->len) {
		ssize_t w = write(r->fd, r->seq + off, r->len - off);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else
			break;
	}
	tcsetattr(r->fd, TCSANOW, &r->saved);
}

static inline void ummu_restore_handler(int sig, siginfo_t *info, void *context)
{
	struct ummu_restore *r = &ummu_restore_state;
	struct sigaction dfl;
	int saved_errno = errno;

	ummu_restore_terminal(r);
	/* The handler that was there before ours, if any (a dynamically linked
	 * Swift runtime's crash reporter, say), with this signal's own siginfo
	 * and context. */
	for (int i = 0; i < UMMU_RESTORE_NSIG; i++) {
		const struct sigaction *old = &r->old[i];

		if (ummu_restore_signals[i] != sig || !r->hooked[i])
			continue;
		if (old->sa_flags & SA_SIGINFO) {
			if (old->sa_sigaction != NULL)
				old->sa_sigaction(sig, info, context);
		} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
			old->sa_handler(sig);
		}
	}
	/* Then the default action: the process ends by the signal. A fault
	 * the kernel raised (si_code > 0) for the instruction recurs when the
	 * handler returns, with the fault's siginfo; anything else (kill,
	 * raise, abort, a trap's SIGTRAP, which would not recur) is raised
	 * again, blocked until the handler returns. */
	dfl.sa_handler = SIG_DFL;
	dfl.sa_flags = 0;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	if (!(info != NULL && info->si_code > 0 &&
	      (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)))
		raise(sig);
	errno = saved_errno;
}

/* Builds the bytes (after newterm: terminfo is loaded) and installs the
 * handler for each signal not ignored. Nothing without a saved tty. */
static inline void ummu_restore_install(void)
{
	struct ummu_restore *r = &ummu_restore_state;
	size_t size = 65536;
	stack_t cur;

	if (r->installed || r->fd < 0)
		return;
	r->len = 0;
	ummu_restore_add_cap("sgr0");
	ummu_restore_add_cap("cnorm");
	ummu_restore_add_cap("rmkx");
	ummu_restore_add_cap("rmcup");
	/* An alternate stack for this (the only) thread, unless one is set. */
	r->stack = NULL;
	if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
#ifdef _SC_SIGSTKSZ
		long min = sysconf(_SC_SIGSTKSZ);

		if (min > 0 && (size_t)min > size)
			size = (size_t)min;
#endif
		stack_t st = { .ss_sp = malloc(size), .ss_flags = 0, .ss_size = size };

		if (st.ss_sp != NULL && sigaltstack(&st, NULL) == 0)
			r->stack = st.ss_sp;
		else
			free(st.ss_sp);
	}
	for (int i = 0; i < UMMU_RESTORE_NSIG; i++) {
		struct sigaction sa;

		r->hooked[i] = 0;
		if (sigaction(ummu_restore_signals[i], NULL, &r->old[i]) != 0 ||
		    (!(r->old[i].sa_flags & SA_SIGINFO) && r->old[i].sa_handler == SIG_IGN))
			continue; /* ignored (SIGQUIT under nohup, say): stays so */
		sa.sa_sigaction = ummu_restore_handler;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
		r->hooked[i] = sigaction(ummu_restore_signals[i], &sa, NULL) == 0;
	}
	r->installed = 1;
}

/* The actions and the alternate stack from before ummu_restore_install. */
static inline void ummu_restore_remove(void)
{
	struct ummu_restore *r = &ummu_restore_state;

	if (!r->installed)
		return;
	for (int i = 0; i < UMMU_RESTORE_NSIG; i++)
		if (r->hooked[i])
			sigaction(ummu_restore_signals[i], &r->old[i], NULL);
	if (r->stack != NULL) {
		stack_t off = { .ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0 };

		if (sigaltstack(&off, NULL) == 0)
			free(r->stack);
		r->stack = NULL;
	}
	r->installed = 0;
	r->fd = -1;
}

#endif
