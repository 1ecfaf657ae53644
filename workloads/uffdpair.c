// SPDX-License-Identifier: GPL-2.0
/*
 * uffdpair: a userfaultfd post-copy pair, the way QEMU's post-copy
 * destination uses it, in one program.
 *
 * The parent is the client (the destination VM): it creates the
 * userfaultfd (as root without flags; with UFFD_USER_MODE_ONLY when the
 * kernel refuses an unprivileged one), does the UFFDIO_API handshake,
 * maps and registers its areas, then forks the server child and closes its
 * own copy of the fd.  The server serves through the inherited fd, which
 * refers to the client's mm: every UFFDIO_* ioctl after the fork is the
 * server's, on the client's memory (as a migration thread would).  When the
 * server dies the fd is released, the registrations go and a blocked client
 * goes on (its checks then fail) instead of hanging.
 *
 *   --missing N   anonymous private area of N pages, registered MISSING.
 *                 The client reads each page once: a missing fault; the
 *                 server fills a page with a pattern and resolves it with
 *                 one UFFDIO_COPY of that page.
 *   --wp N        anonymous private area of N pages, registered WP.  The
 *                 client writes every page (populated), the server write
 *                 protects the area (one UFFDIO_WRITEPROTECT, mode WP, at
 *                 the client's request), then the client writes each page
 *                 once: a WP fault; the server resolves it with one
 *                 UFFDIO_WRITEPROTECT of that page, mode 0 (un-protect and
 *                 wake).
 *   --minor N     shmem (memfd_create) of N pages mapped MAP_SHARED twice:
 *                 one mapping registered MINOR, one not.  The client fills
 *                 the page cache through the second, then reads each page
 *                 once through the first: a minor fault; the server resolves
 *                 it with one UFFDIO_CONTINUE of that page.
 *   --delay-ms D  the server waits D ms after reading each fault and before
 *                 its ioctl (all kinds; default 0).
 *   --loop        after the passes above, until SIGTERM/SIGINT/SIGHUP: the
 *                 client reads the missing area's pages (--missing N, or 64
 *                 pages) again and again, at --rate R faults/s (default
 *                 100), MADV_DONTNEED'ing the whole area before each sweep
 *                 so every read is a missing fault on a fresh page.
 *
 * The passes run in that order (missing, wp, minor), each page touched once
 * by one thread, so the server sees exactly N faults of each kind and
 * issues exactly N resolving ioctls of each kind.  A signal that interrupts
 * a blocked fault (SIGTERM) makes the retried access report the fault
 * again, but the server's resolving ioctl wakes the range, which also takes
 * the repeat off the kernel's pending queue before this one-at-a-time
 * server reads it (fs/userfaultfd.c wake_userfault; seen in 6.1 and 6.12
 * guests).  Should a repeat be read anyway, its ioctl finds the page
 * resolved (EEXIST; for WP the page is already un-protected): it is counted
 * in "duplicates" and the range woken.  The client checks every page's
 * content after its fault.  THP is off for both processes (one fault per
 * 4 KiB page).
 *
 * Feature checks: UFFDIO_API on a probe fd lists what the kernel offers;
 * --wp needs UFFD_FEATURE_PAGEFAULT_FLAG_WP and --minor
 * UFFD_FEATURE_MINOR_SHMEM (both offered by 6.1 and 6.12:
 * fs/userfaultfd.c userfaultfd_api, with CONFIG_HAVE_ARCH_USERFAULTFD_WP
 * and _MINOR set in Debian's configs), and UFFDIO_REGISTER must return the
 * resolving ioctl (_UFFDIO_COPY, _UFFDIO_WRITEPROTECT, _UFFDIO_CONTINUE) for
 * the range.  A kernel without one of them: one line naming it, exit 1.
 *
 * At the end one JSON line on stdout:
 *   {"program":"uffdpair","version":1,"pid":C,"pid_client":C,"pid_server":S,
 *    "kernel":"..","page_size":4096,"delay_ms":D,"loop":0|1,"sweeps":..,
 *    "features":F,"pages":{"missing":..,"wp":..,"minor":..},
 *    "touches":{..},"faults":{..},"duplicates":{..},
 *    "ioctls":{"copy":..,"wp_unprotect":..,"continue":..,"wp_protect":..,
 *              "wake":..},
 *    "stall_min_ns":{..},"stall_mean_ns":{..},"stall_max_ns":{..},
 *    "elapsed_s":..,"errors":{"mismatches":..,"bad_faults":..},"exact":B}
 * touches: pages the client touched expecting a fault; faults: faults the
 * server read, per kind; stall: the client's touch, timed around the one
 * access, per kind (0 when none); exact: faults - duplicates = touches and
 * each kind's resolving ioctls = its faults.  Exit status 1 on any error or
 * when not exact.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/userfaultfd.h>

#include "wl_common.h"

#define MAX_PAGES	(1u << 20)
#define LOOP_PAGES	64
#define MSGBATCH	16
#define MAGIC_MISSING	0x6d697373696e6700ull
#define MAGIC_WP	0x7770777077707700ull
#define MAGIC_MINOR	0x6d696e6f72000000ull

enum kind { K_MISSING, K_WP, K_MINOR, K_NR };
static const char *const kind_names[K_NR] = { "missing", "wp", "minor" };

static struct {
	uint64_t pages[K_NR];
	double delay_ms;
	double rate;
	int loop;
} opt = {
	.rate = 100,
};

static size_t pg;

/* The areas, at the same addresses in both processes (fork). */
static struct {
	char *base[K_NR];	/* the registered ranges */
	uint64_t n[K_NR];
	char *minor_fill;	/* the unregistered second mapping of the memfd */
} ar;

