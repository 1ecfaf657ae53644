// SPDX-License-Identifier: GPL-2.0
/*
 * ummu_fuzz - a seeded fuzzer of /dev/ummunotify and /dev/umem.
 *
 *   ummu_fuzz [-s SEED] [-t SECONDS] [-p PROCS] [-v]
 *
 * A supervising parent runs PROCS worker processes (default 4) for SECONDS
 * (default 20).  Each worker has four threads: three pick random operations
 * from the table ops[] below (every ioctl of both devices with good, edge
 * and garbage arguments, read/write/poll/fcntl, close/dup, mmap, munmap,
 * mremap, mprotect, madvise on registered ranges, on the umem mapping and
 * on the ummunotify counter page, user and kernel-side touches of umem
 * pages, fork, signals), the fourth serves the worker's umem areas (reads
 * pending offsets, fills the memory file, writes them back; pushes ahead,
 * punches, goes on strike so that faults really block).  Forked children
 * keep fuzzing, serve the inherited umem fds or exit; the parent SIGKILLs
 * workers at random points (with process_mrelease() on the pidfd) and
 * starts new ones.
 *
 * Every process and thread draws from its own xorshift stream derived from
 * the seed and its (slot, generation, thread) index, so a seed replays the
 * same operation sequences (their interleaving is up to the scheduler).
 *
 * Nothing can hang the fuzzer: every operation runs under a per-thread
 * timer whose signal (no SA_RESTART) interrupts blocking calls and jumps
 * out of a blocked guarded memory access; the server thread serves every
 * umem fd of its process about once a second (requests that fuzzed reads
 * consumed are never reported again), which bounds kernel-mode faults
 * (those wait killably, not interruptibly); forked children get SIGALRM
 * and, past their deadline, SIGKILL from the parent; the parent kills a
 * worker whose thread made no progress for STALL_MS (printing the threads'
 * kernel stacks and the worker's umem fds: "# stall:" lines are killable
 * waits, information, not failures), and at the end SIGKILLs the whole
 * process group and requires every process to be reaped within 10 s (a
 * process that is not is a failure, reported with its stacks and wchan).
 * Then a short sane sequence checks that both devices still work.
 * Closing line: "N passed, N failed"; exit status 1 on any failure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>

#include <linux/falloc.h>
#include <linux/ummunotify.h>

#include "umem_util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define UN_DEV		"/dev/ummunotify"
#define UM_DEV		"/dev/umem"
#define EVSZ		sizeof(struct ummunotify_event)

#define MAX_PROCS	16
#define NTHREADS	4		/* 0: main (also forks), 1-2: fuzz, 3: server */
#define SERVER_T	(NTHREADS - 1)
#define ARENA_PAGES	1024		/* 4 MiB: every fuzzed mapping lives here */
#define UM_MAXMAP	64		/* pages of a umem area that get mapped */
#define MEMFD_PAGES	64
#define NUN		6		/* ummunotify fds per process */
#define NUM		3		/* umem areas per process */
#define NCOOKIE		48		/* small cookie space: duplicates happen */
#define SCRATCH		(64 * 1024)
#define STALL_MS	15000		/* < hung_task_timeout_secs (30) */
#define REAP_MS		10000

/* ------------------------------------------------------------------ */
/* PRNG: splitmix64 to derive streams, xorshift64* to draw.            */

struct rng {
	uint64_t s;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed, uint64_t a, uint64_t b,
		     uint64_t c)
{
	uint64_t x = seed;

	x = splitmix(&x) ^ a;
	x = splitmix(&x) ^ b;
	x = splitmix(&x) ^ c;
	r->s = splitmix(&x) | 1;
}

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* ------------------------------------------------------------------ */
/* Shared counters and the supervisor's view of every worker.          */

enum ev {
	EV_SERVED,		/* offsets written back by a server, accepted */
	EV_PUSHED,		/* offsets served ahead */
	EV_REQS_READ,		/* pending offsets read */
	EV_TOUCH_OK,		/* umem touches (user) that completed */
	EV_TOUCH_INTR,		/* ... left by the op timer (fault still blocked) */
	EV_TOUCH_BUS,		/* ... ended by SIGBUS */
	EV_TOUCH_SEGV,		/* ... ended by SIGSEGV (not mapped there) */
	EV_KTOUCH_OK,		/* kernel-side accesses of umem pages that succeeded */
	EV_KTOUCH_ERR,		/* ... that failed (EFAULT, EINTR, ...) */
	EV_GUARD_SIG,		/* other guarded accesses ended by a signal */
	EV_SYSCALL_OK,		/* fuzzed calls that succeeded */
	EV_SYSCALL_ERR,		/* ... that failed */
	EV_UN_EVENTS,		/* ummunotify events read */
	EV_FORKS,
	EV_CHILD_KILLS,
	EV_CHILD_MRELEASE_OK,
	EV_CHILD_MRELEASE_ERR,
	EV_WORKERS,		/* workers started */
	EV_WORKER_KILLS,	/* workers SIGKILLed by the supervisor */
	EV_KILLED_IN_FAULT,	/* ... while a thread was touching umem */
	EV_MRELEASE_OK,
	EV_MRELEASE_ERR,
	EV_STALL_KILLS,		/* workers killed for making no progress */
	EV_CHILD_OVERDUE,	/* forked children the supervisor had to kill */
	EV_INTERNAL,		/* fuzzer-internal errors */
	NEV
};

static const char *const ev_names[NEV] = {
	"served", "pushed", "reqs_read", "touch_ok", "touch_intr",
	"touch_sigbus", "touch_sigsegv", "ktouch_ok", "ktouch_err",
	"guard_sig", "call_ok", "call_err", "un_events", "forks",
	"child_kills", "child_mrelease_ok", "child_mrelease_err", "workers",
	"worker_kills", "killed_in_fault", "mrelease_ok", "mrelease_err",
	"stall_kills", "child_overdue", "internal_errors",
};

struct worker_view {
	pid_t pid;
	int gen;
	uint64_t hb[NTHREADS];		/* ms of the last op start */
	int cur[NTHREADS];		/* op running, -1 none */
};

#define NOPS_MAX 64
/*
 * A worker's forked child and when it must be gone.  Its SIGALRM is not
 * enough: a fatal signal does not wake a killable wait while another
 * signal (an op timer tick) is pending, so the supervisor SIGKILLs it.
 */
struct kid_view {
	pid_t pid;
	uint64_t deadline;
};

struct shared {
	uint64_t op[NOPS_MAX];
	uint64_t ev[NEV];
	int stop;
	struct worker_view w[MAX_PROCS];
	struct kid_view kid[MAX_PROCS];
};

static struct shared *sh;
static pid_t pgid;			/* the fuzzing processes' group */
static uint64_t g_seed;
static int g_verbose;

#define EVN(i, n) __atomic_fetch_add(&sh->ev[i], (uint64_t)(n), __ATOMIC_RELAXED)
#define EV(i) EVN(i, 1)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Async-signal-safe, fork-safe message to stderr. */
__attribute__((format(printf, 1, 2)))
static void msg(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(b) - 1)
		n = sizeof(b) - 1;
	if (write(2, b, n) < 0)
		return;
}

static void internal_error(const char *what)
{
	EV(EV_INTERNAL);
	msg("# ummu_fuzz: internal error in pid %d: %s (errno %d %s)\n",
	    getpid(), what, errno, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Per-process state of a fuzzing process.                              */

struct umslot {
	volatile int fd;
	volatile int shm;
	volatile uint64_t npages;	/* 0: not initialised (as far as we know) */
	unsigned char *volatile srv;	/* server's shared map of the memory file */
	volatile size_t srvlen;
	unsigned char *volatile cli;	/* client mapping (in the arena) */
	volatile size_t clilen;
};

static struct {
	unsigned char *arena, *none, *ro;
	unsigned char *volatile ctr;	/* a counter page mapping, if any */
	int memfd;
	int depth;			/* 0 worker, 1 forked child */
	int slot;
	pid_t pid;
	pthread_mutex_t lock;		/* umem slot (re)configuration */
	volatile int un[NUN];
	struct umslot um[NUM];
	volatile pid_t tids[NTHREADS];
	volatile pid_t child;
	int nchild;
} ps;

/* One fuzzing thread. */
struct fz {
	struct rng r;
	int tidx;
	pid_t tid;
	timer_t timer;
	int have_timer;
	int pipe[2];
	unsigned char *buf;		/* SCRATCH bytes, page aligned */
	pthread_barrier_t *start;
};

static uint64_t rnd(struct fz *f)
{
	return rng_next(&f->r);
}

static uint64_t below(struct fz *f, uint64_t n)
{
	return rng_below(&f->r, n);
}

static int chance(struct fz *f, int pct)
{
	return (int)below(f, 100) < pct;
}

/* ------------------------------------------------------------------ */
/* Guarded memory accesses and the op timer.                           */

static __thread sigjmp_buf *tl_jb;
static __thread volatile sig_atomic_t tl_guard;

static void on_fault(int sig)
{
	if (tl_guard) {
		tl_guard = 0;
		siglongjmp(*tl_jb, sig);
	}
	/* A fault outside a guarded access is a fuzzer bug: die of it. */
	signal(sig, SIG_DFL);
}

static void on_tick(int sig)
{
	if (tl_guard) {
		tl_guard = 0;
		siglongjmp(*tl_jb, sig);
	}
}

static void on_nop(int sig)
{
	(void)sig;
}

/* Runs fn(arg); 0, or the signal that ended it. */
static int guarded(void (*fn)(void *), void *arg)
{
	sigjmp_buf jb;
	int sig = sigsetjmp(jb, 1);

	if (sig == 0) {
		tl_jb = &jb;
		tl_guard = 1;
		fn(arg);
		tl_guard = 0;
	}
	return sig;
}

static void install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_fault };	/* no SA_RESTART */

	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sa.sa_handler = on_tick;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_nop;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGIO, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
}

