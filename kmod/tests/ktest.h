/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ktest.h - a small kselftest-style harness for the ummu guest tests.
 *
 * Each TEST(name) runs in its own forked child, so a crash, a failed
 * assertion or a hang (alarm) fails that case only.  Output follows TAP as
 * kselftest prints it ("ok N name" / "not ok N name"), closed by a line
 * "N passed, N failed" that CI parsers read.  The exit status is 0 only when
 * every case passed.
 *
 *   TEST(register_rejects_empty_range) { ... ASSERT_EQ(errno, EINVAL); }
 *   KTEST_MAIN()
 *
 * Run a subset with argv: ./test name1 name2 (exact names).
 */
#ifndef KTEST_H
#define KTEST_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct ktest_case {
	const char *name;
	void (*fn)(void);
	unsigned int timeout_s;
};

#define KTEST_MAX_CASES 256
static struct ktest_case ktest_cases[KTEST_MAX_CASES];
static int ktest_ncases;

static inline void ktest_add(const char *name, void (*fn)(void),
			     unsigned int timeout_s)
{
	if (ktest_ncases >= KTEST_MAX_CASES) {
		fprintf(stderr, "ktest: too many cases\n");
		exit(2);
	}
	ktest_cases[ktest_ncases++] =
		(struct ktest_case){ name, fn, timeout_s };
}

/* Default per-case timeout; the guest is emulated, so be generous. */
#define KTEST_TIMEOUT_S 120

#define TEST_TIMEOUT(name, secs)					\
	static void ktest_fn_##name(void);				\
	__attribute__((constructor)) static void ktest_reg_##name(void)	\
	{ ktest_add(#name, ktest_fn_##name, (secs)); }			\
	static void ktest_fn_##name(void)

#define TEST(name) TEST_TIMEOUT(name, KTEST_TIMEOUT_S)

#define KTEST_FAIL_(fmt, ...)						\
	do {								\
		fprintf(stderr, "#   %s:%d: " fmt "\n", __FILE__, __LINE__, \
			##__VA_ARGS__);					\
		fflush(stderr);						\
		_exit(1);						\
	} while (0)

#define ASSERT_TRUE(cond)						\
	do {								\
		if (!(cond))						\
			KTEST_FAIL_("expected %s (errno %d: %s)", #cond, \
				    errno, strerror(errno));		\
	} while (0)

#define ASSERT_FALSE(cond) ASSERT_TRUE(!(cond))

#define KTEST_CMP_(a, op, b)						\
	do {								\
		long long ka_ = (long long)(a), kb_ = (long long)(b);	\
		if (!(ka_ op kb_))					\
			KTEST_FAIL_("expected %s %s %s: %lld vs %lld (errno %d: %s)", \
				    #a, #op, #b, ka_, kb_, errno,	\
				    strerror(errno));			\
	} while (0)

#define ASSERT_EQ(a, b) KTEST_CMP_(a, ==, b)
#define ASSERT_NE(a, b) KTEST_CMP_(a, !=, b)
#define ASSERT_LT(a, b) KTEST_CMP_(a, <, b)
#define ASSERT_LE(a, b) KTEST_CMP_(a, <=, b)
#define ASSERT_GT(a, b) KTEST_CMP_(a, >, b)
#define ASSERT_GE(a, b) KTEST_CMP_(a, >=, b)

/* A call that must fail with a given errno. */
#define ASSERT_ERRNO(call, err)						\
	do {								\
		errno = 0;						\
		long kr_ = (long)(call);				\
		if (kr_ != -1 || errno != (err))			\
			KTEST_FAIL_("expected %s to fail with %s, got %ld errno %d (%s)", \
				    #call, #err, kr_, errno, strerror(errno)); \
	} while (0)

/* A call that must succeed (return >= 0). */
#define ASSERT_OK(call)							\
	do {								\
		errno = 0;						\
		long kr_ = (long)(call);				\
		if (kr_ < 0)						\
			KTEST_FAIL_("%s failed: %ld errno %d (%s)", #call, \
				    kr_, errno, strerror(errno));	\
	} while (0)

#define SKIP(reason)							\
	do {								\
		printf("#   SKIP: %s\n", reason);			\
		fflush(stdout);						\
		_exit(4);						\
	} while (0)

/*
 * Does @ns, a process start time a tracepoint passed (its leader's
 * task->start_time, CLOCK_MONOTONIC ns), name process @pid?  /proc gives
 * the start in clock ticks (field 22 of stat, from the boot clock, which
 * only differs across a suspend): equal to a tick.
 */
static inline int ktest_is_start_of(unsigned long long ns, pid_t pid)
{
	unsigned long long ticks, per_tick = 1000000000ULL / sysconf(_SC_CLK_TCK);
	char path[64], buf[1024], *rparen;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After "(comm)": state is field 3, start time field 22. */
	rparen = strrchr(buf, ')');
	if (!rparen || sscanf(rparen + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			      &ticks) != 1)
		return 0;
	return ns / per_tick == ticks || ns / per_tick + 1 == ticks ||
	       ns / per_tick == ticks + 1;
}

static inline int ktest_selected(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return 0;
}

static inline int ktest_run_one(const struct ktest_case *c)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		alarm(c->timeout_s);
		c->fn();
		fflush(stdout);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	if (WIFSIGNALED(status)) {
		printf("#   %s: killed by signal %d%s\n", c->name,
		       WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		return 1;
	}
	if (WEXITSTATUS(status) == 4)
		return 4;
	return WEXITSTATUS(status) != 0;
}

static inline int ktest_main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, n = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	for (int i = 0; i < ktest_ncases; i++)
		n += ktest_selected(argc, argv, ktest_cases[i].name);
	printf("1..%d\n", n);
	n = 0;
	for (int i = 0; i < ktest_ncases; i++) {
		const struct ktest_case *c = &ktest_cases[i];
		int r;

		if (!ktest_selected(argc, argv, c->name))
			continue;
		r = ktest_run_one(c);
		n++;
		if (r == 0) {
			passed++;
			printf("ok %d %s\n", n, c->name);
		} else if (r == 4) {
			skipped++;
			printf("ok %d %s # SKIP\n", n, c->name);
		} else {
			failed++;
			printf("not ok %d %s\n", n, c->name);
		}
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

#define KTEST_MAIN()							\
	int main(int argc, char **argv) { return ktest_main(argc, argv); }

#endif /* KTEST_H */