/* Control messages (SOCK_SEQPACKET). */
enum { MSG_PROTECT, MSG_ACK, MSG_STOP, MSG_STATS };

struct server_stats {
	uint64_t faults[K_NR];
	uint64_t duplicates[K_NR];
	uint64_t copy, wp_unprotect, cont, wp_protect, wake;
	uint64_t bad_faults;	/* outside every area, or the wrong kind */
};

struct msg {
	uint32_t type;
	uint32_t pad;
	struct server_stats st;
};

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
"usage: uffdpair [options]\n"
"  --missing N    N anonymous pages, MISSING faults resolved by UFFDIO_COPY\n"
"  --wp N         N anonymous pages, WP faults resolved by UFFDIO_WRITEPROTECT (mode 0)\n"
"  --minor N      N shmem pages, MINOR faults resolved by UFFDIO_CONTINUE\n"
"  --delay-ms D   the server waits D ms before resolving each fault (default 0)\n"
"  --loop         then fault the missing area again and again (MADV_DONTNEED\n"
"                 before each sweep) until SIGTERM; --missing N sets its size\n"
"                 (default 64 pages)\n"
"  --rate R       --loop's faults per second, 0 = as fast as possible (default 100)\n"
"Prints one JSON line at the end (see the comment at the top of uffdpair.c).\n");
	exit(code);
}

static void parse_args(int argc, char **argv)
{
	const struct wl_opt opts[] = {
		{ "--missing", WL_U64, &opt.pages[K_MISSING], NULL },
		{ "--wp", WL_U64, &opt.pages[K_WP], NULL },
		{ "--minor", WL_U64, &opt.pages[K_MINOR], NULL },
		{ "--delay-ms", WL_DBL, &opt.delay_ms, NULL },
		{ "--loop", WL_FLAG, &opt.loop, NULL },
		{ "--rate", WL_DBL, &opt.rate, NULL },
		{ NULL, WL_FLAG, NULL, NULL },
	};
	int k;

	wl_parse_opts(argc, argv, opts, usage);
	for (k = 0; k < K_NR; k++)
		if (opt.pages[k] > MAX_PAGES)
			wl_die("--%s must be at most %u", kind_names[k], MAX_PAGES);
	if (opt.loop && !opt.pages[K_MISSING])
		opt.pages[K_MISSING] = LOOP_PAGES;
	if (!opt.loop && !opt.pages[K_MISSING] && !opt.pages[K_WP] && !opt.pages[K_MINOR])
		wl_die("nothing to do: give --missing, --wp, --minor or --loop");
	if (opt.delay_ms > 60000)
		wl_die("--delay-ms must be at most 60000");
}

static int uffd_open(void)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	/* Unprivileged, with vm.unprivileged_userfaultfd = 0: user faults only. */
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(__NR_userfaultfd,
				  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		wl_die("userfaultfd: %s%s", strerror(errno),
		       errno == ENOSYS ? " (kernel without CONFIG_USERFAULTFD)" : "");
	return fd;
}

static uint64_t uffd_api(int fd, uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api))
		wl_die("UFFDIO_API (features 0x%" PRIx64 "): %s", features, strerror(errno));
	return api.features;
}