static void timer_setup(struct fz *f)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID,
				.sigev_signo = SIGUSR2 };

	f->tid = syscall(SYS_gettid);
	sev.sigev_notify_thread_id = f->tid;
	f->have_timer = timer_create(CLOCK_MONOTONIC, &sev, &f->timer) == 0;
	if (!f->have_timer)
		internal_error("timer_create");
}

/* First tick after 10..250 ms, then every 100 ms until disarmed. */
static void timer_arm(struct fz *f)
{
	struct itimerspec it = { .it_interval = { 0, 100 * 1000000L } };
	unsigned int ms = 10 + below(f, 240);

	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_nsec = (ms % 1000) * 1000000L;
	if (f->have_timer)
		timer_settime(f->timer, 0, &it, NULL);
}

static void timer_disarm(struct fz *f)
{
	struct itimerspec it = { { 0, 0 }, { 0, 0 } };

	if (f->have_timer)
		timer_settime(f->timer, 0, &it, NULL);
}

static void count_call(long r)
{
	EV(r < 0 ? EV_SYSCALL_ERR : EV_SYSCALL_OK);
}

/* ------------------------------------------------------------------ */
/* Arena: fuzzed mappings only ever land here (MAP_FIXED).             */

static unsigned char *arena_end(void)
{
	return ps.arena + ARENA_PAGES * PG;
}

/* Re-reserve the holes of [addr, addr+len) so nothing else lands there. */
static void arena_fix(unsigned char *addr, size_t len)
{
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
		 MAP_FIXED_NOREPLACE;

	if (addr < ps.arena)
		return;
	if (addr + len > arena_end())
		len = arena_end() - addr;
	if (mmap(addr, len, PROT_NONE, fl, -1, 0) == addr)
		return;
	for (size_t o = 0; o < len; o += PG)
		mmap(addr + o, PG, PROT_NONE, fl, -1, 0);
}

static unsigned char *arena_range(struct fz *f, size_t *len)
{
	size_t pages = 1 + below(f, chance(f, 20) ? UM_MAXMAP : 8);
	size_t first = below(f, ARENA_PAGES - pages + 1);

	*len = pages * PG;
	return ps.arena + first * PG;
}

static struct umslot *pick_um(struct fz *f)
{
	return &ps.um[below(f, NUM)];
}

/* A target range for VM ops: the arena, a umem mapping or the counter. */
static unsigned char *vm_target(struct fz *f, size_t *len)
{
	struct umslot *s = pick_um(f);
	unsigned char *p = NULL;
	size_t l = 0;

	switch (below(f, 10)) {
	case 0: case 1: case 2:
		p = s->cli;
		l = s->clilen;
		if (p && l && chance(f, 50)) {
			size_t pages = l / PG ? l / PG : 1;
			size_t a = below(f, pages);
			size_t n = 1 + below(f, pages - a);

			p += a * PG;
			l = n * PG;
		}
		break;
	case 3:
		p = ps.ctr;
		l = PG;
		break;
	}
	if (!p || !l || p < ps.arena || p >= arena_end())
		p = arena_range(f, &l);
	if (p + l > arena_end())
		l = arena_end() - p;
	*len = l;
	return p;
}

/* A pointer argument: usually the scratch buffer, else garbage. */
static void *fz_ptr(struct fz *f)
{
	struct umslot *s;

	switch (below(f, 11)) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)(1 + below(f, 4095));
	case 2:
		return (void *)0xffff888000000000ULL;	/* kernel */
	case 3:
		return ps.none + below(f, PG);		/* PROT_NONE */
	case 4:
		return ps.ro + (chance(f, 50) ? 0 : below(f, PG));	/* read-only */
	case 5: case 6:
		s = pick_um(f);
		if (s->cli && s->clilen)		/* maybe not served */
			return s->cli + below(f, s->clilen) / 8 * 8;
		return f->buf;
	case 7:
		return ps.arena + below(f, ARENA_PAGES * PG);
	case 8:
		return f->buf + 1 + below(f, 7);	/* misaligned */
	case 9:
		return (void *)(uintptr_t)rnd(f);
	default:
		return f->buf;
	}
}

/* A good buffer most of the time. */
static void *arg_ptr(struct fz *f, int pct_good)
{
	if (chance(f, pct_good))
		return chance(f, 90) ? f->buf : f->buf + 1 + below(f, 7);
	return fz_ptr(f);
}

static size_t fz_size(struct fz *f)
{
	static const size_t sizes[] = {
		0, 1, 7, 8, 9, 16, 24, 31, 32, 33, 63, 64, 96, 128, 256,
		4096, 4097, SCRATCH, 1 << 30, (size_t)1 << 40, SIZE_MAX / 2,
	};

	if (chance(f, 20))
		return below(f, SCRATCH);
	return sizes[below(f, ARRAY_SIZE(sizes))];
}

static int pick_un(struct fz *f)
{
	return ps.un[below(f, NUN)];
}

static void put_un(struct fz *f, int fd)
{
	int old = __atomic_exchange_n(&ps.un[below(f, NUN)], fd,
				      __ATOMIC_RELAXED);

	if (old >= 0)
		close(old);
}

static void toggle_nonblock(struct fz *f, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return;
	fl ^= O_NONBLOCK;
	if (chance(f, 10)) {
		fl ^= O_ASYNC;
		fcntl(fd, F_SETOWN, chance(f, 50) ? getpid() : (pid_t)f->tid);
	}
	count_call(fcntl(fd, F_SETFL, fl));
}

static unsigned long bad_cmd(struct fz *f, int magic)
{
	switch (below(f, 5)) {
	case 0:
		return _IO(magic, below(f, 256));
	case 1:
		return _IOC(_IOC_READ | _IOC_WRITE, magic, below(f, 256),
			    1 + below(f, 64));
	case 2:
		return _IOC(below(f, 4), magic, below(f, 8), below(f, 0x3fff));
	case 3:
		return (uint32_t)rnd(f);
	default:
		return rnd(f);
	}
}

/* ------------------------------------------------------------------ */
/* /dev/ummunotify operations                                          */

static void op_un_open(struct fz *f)
{
	int fl = O_RDONLY | O_CLOEXEC;
	int fd;

	if (chance(f, 40))
		fl |= O_NONBLOCK;
	if (chance(f, 8))
		fl = (fl & ~O_ACCMODE) | (chance(f, 50) ? O_RDWR : O_WRONLY);
	fd = open(UN_DEV, fl);
	count_call(fd);
	if (fd < 0)
		return;
	if ((fl & O_ACCMODE) != O_RDONLY) {
		close(fd);	/* should not have opened (EINVAL) */
		return;
	}
	put_un(f, fd);
}

static void op_un_close(struct fz *f)
{
	int fd = __atomic_exchange_n(&ps.un[below(f, NUN)], -1,
				     __ATOMIC_RELAXED);

	if (fd >= 0)
		count_call(close(fd));
}

static void op_un_dup(struct fz *f)
{
	int fd = pick_un(f), d;

	if (fd < 0)
		return;
	d = chance(f, 50) ? dup(fd) : fcntl(fd, F_DUPFD_CLOEXEC, 3);
	count_call(d);
	if (d >= 0)
		put_un(f, d);
}

static void op_un_features(struct fz *f)
{
	int fd = pick_un(f);
	uint32_t *p = arg_ptr(f, 80);

	if (p == (void *)f->buf)
		*p = chance(f, 50) ? 0 : (uint32_t)rnd(f);
	count_call(ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, p));
}

static void fill_reg(struct fz *f, struct ummunotify_register_ioctl *r)
{
	struct umslot *s = pick_um(f);
	unsigned char *a;
	size_t len;

	memset(r, 0, sizeof(*r));
	switch (below(f, 12)) {
	case 0: case 1: case 2: case 3: case 4: case 5:
		a = arena_range(f, &len);
		r->start = (uintptr_t)a;
		r->end = (uintptr_t)a + len;
		if (chance(f, 20)) {
			r->start += below(f, PG);
			r->end -= below(f, PG);
		}
		break;
	case 6:
		r->start = (uintptr_t)ps.arena + below(f, ARENA_PAGES) * PG;
		r->end = r->start - below(f, 2) * below(f, 1 << 20);
		break;
	case 7:
		r->start = 0;
		r->end = ~0ULL;
		break;
	case 8:
		r->start = rnd(f);
		r->end = chance(f, 50) ? rnd(f) : r->start + 1;
		break;
	case 9:
		if (s->cli) {
			r->start = (uintptr_t)s->cli;
			r->end = r->start + (s->clilen ? s->clilen : PG);
			break;
		}
		/* fall through */
	default:
		r->start = (uintptr_t)ps.ctr;
		r->end = r->start + 1 + below(f, 2 * PG);
		break;
	}
	r->user_cookie = below(f, NCOOKIE);
	/* Random cookies only on invalid ranges: registrations stay bounded. */
	if (r->start >= r->end && chance(f, 50))
		r->user_cookie = rnd(f);
	if (chance(f, 5))
		r->flags = 1u << below(f, 32);
	if (chance(f, 5))
		r->reserved = (uint32_t)rnd(f);
}

