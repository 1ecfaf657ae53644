/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small helpers shared by the ummu workload programs: clocks, option
 * parsing, a deterministic PRNG and a minimal JSON writer.  Header-only so
 * every program stays a single static binary built from one .c file.
 */
#ifndef WL_COMMON_H
#define WL_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char *wl_prog = "workload";

static inline uint64_t wl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void wl_sleep_until(uint64_t t_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t_ns / 1000000000ull),
		.tv_nsec = (long)(t_ns % 1000000000ull),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static inline void wl_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", wl_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Parse a non-negative integer option value; exit with one line if bad. */
static inline uint64_t wl_parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		wl_die("bad value '%s' for %s (want a non-negative integer)", s, opt);
	return v;
}

static inline double wl_parse_double(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0)
		wl_die("bad value '%s' for %s (want a non-negative number)", s, opt);
	return v;
}

/* Table-driven long options: "--name VALUE" or "--flag". */
enum wl_opt_kind { WL_U64, WL_DBL, WL_FLAG, WL_FUNC };

struct wl_opt {
	const char *name;
	enum wl_opt_kind kind;
	void *dst;			/* uint64_t, double, int; or NULL */
	void (*fn)(const char *v);	/* WL_FUNC */
};

static inline void wl_parse_opts(int argc, char **argv,
				 const struct wl_opt *opts, void (*usage)(int))
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct wl_opt *o;

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage(0);
		for (o = opts; o->name; o++)
			if (!strcmp(a, o->name))
				break;
		if (!o->name) {
			fprintf(stderr, "%s: unknown argument '%s'\n", wl_prog, a);
			usage(2);
		}
		if (o->kind == WL_FLAG) {
			*(int *)o->dst = 1;
			continue;
		}
		if (i + 1 >= argc)
			wl_die("%s needs a value", a);
		i++;
		if (o->kind == WL_U64)
			*(uint64_t *)o->dst = wl_parse_u64(a, argv[i]);
		else if (o->kind == WL_DBL)
			*(double *)o->dst = wl_parse_double(a, argv[i]);
		else
			o->fn(argv[i]);
	}
}

/* xorshift64*: deterministic for a given --seed, cheap, good enough. */
static inline uint64_t wl_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline uint64_t wl_rand_below(uint64_t *s, uint64_t n)
{
	return n ? wl_rand(s) % n : 0;
}

/* Set by SIGINT/SIGTERM: programs finish the current step and report. */
static volatile sig_atomic_t wl_stop;

static void wl_on_signal(int sig)
{
	(void)sig;
	wl_stop = 1;
}

static inline void wl_install_stop_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wl_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static inline const char *wl_kernel_release(void)
{
	static struct utsname u;

	if (uname(&u))
		return "unknown";
	return u.release;
}

/*
 * Minimal JSON object writer: keys are fixed identifiers, string values
 * are escaped for '"' and '\\' and control characters.
 */
struct wl_json {
	FILE *f;
	int need_comma[16];
	int depth;
};

static inline void wl_json_key(struct wl_json *j, const char *k)
{
	if (j->depth > 0) {
		if (j->need_comma[j->depth])
			fputc(',', j->f);
		j->need_comma[j->depth] = 1;
	}
	if (k)
		fprintf(j->f, "\"%s\":", k);
}

/* Open an object ('{') or array ('['), as member k (NULL in arrays/root). */
static inline void wl_json_open(struct wl_json *j, const char *k, char c)
{
	wl_json_key(j, k);
	fputc(c, j->f);
	j->depth++;
	j->need_comma[j->depth] = 0;
}

static inline void wl_json_close(struct wl_json *j, char c)
{
	fputc(c, j->f);
	j->depth--;
}

static inline void wl_json_u64(struct wl_json *j, const char *k, uint64_t v)
{
	wl_json_key(j, k);
	fprintf(j->f, "%" PRIu64, v);
}

static inline void wl_json_i64(struct wl_json *j, const char *k, int64_t v)
{
	wl_json_key(j, k);
	fprintf(j->f, "%" PRId64, v);
}

static inline void wl_json_dbl(struct wl_json *j, const char *k, double v)
{
	wl_json_key(j, k);
	fprintf(j->f, "%.3f", v);
}

static inline void wl_json_bool(struct wl_json *j, const char *k, int v)
{
	wl_json_key(j, k);
	fputs(v ? "true" : "false", j->f);
}

static inline void wl_json_str(struct wl_json *j, const char *k, const char *s)
{
	wl_json_key(j, k);
	fputc('"', j->f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(j->f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(j->f, "\\u%04x", *s);
		else
			fputc(*s, j->f);
	}
	fputc('"', j->f);
}

#endif /* WL_COMMON_H */