static void uffd_register(int fd, char *base, uint64_t n, uint64_t mode,
			  int need_ioctl, const char *what)
{
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)base, .len = n * pg },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		wl_die("UFFDIO_REGISTER of %s: %s: this kernel (%s) cannot do it",
		       what, strerror(errno), wl_kernel_release());
	if (!(reg.ioctls & (1ull << need_ioctl)))
		wl_die("UFFDIO_REGISTER of %s: the range does not offer ioctl %d "
		       "(ioctls 0x%llx) on this kernel (%s)", what, need_ioctl,
		       (unsigned long long)reg.ioctls, wl_kernel_release());
}

static char *map_anon(uint64_t n)
{
	char *p = mmap(NULL, n * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		wl_die("mmap of %" PRIu64 " pages: %s", n, strerror(errno));
	if (madvise(p, n * pg, MADV_NOHUGEPAGE))
		wl_die("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	return p;
}

static void send_msg(int sock, const struct msg *m)
{
	while (send(sock, m, sizeof(*m), MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			wl_die("send: %s", strerror(errno));
}

/* 0 when the peer has gone. */
static int recv_msg(int sock, struct msg *m)
{
	ssize_t n;

	while ((n = recv(sock, m, sizeof(*m), 0)) < 0)
		if (errno != EINTR)
			wl_die("recv: %s", strerror(errno));
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*m))
		wl_die("short control message (%zd bytes)", n);
	return 1;
}

/* ------------------------------------------------------------------ server */

static struct server_stats sv;

static void sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Run an ioctl that may answer EAGAIN while the mm changes; 0 or errno. */
static int uffd_ioctl(int fd, unsigned long req, void *arg)
{
	for (;;) {
		if (!ioctl(fd, req, arg))
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return errno;
	}
}

static void server_wake(int fd, uint64_t addr)
{
	struct uffdio_range r = { .start = addr, .len = pg };

	if (ioctl(fd, UFFDIO_WAKE, &r))
		wl_die("server: UFFDIO_WAKE: %s", strerror(errno));
	sv.wake++;
}

static void server_fault(int fd, const struct uffd_msg *m, char *src,
			 uint32_t *copies, unsigned char *unprotected)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(pg - 1);
	uint64_t flags = m->arg.pagefault.flags, page;
	int k = flags & UFFD_PAGEFAULT_FLAG_WP ? K_WP :
		flags & UFFD_PAGEFAULT_FLAG_MINOR ? K_MINOR : K_MISSING;
	char *base = ar.base[k];
	int err;

	sv.faults[k]++;
	if (!base || addr < (uint64_t)(uintptr_t)base ||
	    addr >= (uint64_t)(uintptr_t)base + ar.n[k] * pg) {
		sv.bad_faults++;
		server_wake(fd, addr);
		return;
	}
	page = (addr - (uint64_t)(uintptr_t)base) / pg;
	sleep_ms(opt.delay_ms);
	if (k == K_MISSING) {
		uint64_t *w = (uint64_t *)src;
		struct uffdio_copy c = {
			.dst = addr, .src = (uint64_t)(uintptr_t)src, .len = pg,
		};

		memset(src, 0x5a, pg);
		w[0] = MAGIC_MISSING ^ page;
		w[1] = copies[page] + 1;
		w[pg / 8 - 1] = w[0];
		err = uffd_ioctl(fd, UFFDIO_COPY, &c);
		sv.copy++;
		if (!err)
			copies[page]++;
	} else if (k == K_WP) {
		struct uffdio_writeprotect wp = {
			.range = { .start = addr, .len = pg }, .mode = 0,
		};

		/* Un-protecting twice succeeds: count a repeat here. */
		if (unprotected[page])
			sv.duplicates[k]++;
		unprotected[page] = 1;
		err = uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
		sv.wp_unprotect++;
	} else {
		struct uffdio_continue c = {
			.range = { .start = addr, .len = pg }, .mode = 0,
		};

		err = uffd_ioctl(fd, UFFDIO_CONTINUE, &c);
		sv.cont++;
	}
	if (err == EEXIST) {
		/* Reported again after a signal: resolved already. */
		sv.duplicates[k]++;
		server_wake(fd, addr);
	} else if (err) {
		wl_die("server: resolving a %s fault at 0x%" PRIx64 ": %s",
		       kind_names[k], addr, strerror(err));
	}
}

static void server_protect(int fd)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uint64_t)(uintptr_t)ar.base[K_WP],
			   .len = ar.n[K_WP] * pg },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	int err = uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &wp);

	if (err)
		wl_die("server: UFFDIO_WRITEPROTECT (protect): %s", strerror(err));
	sv.wp_protect++;
}