static void op_un_register(struct fz *f)
{
	int fd = pick_un(f);
	unsigned char *p = chance(f, 90) ? f->buf : f->buf + 1 + below(f, 7);

	fill_reg(f, (struct ummunotify_register_ioctl *)p);
	if (chance(f, 12))
		p = fz_ptr(f);
	count_call(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, p));
}

static void op_un_unregister(struct fz *f)
{
	int fd = pick_un(f);
	uint64_t *p = arg_ptr(f, 85);

	if (p == (void *)f->buf)
		*p = chance(f, 95) ? below(f, NCOOKIE) : rnd(f);
	count_call(ioctl(fd, UMMUNOTIFY_UNREGISTER_REGION, p));
}

static void op_un_ioctl_bad(struct fz *f)
{
	int fd = pick_un(f);
	unsigned long cmd = bad_cmd(f, chance(f, 70) ? 'U' : UMEMIO);

	if (cmd == UMMUNOTIFY_REGISTER_REGION || cmd == UMMUNOTIFY_UNREGISTER_REGION)
		return;
	count_call(ioctl(fd, cmd, chance(f, 50) ? fz_ptr(f) : (void *)f->buf));
}

static void op_un_read(struct fz *f)
{
	int fd = pick_un(f);
	void *p = arg_ptr(f, 75);
	size_t n = chance(f, 50) ? EVSZ * (1 + below(f, 8)) : fz_size(f);
	ssize_t r;

	if (p == (void *)f->buf && n > SCRATCH && chance(f, 50))
		n = SCRATCH;
	r = read(fd, p, n);
	count_call(r);
	if (r > 0)
		EVN(EV_UN_EVENTS, r / EVSZ);
}

static void op_un_write(struct fz *f)
{
	count_call(write(pick_un(f), arg_ptr(f, 70), fz_size(f)));
}

static void op_un_poll(struct fz *f)
{
	struct pollfd p[NUN];

	for (int i = 0; i < NUN; i++)
		p[i] = (struct pollfd){ .fd = ps.un[i],
			.events = POLLIN | POLLOUT | POLLPRI | POLLRDHUP };
	count_call(poll(p, NUN, below(f, 30)));
}

static void op_un_nonblock(struct fz *f)
{
	toggle_nonblock(f, pick_un(f));
}

struct touch_arg {
	volatile unsigned char *p;
	size_t len;
	int write;
	uint64_t val;
};

static void touch_fn(void *arg)
{
	struct touch_arg *t = arg;

	for (size_t o = 0; o < t->len; o += PG) {
		if (t->write)
			t->p[o] = (unsigned char)t->val;
		else
			t->val += t->p[o];
	}
}