static void server_main(int fd, int sock, pid_t client)
{
	struct uffd_msg msgs[MSGBATCH];
	uint32_t *copies = calloc(ar.n[K_MISSING] + 1, sizeof(*copies));
	unsigned char *unprotected = calloc(ar.n[K_WP] + 1, 1);
	char *src = aligned_alloc(pg, pg);
	struct msg m;

	wl_prog = "uffdpair(server)";
	if (!copies || !unprotected || !src)
		wl_die("out of memory");
	/* The client stops us; a signal for the group must not strand it. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != client)
		_exit(1);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			wl_die("server: poll: %s", strerror(errno));
		}
		if (p[0].revents & POLLIN) {
			ssize_t n = read(fd, msgs, sizeof(msgs));
			ssize_t i;

			if (n < 0 && errno != EAGAIN && errno != EINTR)
				wl_die("server: read userfaultfd: %s", strerror(errno));
			for (i = 0; n > 0 && i < n / (ssize_t)sizeof(msgs[0]); i++) {
				if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
					sv.bad_faults++;
					continue;
				}
				server_fault(fd, &msgs[i], src, copies, unprotected);
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP)) {
			if (!recv_msg(sock, &m))
				_exit(1);	/* the client went away */
			if (m.type == MSG_PROTECT) {
				server_protect(fd);
				memset(&m, 0, sizeof(m));
				m.type = MSG_ACK;
				send_msg(sock, &m);
			} else if (m.type == MSG_STOP) {
				memset(&m, 0, sizeof(m));
				m.type = MSG_STATS;
				m.st = sv;
				send_msg(sock, &m);
				_exit(0);
			}
		}
	}
}

/* ------------------------------------------------------------------ client */

static struct {
	uint64_t touches[K_NR];
	uint64_t stall_min[K_NR], stall_max[K_NR], stall_sum[K_NR];
	uint64_t mismatches;
	uint64_t sweeps;
} cl;

static void record(int k, uint64_t ns)
{
	cl.touches[k]++;
	cl.stall_sum[k] += ns;
	if (!cl.stall_min[k] || ns < cl.stall_min[k])
		cl.stall_min[k] = ns;
	if (ns > cl.stall_max[k])
		cl.stall_max[k] = ns;
}

/* Read page p of the missing area: one fault, served by UFFDIO_COPY. */
static void touch_missing(uint64_t p, uint64_t sweep)
{
	const volatile uint64_t *w = (const volatile uint64_t *)(ar.base[K_MISSING] + p * pg);
	uint64_t t0, t1, v;

	t0 = wl_now_ns();
	v = w[0];
	t1 = wl_now_ns();
	record(K_MISSING, t1 - t0);
	if (v != (MAGIC_MISSING ^ p) || w[1] != sweep + 1 || w[pg / 8 - 1] != v)
		cl.mismatches++;
}

static void pass_wp(void)
{
	uint64_t p, n = ar.n[K_WP];

	for (p = 0; p < n; p++) {
		volatile uint64_t *w = (volatile uint64_t *)(ar.base[K_WP] + p * pg);
		uint64_t t0, t1;

		t0 = wl_now_ns();
		w[0] = ~(MAGIC_WP ^ p);		/* blocks until un-protected */
		t1 = wl_now_ns();
		record(K_WP, t1 - t0);
		if (w[0] != ~(MAGIC_WP ^ p) || w[1] != (MAGIC_WP ^ p))
			cl.mismatches++;
	}
}

static void pass_minor(void)
{
	uint64_t p, n = ar.n[K_MINOR];

	for (p = 0; p < n; p++) {
		const volatile uint64_t *w =
			(const volatile uint64_t *)(ar.base[K_MINOR] + p * pg);
		uint64_t t0, t1, v;

		t0 = wl_now_ns();
		v = w[0];			/* blocks until UFFDIO_CONTINUE */
		t1 = wl_now_ns();
		record(K_MINOR, t1 - t0);
		if (v != (MAGIC_MINOR ^ p) || w[pg / 8 - 1] != v)
			cl.mismatches++;
	}
}