static void op_un_mmap(struct fz *f)
{
	static const size_t lens[] = { 1, 8, 8, 8, 100, PG, PG + 1, 2 * PG };
	int fd = pick_un(f);
	size_t len = lens[below(f, 8)];
	unsigned char *a = ps.arena + below(f, ARENA_PAGES - 2) * PG;
	int prot = chance(f, 90) ? PROT_READ : PROT_READ | PROT_WRITE;
	int fl = (chance(f, 70) ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
	off_t off = chance(f, 95) ? 0 : PG;
	void *m = mmap(a, len, prot, fl, fd, off);
	struct touch_arg t = { .p = a, .len = 1 };

	count_call(m == MAP_FAILED ? -1 : 0);
	if (m == MAP_FAILED) {
		arena_fix(a, len);
		return;
	}
	ps.ctr = a;
	if (guarded(touch_fn, &t))
		EV(EV_GUARD_SIG);
	if (chance(f, 20))
		count_call(mprotect(a, PG, PROT_READ | PROT_WRITE));
	if (chance(f, 10)) {
		t.write = 1;	/* read-only: must fault */
		if (guarded(touch_fn, &t))
			EV(EV_GUARD_SIG);
	}
}

/* ------------------------------------------------------------------ */
/* /dev/umem operations                                                */

/* Drop what slot s knows; the caller holds ps.lock. */
static void um_clear(struct umslot *s)
{
	int fd = s->fd, shm = s->shm;
	unsigned char *srv = s->srv;

	s->fd = -1;
	s->shm = -1;
	s->npages = 0;
	s->srv = NULL;
	if (fd >= 0)
		close(fd);
	if (shm >= 0)
		close(shm);
	if (srv)
		munmap(srv, s->srvlen);
	/* s->cli stays: the mapping may outlive the fds (SIGBUS on touch). */
}

static int um_open_fd(struct fz *f)
{
	int fl = O_RDWR | O_CLOEXEC;

	if (chance(f, 30))
		fl |= O_NONBLOCK;
	return open(UM_DEV, fl);
}


/* INIT with a good argument; records the area in s. Holds ps.lock. */
static void um_init_locked(struct fz *f, struct umslot *s, uint64_t size)
{
	struct umem_init *in = (struct umem_init *)f->buf;
	size_t m;
	void *p;

	memset(in, 0, sizeof(*in));
	in->size = size;
	in->shmem_fd = -1;
	count_call(ioctl(s->fd, UMEM_INIT, in));
	if (in->shmem_fd < 0)
		return;
	if (s->shm >= 0)
		close(s->shm);
	s->shm = in->shmem_fd;
	s->npages = in->size / PG;
	if (chance(f, 80) && ftruncate(s->shm, in->size) < 0)
		EV(EV_SYSCALL_ERR);
	m = s->npages < UM_MAXMAP ? s->npages : UM_MAXMAP;
	p = mmap(NULL, m * PG, PROT_READ | PROT_WRITE, MAP_SHARED, s->shm, 0);
	if (p != MAP_FAILED) {
		if (s->srv)
			munmap(s->srv, s->srvlen);
		s->srvlen = m * PG;
		s->srv = p;
	}
}

static uint64_t um_size(struct fz *f)
{
	static const uint64_t sizes[] = {
		0, 1, PG - 1, PG, PG + 1, 1ULL << 30, 1ULL << 46,
		(1ULL << 46) + 1, ~0ULL, ~0ULL - PG + 2,
	};

	if (chance(f, 80))
		return (1 + below(f, UM_MAXMAP)) * PG - (chance(f, 10) ? below(f, PG) : 0);
	return sizes[below(f, ARRAY_SIZE(sizes))];
}

/*
 * A umem fd opened read-only or write-only: the driver refuses it
 * (EINVAL: such an area could never be served); if it ever opens, it is
 * tried and closed at once, never mapped.
 */
static void op_um_badmode(struct fz *f)
{
	int fd = open(UM_DEV, (chance(f, 70) ? O_RDONLY : O_WRONLY) | O_CLOEXEC |
		      O_NONBLOCK);
	struct umem_init *in = (struct umem_init *)f->buf;

	count_call(fd);
	if (fd < 0)
		return;
	memset(in, 0, sizeof(*in));
	in->size = um_size(f);
	in->shmem_fd = -1;
	count_call(ioctl(fd, UMEM_INIT, in));
	if (in->shmem_fd > 2)
		close(in->shmem_fd);
	count_call(read(fd, f->buf, 8));
	*(uint64_t *)f->buf = 0;
	count_call(write(fd, f->buf, 8));
	close(fd);
}

static void op_um_open(struct fz *f)
{
	struct umslot *s = pick_um(f);
	int fd = um_open_fd(f);

	count_call(fd);
	if (fd < 0)
		return;
	pthread_mutex_lock(&ps.lock);
	um_clear(s);
	s->fd = fd;
	if (chance(f, 60))
		um_init_locked(f, s, um_size(f));
	pthread_mutex_unlock(&ps.lock);
}

static void op_um_init(struct fz *f)
{
	struct umslot *s = pick_um(f);
	struct umem_init *in;
	void *p;
	int fd;

	if (chance(f, 70)) {
		/* good argument on a slot's fd (EBUSY after the first) */
		pthread_mutex_lock(&ps.lock);
		if (s->fd >= 0)
			um_init_locked(f, s, um_size(f));
		pthread_mutex_unlock(&ps.lock);
		return;
	}
	/*
	 * A garbage argument on a fresh fd (never on a slot: an INIT that
	 * succeeded through a garbage pointer would leave a stray fd there).
	 */
	fd = um_open_fd(f);
	if (fd < 0)
		return;
	in = (struct umem_init *)f->buf;
	in->size = um_size(f);
	in->shmem_fd = -1;
	in->padding = chance(f, 50) ? 0 : (int)rnd(f);
	p = chance(f, 30) ? (void *)in : fz_ptr(f);
	count_call(ioctl(fd, UMEM_INIT, p));
	if (p == (void *)in && in->shmem_fd > 2)
		close(in->shmem_fd);
	close(fd);
}

static void op_um_anon(struct fz *f)
{
	struct umslot *s = pick_um(f);

	count_call(ioctl(s->fd, UMEM_MAKE_VMA_ANONYMOUS, chance(f, 50) ? 0UL : rnd(f)));
}

static void op_um_ioctl_bad(struct fz *f)
{
	unsigned long cmd = bad_cmd(f, chance(f, 70) ? UMEMIO : 'U');

	if (cmd == UMEM_INIT)
		return;
	count_call(ioctl(pick_um(f)->fd, cmd, chance(f, 50) ? fz_ptr(f) : (void *)f->buf));
}

static void op_um_mmap(struct fz *f)
{
	struct umslot *s = pick_um(f);
	uint64_t np = s->npages;
	size_t pages, len;
	unsigned char *a;
	int prot = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE;
	off_t off = 0;
	void *m;

	if (!np || chance(f, 5))
		np = 1 + below(f, 8);	/* before INIT: ENXIO */
	pages = 1 + below(f, np < UM_MAXMAP ? np : UM_MAXMAP);
	if (chance(f, 8))
		pages++;		/* past the end */
	len = pages * PG - (chance(f, 10) ? below(f, PG) : 0);
	a = ps.arena + below(f, ARENA_PAGES - pages + 1) * PG;
	if (chance(f, 8))
		fl = MAP_SHARED;
	if (chance(f, 8))
		prot = chance(f, 50) ? PROT_READ : PROT_READ | PROT_WRITE | PROT_EXEC;
	if (chance(f, 5))
		off = PG * (1 + below(f, 2));
	m = mmap(a, len, prot, fl | MAP_FIXED, s->fd, off);
	count_call(m == MAP_FAILED ? -1 : 0);
	if (m == MAP_FAILED) {
		arena_fix(a, len);
		return;
	}
	s->clilen = (len + PG - 1) / PG * PG;
	s->cli = a;
}

static void op_um_close(struct fz *f)
{
	struct umslot *s = pick_um(f);
	int fd;

	pthread_mutex_lock(&ps.lock);
	switch (below(f, 4)) {
	case 0: case 1:
		um_clear(s);
		break;
	case 2:		/* the memory file only */
		fd = s->shm;
		s->shm = -1;
		if (fd >= 0)
			close(fd);
		break;
	default:	/* the server's mapping only */
		if (s->srv)
			munmap(s->srv, s->srvlen);
		s->srv = NULL;
		break;
	}
	pthread_mutex_unlock(&ps.lock);
}

static void op_um_dup(struct fz *f)
{
	struct umslot *s = pick_um(f), *d = pick_um(f);
	int fd, shm;

	if (s == d)
		return;
	pthread_mutex_lock(&ps.lock);
	fd = s->fd >= 0 ? dup(s->fd) : -1;
	count_call(fd);
	if (fd >= 0) {
		shm = s->shm >= 0 && chance(f, 50) ? dup(s->shm) : -1;
		um_clear(d);
		d->fd = fd;
		d->shm = shm;
		d->npages = s->npages;
	}
	pthread_mutex_unlock(&ps.lock);
}

/* Put contents for page off into the memory file of s. */
static void fill_fn(void *arg)
{
	struct touch_arg *t = arg;

	memset((void *)t->p, (int)t->val, PG);
}

static void um_fill(struct fz *f, struct umslot *s, uint64_t off)
{
	unsigned char *srv = s->srv;
	int shm = s->shm;

	switch (below(f, 10)) {
	case 0:		/* nothing: a hole reads as zeros */
		break;
	case 1: case 2: case 3:
		if (srv && off < s->srvlen / PG) {
			struct touch_arg t = { .p = srv + off * PG,
					       .val = off + 1 };

			if (guarded(fill_fn, &t))
				EV(EV_GUARD_SIG);
			break;
		}
		/* fall through */
	default:
		umem_fill(f->buf + SCRATCH - PG, off, 7);
		if (shm >= 0 && pwrite(shm, f->buf + SCRATCH - PG, PG,
				       (off_t)(off * PG)) < 0)
			EV(EV_SYSCALL_ERR);
		break;
	}
}

/* Read pending offsets and (usually) serve them. */
static void um_serve_once(struct fz *f, struct umslot *s, int wait_ms)
{
	uint64_t *offs = (uint64_t *)f->buf;
	int fd = s->fd;
	uint64_t np = s->npages;
	ssize_t n, w;
	size_t cnt;

	if (fd < 0) {
		sleep_ms(2);
		return;
	}
	if (wait_ms && !umem_readable(fd, wait_ms))
		return;
	n = read(fd, offs, 8 * (1 + below(f, 16)));
	count_call(n);
	if (n <= 0)
		return;
	cnt = n / 8;
	EVN(EV_REQS_READ, cnt);
	if (chance(f, 2))
		return;			/* forget them (a sweep serves them) */
	for (size_t i = 0; i < cnt; i++)
		if (offs[i] < np)
			um_fill(f, s, offs[i]);
	if (chance(f, 10))
		sleep_ms(below(f, 30));
	if (cnt > 1 && chance(f, 20)) {		/* reorder */
		uint64_t t = offs[0];

		offs[0] = offs[cnt - 1];
		offs[cnt - 1] = t;
	}
	if (chance(f, 5))
		offs[cnt++] = chance(f, 50) ? offs[0] : rnd(f);	/* dup / junk */
	w = write(fd, offs, cnt * 8);
	count_call(w);
	if (w > 0)
		EVN(EV_SERVED, w / 8);
}

/*
 * Serve every page that can be mapped at once: requests that a server
 * forgot, or that a read consumed without serving (fuzzed reads, reads
 * into a umem page, a killed child server), are never reported again.
 * The server loop sweeps every area about once a second, which bounds
 * how long a fault waits; a fault that waits much longer is a stall.
 */
static void um_sweep(struct fz *f, struct umslot *s)
{
	uint64_t *offs = (uint64_t *)f->buf;
	uint64_t np = s->npages;
	size_t n = UM_MAXMAP + 4;	/* a mapping's offset is at most 2 pages */
	ssize_t w;

	if (s->fd < 0)
		return;
	/*
	 * In order, and whatever np says (the slot may not know the area's
	 * size: INIT through a dup'ed fd): the write stops at the first
	 * offset past the end, having served those before it.
	 */
	for (size_t i = 0; i < n; i++) {
		offs[i] = i;
		if (i < np)
			um_fill(f, s, i);
	}
	w = write(s->fd, offs, n * 8);
	count_call(w);
	if (w > 0)
		EVN(EV_PUSHED, w / 8);
}

/*
 * Serve every umem fd of this process, whatever table it is in (a dup of a
 * stale fd number can land a umem fd in the ummunotify table, keeping an
 * area alive that no slot knows): zeros for the pages it did not fill.
 */
static void um_sweep_fds(struct fz *f)
{
	uint64_t *offs = (uint64_t *)f->buf;
	char *d = (char *)f->buf + 4096;
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (dfd < 0)
		return;
	for (size_t i = 0; i < UM_MAXMAP + 4; i++)
		offs[i] = i;
	while ((n = syscall(SYS_getdents64, dfd, d, 8192)) > 0) {
		for (long o = 0; o < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *de = (void *)(d + o);
			char link[32];
			ssize_t l = readlinkat(dfd, de->name, link, sizeof(link) - 1);
			int fd = atoi(de->name);

			o += de->reclen;
			if (l <= 0 || fd == dfd)
				continue;
			link[l] = 0;
			if (strcmp(link, UM_DEV))
				continue;
			l = write(fd, offs, (UM_MAXMAP + 4) * 8);
			if (l > 0)
				EVN(EV_PUSHED, l / 8);
		}
	}
	close(dfd);
}

static void op_um_read(struct fz *f)
{
	struct umslot *s = pick_um(f);

	if (chance(f, 60)) {
		um_serve_once(f, s, below(f, 20));
		return;
	}
	/* Locked: the buffer may be a page of this area (see kt_readinto). */
	pthread_mutex_lock(&ps.lock);
	count_call(read(s->fd, arg_ptr(f, 60), chance(f, 50) ? 8 * (1 + below(f, 4)) : fz_size(f)));
	pthread_mutex_unlock(&ps.lock);
}

static void op_um_write(struct fz *f)
{
	struct umslot *s = pick_um(f);
	uint64_t *offs = (uint64_t *)f->buf;
	size_t n = 1 + below(f, 8), sz;
	void *p = arg_ptr(f, 80);

	for (size_t i = 0; i < n; i++)
		offs[i] = chance(f, 80) ? below(f, s->npages + 2) : rnd(f);
	sz = chance(f, 80) ? n * 8 : fz_size(f);
	if (p != (void *)offs)
		sz = chance(f, 50) ? 8 : fz_size(f);
	pthread_mutex_lock(&ps.lock);	/* as in op_um_read */
	count_call(write(s->fd, p, sz));
	pthread_mutex_unlock(&ps.lock);
}

static void op_um_push(struct fz *f)
{
	struct umslot *s = pick_um(f);
	uint64_t *offs = (uint64_t *)f->buf;
	uint64_t np = s->npages;
	size_t n = 1 + below(f, 8);
	ssize_t w;

	if (!np)
		return;
	for (size_t i = 0; i < n; i++) {
		offs[i] = below(f, np < UM_MAXMAP ? np : UM_MAXMAP);
		um_fill(f, s, offs[i]);
	}
	w = write(s->fd, offs, n * 8);
	count_call(w);
	if (w > 0)
		EVN(EV_PUSHED, w / 8);
}

static void op_um_punch(struct fz *f)
{
	struct umslot *s = pick_um(f);
	uint64_t np = s->npages;
	unsigned char *srv = s->srv;
	uint64_t a = below(f, np + 1), n = 1 + below(f, 8);

	switch (below(f, 5)) {
	case 0: case 1:
		count_call(fallocate(s->shm, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     a * PG, n * PG));
		break;
	case 2:
		if (srv && a < s->srvlen / PG) {
			if (a + n > s->srvlen / PG)
				n = s->srvlen / PG - a;
			count_call(madvise(srv + a * PG, n * PG, MADV_REMOVE));
		}
		break;
	case 3:
		count_call(ftruncate(s->shm, chance(f, 50) ? 0 : a * PG));
		break;
	default:
		count_call(ftruncate(s->shm, np * PG));
		break;
	}
}

static void op_um_poll(struct fz *f)
{
	struct pollfd p[NUM];

	for (int i = 0; i < NUM; i++)
		p[i] = (struct pollfd){ .fd = ps.um[i].fd,
					.events = POLLIN | POLLOUT | POLLPRI };
	count_call(poll(p, NUM, below(f, 30)));
}

static void op_um_nonblock(struct fz *f)
{
	toggle_nonblock(f, pick_um(f)->fd);
}

static void count_touch(int sig)
{
	switch (sig) {
	case 0:
		EV(EV_TOUCH_OK);
		break;
	case SIGBUS:
		EV(EV_TOUCH_BUS);
		break;
	case SIGSEGV:
		EV(EV_TOUCH_SEGV);
		break;
	default:
		EV(EV_TOUCH_INTR);
		break;
	}
}

static void whole_page_fn(void *arg)
{
	struct touch_arg *t = arg;
	volatile uint64_t *w = (volatile uint64_t *)t->p;

	for (size_t i = 0; i < PG / 8; i++)
		t->val += w[i];
}

/* The user side: touch pages of a umem mapping. */
static void op_um_touch(struct fz *f)
{
	struct umslot *s = pick_um(f);
	unsigned char *p = s->cli;
	size_t l = s->clilen, pages = l / PG;
	struct touch_arg t = { .len = 1 };

	if (!p || !pages)
		return;
	t.p = p + below(f, pages) * PG + below(f, PG);
	t.write = chance(f, 30);
	t.val = rnd(f);
	if (chance(f, 20)) {
		t.p = p + below(f, pages) * PG;
		count_touch(guarded(whole_page_fn, &t));
		return;
	}
	if (chance(f, 15)) {		/* several pages, one after the other */
		t.p = p;
		t.len = l;
	}
	count_touch(guarded(touch_fn, &t));
}

static unsigned char *um_page_ptr(struct fz *f, size_t *len)
{
	struct umslot *s = pick_um(f);
	unsigned char *p = s->cli;
	size_t pages = s->clilen / PG;

	if (!p || !pages)
		return NULL;
	p += below(f, pages) * PG;
	*len = chance(f, 60) ? PG : 1 + below(f, PG);
	if (chance(f, 20))
		p += below(f, PG / 2);
	return p;
}

static void count_ktouch(long r)
{
	EV(r < 0 ? EV_KTOUCH_ERR : EV_KTOUCH_OK);
}

/* The kernel copies from a umem page: write() to a pipe. */
static void op_um_kt_pipe(struct fz *f)
{
	size_t len;
	unsigned char *p = um_page_ptr(f, &len);

	if (!p)
		return;
	count_ktouch(write(f->pipe[1], p, len));
	while (read(f->pipe[0], f->buf, SCRATCH) > 0)
		;
}

/* GUP without FAULT_FLAG_ALLOW_RETRY: /proc/self/mem. */
static void op_um_kt_procmem(struct fz *f)
{
	size_t len;
	unsigned char *p = um_page_ptr(f, &len);
	int fd;

	if (!p)
		return;
	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		internal_error("open /proc/self/mem");
		return;
	}
	count_ktouch(pread(fd, f->buf, len, (off_t)(uintptr_t)p));
	close(fd);
}