static void print_kinds(struct wl_json *j, const char *key, const uint64_t *v)
{
	int k;

	wl_json_open(j, key, '{');
	for (k = 0; k < K_NR; k++)
		wl_json_u64(j, kind_names[k], v[k]);
	wl_json_close(j, '}');
}

int main(int argc, char **argv)
{
	uint64_t offered, want = 0, t_start, p, mean[K_NR], faults_net;
	struct server_stats st;
	struct wl_json j = { .f = stdout };
	int fd, sv_pair[2], k, exact, status, memfd = -1;
	struct msg m;
	pid_t server;

	wl_prog = "uffdpair";
	parse_args(argc, argv);
	pg = (size_t)sysconf(_SC_PAGESIZE);
	wl_install_stop_handlers();
	t_start = wl_now_ns();
	/* One fault per 4 KiB page, in both processes. */
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_die("prctl(PR_SET_THP_DISABLE): %s", strerror(errno));

	/* What does this kernel offer?  UFFDIO_API works once per fd. */
	fd = uffd_open();
	offered = uffd_api(fd, 0);
	close(fd);
	if (opt.pages[K_WP]) {
		if (!(offered & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
			wl_die("this kernel (%s) offers no userfaultfd write-protect "
			       "(UFFD_FEATURE_PAGEFAULT_FLAG_WP): --wp impossible",
			       wl_kernel_release());
		want |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	}
	if (opt.pages[K_MINOR]) {
		if (!(offered & UFFD_FEATURE_MINOR_SHMEM))
			wl_die("this kernel (%s) offers no userfaultfd minor faults on "
			       "shmem (UFFD_FEATURE_MINOR_SHMEM): --minor impossible",
			       wl_kernel_release());
		want |= UFFD_FEATURE_MINOR_SHMEM;
	}
	fd = uffd_open();
	uffd_api(fd, want);

	if (opt.pages[K_MISSING]) {
		ar.n[K_MISSING] = opt.pages[K_MISSING];
		ar.base[K_MISSING] = map_anon(ar.n[K_MISSING]);
		uffd_register(fd, ar.base[K_MISSING], ar.n[K_MISSING],
			      UFFDIO_REGISTER_MODE_MISSING, _UFFDIO_COPY,
			      "anonymous memory in MISSING mode");
	}
	if (opt.pages[K_WP]) {
		ar.n[K_WP] = opt.pages[K_WP];
		ar.base[K_WP] = map_anon(ar.n[K_WP]);
		uffd_register(fd, ar.base[K_WP], ar.n[K_WP],
			      UFFDIO_REGISTER_MODE_WP, _UFFDIO_WRITEPROTECT,
			      "anonymous memory in WP mode");
	}
	if (opt.pages[K_MINOR]) {
		size_t len;

		ar.n[K_MINOR] = opt.pages[K_MINOR];
		len = ar.n[K_MINOR] * pg;
		memfd = memfd_create("uffdpair-minor", MFD_CLOEXEC);
		if (memfd < 0)
			wl_die("memfd_create: %s", strerror(errno));
		if (ftruncate(memfd, (off_t)len))
			wl_die("ftruncate memfd: %s", strerror(errno));
		ar.base[K_MINOR] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		ar.minor_fill = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		if (ar.base[K_MINOR] == MAP_FAILED || ar.minor_fill == MAP_FAILED)
			wl_die("mmap of the memfd: %s", strerror(errno));
		close(memfd);
		uffd_register(fd, ar.base[K_MINOR], ar.n[K_MINOR],
			      UFFDIO_REGISTER_MODE_MINOR, _UFFDIO_CONTINUE,
			      "shmem in MINOR mode");
	}

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_pair))
		wl_die("socketpair: %s", strerror(errno));
	fflush(stdout);
	server = fork();
	if (server < 0)
		wl_die("fork: %s", strerror(errno));
	if (server == 0) {
		close(sv_pair[0]);
		server_main(fd, sv_pair[1], getppid());
	}
	/* Only the server holds the fd: its death releases our registrations. */
	close(fd);
	close(sv_pair[1]);

	/* Populate after the fork: no page is shared copy-on-write. */
	if (ar.n[K_WP]) {
		for (p = 0; p < ar.n[K_WP]; p++) {
			uint64_t *w = (uint64_t *)(ar.base[K_WP] + p * pg);

			w[0] = MAGIC_WP ^ p;
			w[1] = MAGIC_WP ^ p;
		}
		memset(&m, 0, sizeof(m));
		m.type = MSG_PROTECT;
		send_msg(sv_pair[0], &m);
		if (!recv_msg(sv_pair[0], &m) || m.type != MSG_ACK)
			wl_die("the server went away");
	}
	for (p = 0; p < ar.n[K_MINOR]; p++) {
		uint64_t *w = (uint64_t *)(ar.minor_fill + p * pg);

		w[0] = MAGIC_MINOR ^ p;
		w[pg / 8 - 1] = MAGIC_MINOR ^ p;
	}

	for (p = 0; p < ar.n[K_MISSING] && !wl_stop; p++)
		touch_missing(p, 0);
	cl.sweeps = ar.n[K_MISSING] ? 1 : 0;
	pass_wp();
	pass_minor();

	if (opt.loop) {
		uint64_t next = wl_now_ns(), interval = 0;

		if (opt.rate > 0)
			interval = (uint64_t)(1e9 / opt.rate);
		while (!wl_stop) {
			if (madvise(ar.base[K_MISSING], ar.n[K_MISSING] * pg, MADV_DONTNEED))
				wl_die("madvise(MADV_DONTNEED): %s", strerror(errno));
			for (p = 0; p < ar.n[K_MISSING] && !wl_stop; p++) {
				if (interval) {
					next += interval;
					wl_sleep_until(next);
				}
				touch_missing(p, cl.sweeps);
			}
			cl.sweeps++;
		}
	}

	memset(&m, 0, sizeof(m));
	m.type = MSG_STOP;
	send_msg(sv_pair[0], &m);
	if (!recv_msg(sv_pair[0], &m) || m.type != MSG_STATS)
		wl_die("the server went away without its counts");
	st = m.st;
	while (waitpid(server, &status, 0) < 0)
		if (errno != EINTR)
			wl_die("waitpid: %s", strerror(errno));

	exact = !cl.mismatches && !st.bad_faults;
	for (k = 0; k < K_NR; k++) {
		faults_net = st.faults[k] - st.duplicates[k];
		if (faults_net != cl.touches[k])
			exact = 0;
		mean[k] = cl.touches[k] ? cl.stall_sum[k] / cl.touches[k] : 0;
	}
	if (st.copy != st.faults[K_MISSING] || st.wp_unprotect != st.faults[K_WP] ||
	    st.cont != st.faults[K_MINOR])
		exact = 0;

	wl_json_open(&j, NULL, '{');
	wl_json_str(&j, "program", "uffdpair");
	wl_json_u64(&j, "version", 1);
	wl_json_i64(&j, "pid", getpid());
	wl_json_i64(&j, "pid_client", getpid());
	wl_json_i64(&j, "pid_server", server);
	wl_json_str(&j, "kernel", wl_kernel_release());
	wl_json_u64(&j, "page_size", pg);
	wl_json_dbl(&j, "delay_ms", opt.delay_ms);
	wl_json_u64(&j, "loop", (uint64_t)opt.loop);
	wl_json_u64(&j, "sweeps", cl.sweeps);
	wl_json_u64(&j, "features", offered);
	print_kinds(&j, "pages", ar.n);
	print_kinds(&j, "touches", cl.touches);
	print_kinds(&j, "faults", st.faults);
	print_kinds(&j, "duplicates", st.duplicates);
	wl_json_open(&j, "ioctls", '{');
	wl_json_u64(&j, "copy", st.copy);
	wl_json_u64(&j, "wp_unprotect", st.wp_unprotect);
	wl_json_u64(&j, "continue", st.cont);
	wl_json_u64(&j, "wp_protect", st.wp_protect);
	wl_json_u64(&j, "wake", st.wake);
	wl_json_close(&j, '}');
	print_kinds(&j, "stall_min_ns", cl.stall_min);
	print_kinds(&j, "stall_mean_ns", mean);
	print_kinds(&j, "stall_max_ns", cl.stall_max);
	wl_json_dbl(&j, "elapsed_s", (double)(wl_now_ns() - t_start) / 1e9);
	wl_json_open(&j, "errors", '{');
	wl_json_u64(&j, "mismatches", cl.mismatches);
	wl_json_u64(&j, "bad_faults", st.bad_faults);
	wl_json_close(&j, '}');
	wl_json_bool(&j, "exact", exact);
	wl_json_close(&j, '}');
	fputc('\n', stdout);
	fflush(stdout);
	return exact && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : 1;
}