/* GUP with a locked argument (retry allowed): process_vm_readv. */
static void op_um_kt_vmreadv(struct fz *f)
{
	size_t len;
	unsigned char *p = um_page_ptr(f, &len);
	struct iovec l = { f->buf, PG }, r;

	if (!p)
		return;
	r = (struct iovec){ p, len };
	count_ktouch(process_vm_readv(getpid(), &l, 1, &r, 1, 0));
}

/* The kernel copies *to* a umem page: read() from a pipe, from an fd. */
static void op_um_kt_readinto(struct fz *f)
{
	size_t len;
	unsigned char *p = um_page_ptr(f, &len);
	int fd;

	if (!p)
		return;
	switch (below(f, 4)) {
	case 0: case 1:
		if (write(f->pipe[1], f->buf, len) < 0)
			EV(EV_SYSCALL_ERR);
		count_ktouch(read(f->pipe[0], p, len));
		while (read(f->pipe[0], f->buf, SCRATCH) > 0)
			;
		break;
	case 2:		/* a ummunotify read into it */
		fd = pick_un(f);
		count_ktouch(read(fd, p, len / EVSZ * EVSZ));
		break;
	default:	/* an area's pending offsets into a umem page */
		/*
		 * Under ps.lock, so that no other thread closes the fd
		 * meanwhile: a read() holds its file, and if the page is of
		 * that same area, with its last fd closed nobody could
		 * serve it any more (a killable wait until the worker dies).
		 */
		pthread_mutex_lock(&ps.lock);
		fd = pick_um(f)->fd;
		count_ktouch(read(fd, p, len / 8 * 8));
		pthread_mutex_unlock(&ps.lock);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* VM operations on registered ranges, umem mapping, counter page      */

static void op_vm_mmap(struct fz *f)
{
	size_t len;
	unsigned char *a = vm_target(f, &len);
	int prot = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE | MAP_ANONYMOUS;
	int fd = -1;
	off_t off = 0;
	void *m;

	switch (below(f, 7)) {
	case 0:
		fl = MAP_SHARED | MAP_ANONYMOUS;
		break;
	case 1:
		fl = MAP_SHARED;
		fd = ps.memfd;
		off = below(f, MEMFD_PAGES) * PG;
		break;
	case 2:
		fl = MAP_PRIVATE;
		fd = ps.memfd;
		off = below(f, MEMFD_PAGES) * PG;
		break;
	case 3:
		prot = PROT_NONE;
		break;
	case 4:
		prot = PROT_READ;
		break;
	}
	if (chance(f, 25))
		fl |= MAP_POPULATE;
	m = mmap(a, len, prot, fl | MAP_FIXED, fd, off);
	count_call(m == MAP_FAILED ? -1 : 0);
	if (m == MAP_FAILED)
		arena_fix(a, len);
}

static void op_vm_munmap(struct fz *f)
{
	size_t len;
	unsigned char *a = vm_target(f, &len);

	if (chance(f, 10) && len > PG)
		len -= below(f, len);	/* unaligned length */
	count_call(munmap(a, len));
	arena_fix(a, len);
}

static void op_vm_mremap(struct fz *f)
{
	size_t len, nlen, dlen;
	unsigned char *a = vm_target(f, &len), *d;
	struct umslot *s = pick_um(f);
	int fl;
	void *m;

	d = arena_range(f, &dlen);
	switch (below(f, 5)) {
	case 0:			/* shrink in place */
		nlen = len > PG ? len - PG * (1 + below(f, len / PG - 1)) : len;
		fl = 0;
		d = NULL;
		break;
	case 1:			/* grow in place: the reserve is in the way */
		/* (not at the arena's end: beyond it nothing is reserved) */
		nlen = a + len + PG <= arena_end() ? len + PG : len;
		fl = 0;
		d = NULL;
		break;
	case 2:			/* move keeping the source */
		nlen = len;
		fl = MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP;
		break;
	default:		/* move */
		nlen = chance(f, 80) ? len : dlen;
		fl = MREMAP_MAYMOVE | MREMAP_FIXED;
		break;
	}
	if (d && d + nlen > arena_end())
		d = arena_end() - nlen;
	m = d ? mremap(a, len, nlen, fl, d) : mremap(a, len, nlen, fl);
	count_call(m == MAP_FAILED ? -1 : 0);
	if (m != MAP_FAILED && m != a && (unsigned char *)m >= ps.arena &&
	    (unsigned char *)m < arena_end() && a == s->cli) {
		s->cli = m;
		s->clilen = nlen;
	}
	arena_fix(a, len);
	if (d)
		arena_fix(d, nlen);
	if (m != MAP_FAILED && ((unsigned char *)m < ps.arena ||
				(unsigned char *)m + nlen > arena_end())) {
		/* never: moves are MREMAP_FIXED, growth stays inside */
		errno = 0;
		internal_error("mremap left the arena");
		munmap(m, nlen);
	}
}

static void op_vm_mprotect(struct fz *f)
{
	static const int prots[] = {
		PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE,
		PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE,
	};
	size_t len;
	unsigned char *a = vm_target(f, &len);

	count_call(mprotect(a, len, prots[below(f, 6)]));
}

static const int advices[] = {
	MADV_DONTNEED, MADV_DONTNEED, MADV_PAGEOUT, MADV_COLD, MADV_DOFORK,
	MADV_DONTFORK, MADV_REMOVE, MADV_FREE, MADV_WILLNEED, MADV_HUGEPAGE,
	MADV_NOHUGEPAGE, MADV_COLLAPSE, MADV_POPULATE_READ,
	MADV_POPULATE_WRITE, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_NORMAL,
	MADV_RANDOM, MADV_SEQUENTIAL, MADV_DOFORK,
};

static void op_vm_madvise(struct fz *f)
{
	size_t len;
	unsigned char *a = vm_target(f, &len);
	int adv = advices[below(f, ARRAY_SIZE(advices))];

	if (chance(f, 3))
		adv = below(f, 31);	/* never 100/101 (hwpoison) */
	if (chance(f, 5))
		len = len - below(f, len) + 1;
	count_call(madvise(a, len, adv));
}

static void op_vm_touch(struct fz *f)
{
	size_t len;
	struct touch_arg t;

	t.p = vm_target(f, &len);
	t.len = len;
	t.write = chance(f, 60);
	t.val = rnd(f);
	if (guarded(touch_fn, &t))
		EV(EV_GUARD_SIG);
}

/* ------------------------------------------------------------------ */
/* Processes and signals                                                */

static void fuzz_loop(struct fz *f, uint64_t end);
static void server_loop(struct fz *f, uint64_t end);

static void reap_children(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == ps.child)
			ps.child = 0;
		if ((WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
		    (WIFSIGNALED(st) && (WTERMSIG(st) == SIGKILL ||
					 WTERMSIG(st) == SIGALRM)))
			continue;
		EV(EV_INTERNAL);
		msg("# ummu_fuzz: child %d of %d ended with status 0x%x\n",
		    pid, getpid(), st);
	}
}

/* A forked child: keeps fuzzing, serves the inherited fds, or exits. */
static __attribute__((noreturn)) void child_main(struct fz *f, uint64_t cseed,
						 int mode, unsigned int life_ms)
{
	struct itimerval it = { .it_value = { life_ms / 1000,
					      (life_ms % 1000) * 1000 } };

	ps.depth = 1;
	ps.pid = getpid();
	ps.child = 0;
	pthread_mutex_init(&ps.lock, NULL);
	rng_init(&f->r, cseed, 0xc41d, mode, life_ms);
	setitimer(ITIMER_REAL, &it, NULL);	/* SIGALRM: default, fatal */
	__atomic_store_n(&sh->kid[ps.slot].deadline, now_ms() + life_ms,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&sh->kid[ps.slot].pid, getpid(), __ATOMIC_RELEASE);
	if (mode == 0)
		_exit(0);
	/* Its own pipe: a pipe lock held by a blocked child is not ours. */
	close(f->pipe[0]);
	close(f->pipe[1]);
	if (pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC))
		_exit(3);
	timer_setup(f);
	if (mode == 1)
		server_loop(f, now_ms() + life_ms + 1000);
	else
		fuzz_loop(f, now_ms() + life_ms + 1000);
	_exit(0);
}

static void op_fork(struct fz *f)
{
	uint64_t cseed = rnd(f);
	int mode = below(f, 4);
	unsigned int life_ms = 50 + below(f, 2500);
	pid_t pid;

	if (ps.depth || f->tidx || ps.child)
		return;
	pid = fork();
	count_call(pid);
	if (pid < 0)
		return;
	if (pid == 0)
		child_main(f, cseed, mode, life_ms);
	ps.child = pid;
	EV(EV_FORKS);
}

static void op_kill_child(struct fz *f)
{
	pid_t pid = ps.child;
	int pidfd;

	if (ps.depth || f->tidx || !pid)
		return;
	switch (below(f, 4)) {
	case 0: case 1:
		pidfd = syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			return;
		if (!syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0)) {
			EV(EV_CHILD_KILLS);
			if (chance(f, 70))
				EV(syscall(SYS_process_mrelease, pidfd, 0) ?
				   EV_CHILD_MRELEASE_ERR : EV_CHILD_MRELEASE_OK);
		}
		close(pidfd);
		break;
	case 2:
		if (!kill(pid, SIGKILL))
			EV(EV_CHILD_KILLS);
		break;
	default:
		/*
		 * Stop it for a moment.  Not for long: a stopped process
		 * does not act on its fatal SIGALRM, and its fds (umem
		 * fds among them) would keep areas alive, faults waiting.
		 */
		if (!kill(pid, SIGSTOP)) {
			sleep_ms(below(f, 50));
			kill(pid, SIGCONT);
		}
		break;
	}
	sleep_ms(below(f, 5));
	reap_children();
}

static void op_signal(struct fz *f)
{
	pid_t tid = ps.tids[below(f, NTHREADS)];

	if (tid > 0 && ps.depth == 0)
		count_call(syscall(SYS_tgkill, ps.pid, tid,
				   chance(f, 70) ? SIGUSR1 : SIGUSR2));
}

/* ------------------------------------------------------------------ */
/* The op table                                                         */

enum { ANY, MAIN };

struct op {
	const char *name;
	void (*fn)(struct fz *f);
	int weight;
	int who;
};

static const struct op ops[] = {
	{ "un_open", op_un_open, 4, ANY },
	{ "un_close", op_un_close, 2, ANY },
	{ "un_dup", op_un_dup, 2, ANY },
	{ "un_features", op_un_features, 2, ANY },
	{ "un_register", op_un_register, 14, ANY },
	{ "un_unregister", op_un_unregister, 7, ANY },
	{ "un_ioctl_bad", op_un_ioctl_bad, 2, ANY },
	{ "un_read", op_un_read, 8, ANY },
	{ "un_write", op_un_write, 1, ANY },
	{ "un_poll", op_un_poll, 3, ANY },
	{ "un_nonblock", op_un_nonblock, 2, ANY },
	{ "un_mmap", op_un_mmap, 3, ANY },
	{ "um_open", op_um_open, 2, ANY },
	{ "um_badmode", op_um_badmode, 1, ANY },
	{ "um_init", op_um_init, 3, ANY },
	{ "um_anon", op_um_anon, 1, ANY },
	{ "um_ioctl_bad", op_um_ioctl_bad, 1, ANY },
	{ "um_mmap", op_um_mmap, 4, ANY },
	{ "um_close", op_um_close, 1, ANY },
	{ "um_dup", op_um_dup, 1, ANY },
	{ "um_read", op_um_read, 3, ANY },
	{ "um_write", op_um_write, 3, ANY },
	{ "um_push", op_um_push, 3, ANY },
	{ "um_punch", op_um_punch, 2, ANY },
	{ "um_poll", op_um_poll, 2, ANY },
	{ "um_nonblock", op_um_nonblock, 1, ANY },
	{ "um_touch", op_um_touch, 14, ANY },
	{ "um_kt_pipe", op_um_kt_pipe, 3, ANY },
	{ "um_kt_procmem", op_um_kt_procmem, 2, ANY },
	{ "um_kt_vmreadv", op_um_kt_vmreadv, 2, ANY },
	{ "um_kt_readinto", op_um_kt_readinto, 2, ANY },
	{ "vm_mmap", op_vm_mmap, 5, ANY },
	{ "vm_munmap", op_vm_munmap, 4, ANY },
	{ "vm_mremap", op_vm_mremap, 3, ANY },
	{ "vm_mprotect", op_vm_mprotect, 3, ANY },
	{ "vm_madvise", op_vm_madvise, 9, ANY },
	{ "vm_touch", op_vm_touch, 6, ANY },
	{ "fork", op_fork, 2, MAIN },
	{ "kill_child", op_kill_child, 2, MAIN },
	{ "signal", op_signal, 2, ANY },
};

#define NOPS ((int)ARRAY_SIZE(ops))
_Static_assert(ARRAY_SIZE(ops) <= NOPS_MAX, "NOPS_MAX");

static int op_total_weight;

static int pick_op(struct fz *f)
{
	for (;;) {
		int w = below(f, op_total_weight), i = 0;

		while (w >= ops[i].weight)
			w -= ops[i++].weight;
		if (ops[i].who == MAIN && (f->tidx || ps.depth))
			continue;
		return i;
	}
}

static void heartbeat(struct fz *f, int op)
{
	if (ps.depth)
		return;
	__atomic_store_n(&sh->w[ps.slot].hb[f->tidx], now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&sh->w[ps.slot].cur[f->tidx], op, __ATOMIC_RELAXED);
}

static void fuzz_loop(struct fz *f, uint64_t end)
{
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED) && now_ms() < end) {
		int op = pick_op(f);

		heartbeat(f, op);
		timer_arm(f);
		ops[op].fn(f);
		timer_disarm(f);
		heartbeat(f, -1);
		__atomic_fetch_add(&sh->op[op], 1, __ATOMIC_RELAXED);
		if (f->tidx == 0 && ps.depth == 0)
			reap_children();
	}
}

static int op_index(void (*fn)(struct fz *))
{
	for (int i = 0; i < NOPS; i++)
		if (ops[i].fn == fn)
			return i;
	return 0;
}

/* The server side: mostly serving, sometimes pushing, punching, on strike. */
static void server_loop(struct fz *f, uint64_t end)
{
	int i_read = op_index(op_um_read), i_push = op_index(op_um_push);
	int i_punch = op_index(op_um_punch);
	uint64_t next_sweep = now_ms() + 1000;

	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED) && now_ms() < end) {
		struct umslot *s = pick_um(f);
		int k = below(f, 100), op;

		if (now_ms() >= next_sweep) {
			heartbeat(f, i_push);
			timer_arm(f);
			for (int i = 0; i < NUM; i++)
				um_sweep(f, &ps.um[i]);
			um_sweep_fds(f);
			timer_disarm(f);
			next_sweep = now_ms() + 500 + below(f, 1000);
		}

		op = k < 85 ? i_read : k < 93 ? i_push : i_punch;
		heartbeat(f, op);
		timer_arm(f);
		if (k < 85) {
			um_serve_once(f, s, 1 + below(f, 50));
		} else if (k < 88) {
			um_sweep(f, s);
		} else if (k < 93) {
			op_um_push(f);
		} else if (k < 97) {
			op_um_punch(f);
		} else {
			sleep_ms(100 + below(f, 500));	/* strike: faults block */
		}
		timer_disarm(f);
		heartbeat(f, -1);
		__atomic_fetch_add(&sh->op[op], 1, __ATOMIC_RELAXED);
	}
}

/* ------------------------------------------------------------------ */
/* A worker process                                                     */

static struct fz *fz_new(int tidx, int gen, pthread_barrier_t *start)
{
	struct fz *f = mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (f == MAP_FAILED)
		return NULL;
	memset(f, 0, sizeof(*f));
	/*
	 * A guard page after the scratch buffer: a fuzzed read() with a huge
	 * size into it (from whatever file a stale fd number now is, e.g. a
	 * big memory file) must stop there, not overwrite what follows.
	 */
	f->buf = mmap(NULL, SCRATCH + PG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->buf == MAP_FAILED || mprotect(f->buf + SCRATCH, PG, PROT_NONE))
		return NULL;
	memset(f->buf, 0, SCRATCH);
	if (pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC))
		return NULL;
	rng_init(&f->r, g_seed, ps.slot + 1, gen, tidx);
	f->tidx = tidx;
	f->start = start;
	return f;
}

static void *thread_main(void *arg)
{
	struct fz *f = arg;

	timer_setup(f);
	ps.tids[f->tidx] = f->tid;
	free(malloc(64));	/* this thread's malloc arena, now */
	pthread_barrier_wait(f->start);
	if (f->tidx == SERVER_T)
		server_loop(f, UINT64_MAX);
	else
		fuzz_loop(f, UINT64_MAX);
	return NULL;
}

static __attribute__((noreturn)) void worker_main(int slot, int gen)
{
	static pthread_barrier_t start;
	struct fz *f[NTHREADS];
	pthread_t th;
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setpgid(0, pgid) && getpgrp() != pgid)
		_exit(3);
	install_handlers();
	memset(&ps, 0, sizeof(ps));
	ps.slot = slot;
	ps.pid = getpid();
	pthread_mutex_init(&ps.lock, NULL);
	for (int i = 0; i < NUN; i++)
		ps.un[i] = -1;
	for (int i = 0; i < NUM; i++)
		ps.um[i].fd = ps.um[i].shm = -1;
	/* Plus a guard page that no op touches (see fz_new()). */
	ps.arena = mmap(NULL, (ARENA_PAGES + 1) * PG, PROT_NONE, fl, -1, 0);
	ps.none = mmap(NULL, PG, PROT_NONE, fl, -1, 0);
	ps.ro = mmap(NULL, PG, PROT_READ, fl, -1, 0);
	ps.memfd = memfd_create("ummu_fuzz", MFD_CLOEXEC);
	if (ps.arena == MAP_FAILED || ps.none == MAP_FAILED ||
	    ps.ro == MAP_FAILED || ps.memfd < 0 ||
	    ftruncate(ps.memfd, MEMFD_PAGES * PG)) {
		internal_error("worker setup");
		_exit(3);
	}
	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		f[i] = fz_new(i, gen, &start);
		if (!f[i]) {
			internal_error("thread setup");
			_exit(3);
		}
	}
	/* Something to work on from the start: a context, an area, mapped. */
	ps.un[0] = open(UN_DEV, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ps.um[0].fd = open(UM_DEV, O_RDWR | O_CLOEXEC);
	if (ps.un[0] < 0 || ps.um[0].fd < 0) {
		internal_error("open devices");
		_exit(3);
	}
	um_init_locked(f[0], &ps.um[0], 16 * PG);
	if (mmap(ps.arena, 16 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED, ps.um[0].fd, 0) == ps.arena) {
		ps.um[0].cli = ps.arena;
		ps.um[0].clilen = 16 * PG;
	}
	for (int i = 1; i < NTHREADS; i++)
		if (pthread_create(&th, NULL, thread_main, f[i])) {
			internal_error("pthread_create");
			_exit(3);
		}
	thread_main(f[0]);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The supervisor                                                       */

struct wslot {
	pid_t pid;
	int gen;
	uint64_t killed_at;
	int reported;
};

static struct wslot ws[MAX_PROCS];
static int nprocs = 4;

static void spawn(int slot)
{
	pid_t pid;

	ws[slot].gen++;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		internal_error("fork worker");
		return;
	}
	if (pid == 0)
		worker_main(slot, ws[slot].gen);
	setpgid(pid, pgid);
	ws[slot].pid = pid;
	ws[slot].killed_at = 0;
	ws[slot].reported = 0;
	memset(&sh->w[slot], 0, sizeof(sh->w[slot]));
	for (int t = 0; t < NTHREADS; t++)
		sh->w[slot].cur[t] = -1;
	sh->w[slot].pid = pid;
	sh->w[slot].gen = ws[slot].gen;
	EV(EV_WORKERS);
	if (g_verbose)
		printf("# worker %d gen %d: pid %d\n", slot, ws[slot].gen, pid);
}

static int read_file(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	buf[0] = 0;
	if (fd < 0)
		return -1;
	n = read(fd, buf, sz - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

/* state, pgrp of a process from /proc/PID/stat; 0 when gone. */
static char proc_state(pid_t pid, pid_t *pgrp)
{
	char path[64], buf[1024], *p;
	char st;
	int ppid, grp;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %d %d", &st, &ppid, &grp) != 3)
		return 0;
	if (pgrp)
		*pgrp = grp;
	return st;
}

/* Every task of pid: state, wchan, kernel stack. */
static void dump_tasks(pid_t pid)
{
	char path[128], buf[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d) {
		printf("#   pid %d: no /proc entry\n", pid);
		return;
	}
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);
		char st = '?', wchan[128], sys[256];

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
		if (read_file(path, buf, sizeof(buf)) > 0 && strrchr(buf, ')'))
			st = strrchr(buf, ')')[2];
		snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
		read_file(path, wchan, sizeof(wchan));
		snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", pid, tid);
		read_file(path, sys, sizeof(sys));
		if (strchr(sys, '\n'))
			*strchr(sys, '\n') = 0;
		printf("#   pid %d tid %d state %c wchan %s syscall %s\n", pid,
		       tid, st, wchan[0] ? wchan : "-", sys);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stack", pid, tid);
		if (read_file(path, buf, sizeof(buf)) > 0) {
			for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
				printf("#     %s\n", l);
		}
	}
	closedir(d);
}

/* The umem areas of pid as its fdinfo shows them, and its umem mappings. */
static void dump_umem(pid_t pid)
{
	char path[320], link[128], buf[1024];
	struct dirent *de;
	DIR *d;
	FILE *m;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strstr(link, "umem"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, de->d_name);
		read_file(path, buf, sizeof(buf));
		for (char *c = buf; *c; c++)
			if (*c == '\n' || *c == '\t')
				*c = ' ';
		printf("#   fd %s -> %s: %s\n", de->d_name, link, buf);
	}
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	m = fopen(path, "r");
	if (!m)
		return;
	while (fgets(buf, sizeof(buf), m))
		if (strstr(buf, "umem"))
			printf("#   map %s", buf);
	fclose(m);
}

/* The children of pid (a worker's forked fuzzers and servers). */
static void dump_children(pid_t parent)
{
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[64], buf[512], *p;
		pid_t pid = atoi(de->d_name);
		int ppid = 0;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (read_file(path, buf, sizeof(buf)) <= 0)
			continue;
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != parent)
			continue;
		printf("#  child %d of %d:\n", pid, parent);
		dump_tasks(pid);
		dump_umem(pid);
	}
	closedir(d);
}

/* Members of the fuzzing process group still in /proc. */
static int group_members(pid_t *out, int max)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		pid_t pid = atoi(de->d_name), grp = 0;

		if (pid <= 0 || !proc_state(pid, &grp) || grp != pgid)
			continue;
		if (n < max)
			out[n] = pid;
		n++;
	}
	closedir(d);
	return n;
}

static void classify(pid_t pid, int st)
{
	int slot = -1;

	for (int i = 0; i < nprocs; i++)
		if (ws[i].pid == pid)
			slot = i;
	if (slot >= 0) {
		ws[slot].pid = 0;
		sh->w[slot].pid = 0;
	}
	if ((WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
	    (WIFSIGNALED(st) && (WTERMSIG(st) == SIGKILL || WTERMSIG(st) == SIGALRM)))
		return;
	EV(EV_INTERNAL);
	printf("# %s %d ended with %s %d\n", slot >= 0 ? "worker" : "process",
	       pid, WIFSIGNALED(st) ? "signal" : "exit status",
	       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static int in_fault_op(int op)
{
	return op >= 0 && op < NOPS && !strncmp(ops[op].name, "um_", 3) &&
	       (strstr(ops[op].name, "touch") || strstr(ops[op].name, "kt_"));
}

static void kill_worker(struct rng *r, int slot, const char *why)
{
	pid_t pid = ws[slot].pid;
	int pidfd = syscall(SYS_pidfd_open, pid, 0);

	for (int t = 0; t < NTHREADS; t++)
		if (in_fault_op(sh->w[slot].cur[t])) {
			EV(EV_KILLED_IN_FAULT);
			break;
		}
	if (pidfd < 0) {
		kill(pid, SIGKILL);
	} else {
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		if (rng_below(r, 100) < 60) {
			if (syscall(SYS_process_mrelease, pidfd, 0))
				EV(EV_MRELEASE_ERR);
			else
				EV(EV_MRELEASE_OK);
		}
		close(pidfd);
	}
	ws[slot].killed_at = now_ms();
	if (g_verbose)
		printf("# %s: killed worker %d (pid %d)\n", why, slot, pid);
}

static void watchdog(struct rng *r)
{
	uint64_t now = now_ms();

	for (int i = 0; i < nprocs; i++) {
		struct kid_view *k = &sh->kid[i];
		pid_t pid = __atomic_load_n(&k->pid, __ATOMIC_ACQUIRE), grp = 0;
		char st;

		if (!pid || now < __atomic_load_n(&k->deadline, __ATOMIC_RELAXED) + 500)
			continue;
		st = proc_state(pid, &grp);
		if (st && st != 'Z' && grp == pgid) {
			if (g_verbose)
				printf("# child %d of worker %d overdue (state %c): killing it\n",
				       pid, i, st);
			kill(pid, SIGKILL);
			EV(EV_CHILD_OVERDUE);
		}
		__atomic_compare_exchange_n(&k->pid, &pid, 0, 0, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	}

	for (int i = 0; i < nprocs; i++) {
		struct worker_view *v = &sh->w[i];

		if (!ws[i].pid)
			continue;
		if (ws[i].killed_at) {
			if (now - ws[i].killed_at > REAP_MS && !ws[i].reported) {
				ws[i].reported = 1;
				printf("# worker %d (pid %d) not reaped %d ms after SIGKILL:\n",
				       i, ws[i].pid, REAP_MS);
				dump_tasks(ws[i].pid);
			}
			continue;
		}
		for (int t = 0; t < NTHREADS; t++) {
			uint64_t hb = __atomic_load_n(&v->hb[t], __ATOMIC_RELAXED);
			int op = __atomic_load_n(&v->cur[t], __ATOMIC_RELAXED);

			if (!hb || op < 0 || hb > now || now - hb < STALL_MS)
				continue;
			printf("# stall: worker %d (pid %d) thread %d in op %s for %" PRIu64
			       " ms; killing it\n", i, ws[i].pid, t, ops[op].name,
			       now - hb);
			dump_tasks(ws[i].pid);
			dump_umem(ws[i].pid);
			dump_children(ws[i].pid);
			EV(EV_STALL_KILLS);
			kill_worker(r, i, "stall");
			break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* After the run: both devices still work.                             */

static int run_checked(void (*fn)(void))
{
	int st;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 0;
	if (pid == 0) {
		alarm(30);
		fn();
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid)
		return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void sane_ummunotify(void)
{
	int fd = open(UN_DEV, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct ummunotify_register_ioctl r = { .user_cookie = 123 };
	struct ummunotify_event ev;
	volatile uint64_t *ctr;
	unsigned char *p;

	ASSERT_OK(fd);
	p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	ctr = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_TRUE(ctr != MAP_FAILED);
	r.start = (uintptr_t)p;
	r.end = (uintptr_t)p + 3 * PG;
	ASSERT_OK(ioctl(fd, UMMUNOTIFY_REGISTER_REGION, &r));
	ASSERT_OK(munmap(p + PG, PG));
	ASSERT_EQ(*ctr, 1);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_INVAL);
	ASSERT_EQ(ev.user_cookie_counter, 123);
	ASSERT_EQ(ev.flags, UMMUNOTIFY_EVENT_FLAG_HINT);
	ASSERT_EQ(ev.hint_start, (uintptr_t)p + PG);
	ASSERT_EQ(ev.hint_end, (uintptr_t)p + 2 * PG);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.type, UMMUNOTIFY_EVENT_TYPE_LAST);
	ASSERT_EQ(ev.user_cookie_counter, 1);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	ASSERT_OK(ioctl(fd, UMMUNOTIFY_UNREGISTER_REGION, &r.user_cookie));
	ASSERT_OK(close(fd));
}

struct sane_srv {
	int fd;
	unsigned char *srv;
};

static void *sane_server(void *arg)
{
	struct sane_srv *s = arg;
	uint64_t off = umem_read1(s->fd);

	ASSERT_EQ(off, 2);
	umem_fill(s->srv + off * PG, off, 5);
	umem_serve1(s->fd, off);
	return NULL;
}

static void sane_umem(void)
{
	struct sane_srv s;
	int sfd;
	unsigned char *p;
	pthread_t th;

	s.fd = umem_create(4 * PG, &sfd);
	s.srv = umem_shmem_map(sfd, 4 * PG);
	p = umem_map(s.fd, 4 * PG);
	ASSERT_OK(-pthread_create(&th, NULL, sane_server, &s));
	ASSERT_TRUE(umem_check(p + 2 * PG, 2, 5));
	ASSERT_OK(-pthread_join(th, NULL));
	umem_assert_nothing_pending(s.fd);
	ASSERT_OK(munmap(p, 4 * PG));
	ASSERT_OK(close(s.fd));
	ASSERT_OK(close(sfd));
}

/* ------------------------------------------------------------------ */

static int passed, failed;

static void check(int ok, const char *name)
{
	ok ? passed++ : failed++;
	printf("%sok %d %s\n", ok ? "" : "not ", passed + failed, name);
}

static void print_stats(void)
{
	char line[160];
	int n = 0;

	printf("# op counts:\n");
	for (int i = 0; i < NOPS; i++) {
		n += snprintf(line + n, sizeof(line) - n, " %s=%" PRIu64,
			      ops[i].name, sh->op[i]);
		if (n > 60 || i == NOPS - 1) {
			printf("#  %s\n", line);
			n = 0;
		}
	}
	printf("# events:\n");
	for (int i = 0; i < NEV; i++) {
		n += snprintf(line + n, sizeof(line) - n, " %s=%" PRIu64,
			      ev_names[i], sh->ev[i]);
		if (n > 60 || i == NEV - 1) {
			printf("#  %s\n", line);
			n = 0;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: ummu_fuzz [-s SEED] [-t SECONDS] [-p PROCS] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct timespec ts;
	struct rng r;
	uint64_t t_end, next_kill, total = 0;
	int secs = 20, c, st, unreaped = 0;
	pid_t pid, holder, left[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	g_seed = ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	while ((c = getopt(argc, argv, "s:t:p:vh")) != -1) {
		switch (c) {
		case 's':
			g_seed = strtoull(optarg, NULL, 0);
			break;
		case 't':
			secs = atoi(optarg);
			break;
		case 'p':
			nprocs = atoi(optarg);
			break;
		case 'v':
			g_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (nprocs < 1 || nprocs > MAX_PROCS || secs < 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# ummu_fuzz: seed %" PRIu64 "\n", g_seed);
	printf("# reproduce: ummu_fuzz -s %" PRIu64 " -t %d -p %d\n", g_seed,
	       secs, nprocs);
	for (int i = 0; i < NOPS; i++)
		op_total_weight += ops[i].weight;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(sh, 0, sizeof(*sh));
	/* Orphaned grandchildren come back to us to be reaped. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		internal_error("PR_SET_CHILD_SUBREAPER");
	signal(SIGPIPE, SIG_IGN);

	/* A process that only holds the fuzzing process group. */
	holder = fork();
	if (holder == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	if (holder < 0) {
		perror("fork");
		return 1;
	}
	setpgid(holder, holder);
	pgid = holder;

	rng_init(&r, g_seed, 0xfeed, 0, 0);
	t_end = now_ms() + secs * 1000ULL;
	for (int i = 0; i < nprocs; i++)
		spawn(i);
	next_kill = now_ms() + 500 + rng_below(&r, 2500);
	while (now_ms() < t_end) {
		sleep_ms(20 + rng_below(&r, 100));
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			classify(pid, st);
		for (int i = 0; i < nprocs; i++)
			if (!ws[i].pid)
				spawn(i);
		watchdog(&r);
		if (now_ms() >= next_kill) {
			int i = rng_below(&r, nprocs);

			if (ws[i].pid && !ws[i].killed_at) {
				EV(EV_WORKER_KILLS);
				kill_worker(&r, i, "random");
			}
			next_kill = now_ms() + 300 + rng_below(&r, 2500);
		}
	}

	/* The end: everything dies, and must be reaped within REAP_MS. */
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
	kill(-pgid, SIGKILL);
	{
		uint64_t deadline = now_ms() + REAP_MS;

		for (;;) {
			int n;

			while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
				if (pid != holder)
					classify(pid, st);
			n = group_members(left, 64);
			if (n == 0)
				break;
			if (now_ms() > deadline) {
				unreaped = n;
				printf("# %d fuzzing process(es) not reaped %d ms after SIGKILL:\n",
				       n, REAP_MS);
				for (int i = 0; i < n && i < 64; i++) {
					pid_t g;

					printf("#  pid %d state %c\n", left[i],
					       proc_state(left[i], &g));
					dump_tasks(left[i]);
				}
				break;
			}
			sleep_ms(20);
		}
	}
	for (int i = 0; i < NOPS; i++)
		total += sh->op[i];
	printf("# ran %" PRIu64 " ops in %d s with %d workers\n", total, secs,
	       nprocs);
	print_stats();

	check(unreaped == 0, "every fuzzing process reaped after SIGKILL");
	check(sh->ev[EV_INTERNAL] == 0, "no fuzzer-internal error");
	check(total > 0, "the fuzzer ran operations");
	check(run_checked(sane_ummunotify), "ummunotify still sane");
	check(run_checked(sane_umem), "umem still sane");
	check(group_members(left, 64) == 0, "no fuzzing process left");
	printf("# seed %" PRIu64 "\n", g_seed);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
