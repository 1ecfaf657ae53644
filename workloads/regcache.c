// SPDX-License-Identifier: GPL-2.0
/*
 * regcache: an RDMA/MPI-style registration cache on /dev/ummunotify.
 *
 * It keeps N buffers registered with /dev/ummunotify (one registration per
 * buffer, like a memory-registration cache keeps one MR per buffer) and
 * churns them with munmap, madvise(MADV_DONTNEED), mprotect, fork and
 * mremap at a chosen rate.  After every operation it polls and reads the
 * events, evicts (unregisters) every entry that got an INVAL, re-maps or
 * re-touches the buffer as the application would, and registers it again
 * with a fresh cookie.  It cross-checks the LAST events against the mmap'd
 * generation counter.
 *
 * Layout: every buffer sits in its own slot of a PROT_NONE reservation with a
 * PROT_NONE guard page after it, so each buffer is exactly one VMA (no VMA
 * merging), and one spare slot is left unmapped for mremap to move into.
 * All of that happens before /dev/ummunotify is opened, and the loop does
 * no other memory-map changes, so in the guest every invalidation this
 * process sees is caused by the chosen operation (see README.md for the
 * per-operation counts measured on 6.1 and 6.12).
 *
 * See --help.  --json prints one summary object on stdout.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <linux/ummunotify.h>

#include "wl_common.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

enum op_kind { OP_UNMAP, OP_DONTNEED, OP_MPROTECT, OP_FORK, OP_MREMAP, OP_NR };

static const char *const op_names[OP_NR] = {
	"unmap", "dontneed", "mprotect", "fork", "mremap",
};

/*
 * The model of what one operation does to this process's registrations,
 * with every buffer registered when it starts (the loop guarantees that):
 * invalidations that hit a registration (the generation counter's
 * increments) and INVAL reports read.  fork hits every buffer, so its
 * figures are per registered buffer.  Measured in the guest: README.md.
 */
static const unsigned int model_gen[OP_NR] = { 1, 1, 1, 1, 2 };
static const unsigned int model_inval[OP_NR] = { 1, 1, 1, 1, 1 };

#define COOKIE_IDX_BITS	20
#define COOKIE_IDX_MASK	((1ull << COOKIE_IDX_BITS) - 1)
#define MAX_BUFFERS	((1u << COOKIE_IDX_BITS) - 1)
#define EVBUF		64

struct buf {
	char *addr;
	char *reg_addr;		/* start of the registered range */
	uint64_t cookie;	/* 0: not registered */
	int mapped;
	int ro;
	int needs_touch;
	int queued;		/* on the re-register list */
};

struct stats {
	uint64_t ops[OP_NR];
	uint64_t reads;		/* read() calls that returned events */
	uint64_t events;
	uint64_t inval;
	uint64_t inval_hint;
	uint64_t last;
	uint64_t registers;
	uint64_t unregisters;
	uint64_t generation;	/* counter at the end */
	uint64_t expected_gen;
	uint64_t expected_inval;
	uint64_t registered_end;
	uint64_t err_stale;	/* INVAL for a cookie we do not hold */
	uint64_t err_hint;	/* HINT outside the registered range */
	uint64_t err_gen;	/* LAST counter above the mapped counter, or going back */
	uint64_t err_other;
	uint64_t elapsed_ns;
	int64_t pid;
};

static struct {
	uint64_t buffers;
	uint64_t pages;
	double rate;
	double duration;
	uint64_t ops;
	unsigned int mix[OP_NR];
	uint64_t seed;
	uint64_t procs;
	int json;
	int thp;
} opt = {
	.buffers = 16,
	.pages = 4,
	.mix = { 4, 4, 2, 1, 1 },
	.seed = 1,
	.procs = 1,
};

static size_t pg;
static size_t blen;
static size_t slot;
static struct buf *bufs;
static uint32_t *requeue;
static size_t nrequeue;
static char *spare;
static char *gen_hole;
static int ufd = -1;
static volatile const uint64_t *genp;
static uint64_t last_seen_gen;
static uint64_t seq = 1;
static struct stats st;

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
"usage: regcache [options]\n"
"  --buffers N           registered buffers (default 16)\n"
"  --pages-per-buffer P  pages per buffer (default 4)\n"
"  --rate OPS            operations per second, 0 = as fast as possible (default 0)\n"
"  --duration S          stop after S seconds\n"
"  --ops M               stop after M operations (per process)\n"
"                        (neither: run until SIGINT/SIGTERM)\n"
"  --mix K=W,...         weights of the operation kinds: unmap, dontneed,\n"
"                        mprotect, fork, mremap (default unmap=4,dontneed=4,\n"
"                        mprotect=2,fork=1,mremap=1); kinds left out get 0\n"
"  --procs N             run N independent cache processes (default 1)\n"
"  --seed S              PRNG seed (default 1)\n"
"  --thp                 allow transparent huge pages (default MADV_NOHUGEPAGE)\n"
"  --json                print a JSON summary object on stdout at the end\n");
	exit(code);
}

static void parse_mix(const char *s)
{
	char *dup = strdup(s), *save = NULL, *tok;
	unsigned int total = 0;

	if (!dup)
		wl_die("out of memory");
	memset(opt.mix, 0, sizeof(opt.mix));
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int k;

		if (eq)
			*eq = '\0';
		for (k = 0; k < OP_NR; k++)
			if (!strcmp(tok, op_names[k]))
				break;
		if (k == OP_NR)
			wl_die("unknown kind '%s' in --mix (unmap, dontneed, mprotect, fork, mremap)", tok);
		opt.mix[k] = eq ? (unsigned int)wl_parse_u64("--mix", eq + 1) : 1;
		total += opt.mix[k];
	}
	free(dup);
	if (!total)
		wl_die("--mix gives every kind weight 0");
}

static void parse_args(int argc, char **argv)
{
	const struct wl_opt opts[] = {
		{ "--buffers", WL_U64, &opt.buffers, NULL },
		{ "--pages-per-buffer", WL_U64, &opt.pages, NULL },
		{ "--rate", WL_DBL, &opt.rate, NULL },
		{ "--duration", WL_DBL, &opt.duration, NULL },
		{ "--ops", WL_U64, &opt.ops, NULL },
		{ "--mix", WL_FUNC, NULL, parse_mix },
		{ "--procs", WL_U64, &opt.procs, NULL },
		{ "--seed", WL_U64, &opt.seed, NULL },
		{ "--thp", WL_FLAG, &opt.thp, NULL },
		{ "--json", WL_FLAG, &opt.json, NULL },
		{ NULL, WL_FLAG, NULL, NULL },
	};

	wl_parse_opts(argc, argv, opts, usage);
	if (!opt.buffers || opt.buffers > MAX_BUFFERS)
		wl_die("--buffers must be 1..%u", MAX_BUFFERS);
	if (!opt.pages || opt.pages > (1u << 20))
		wl_die("--pages-per-buffer must be 1..%u", 1u << 20);
	if (!opt.procs || opt.procs > 4096)
		wl_die("--procs must be 1..4096");
	if (!opt.seed)
		opt.seed = 1;
}

/* Fault every page in, as the application would before using the buffer. */
static void touch(struct buf *b)
{
	size_t off;

	for (off = 0; off < blen; off += pg) {
		if (b->ro)
			(void)*(volatile char *)(b->addr + off);
		else
			*(volatile char *)(b->addr + off) = (char)(off / pg + 1);
	}
	b->needs_touch = 0;
}

static void map_buffer(struct buf *b, int flags)
{
	void *p = mmap(b->addr, blen, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);

	if (p == MAP_FAILED)
		wl_die("mmap of buffer at %p: %s (slot taken by another mapping?)",
		       (void *)b->addr, strerror(errno));
	if (p != b->addr)
		wl_die("mmap placed buffer at %p, not %p", p, (void *)b->addr);
	if (!opt.thp)
		madvise(b->addr, blen, MADV_NOHUGEPAGE);
	b->mapped = 1;
	b->ro = 0;
	b->needs_touch = 1;
}

static void setup_buffers(void)
{
	size_t i, total;
	char *base;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	blen = opt.pages * pg;
	slot = blen + pg;		/* buffer + PROT_NONE guard */
	/* N slots, the spare slot, and one page for the counter mapping. */
	total = (opt.buffers + 1) * slot + pg;
	base = mmap(NULL, total, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		wl_die("cannot reserve %zu bytes: %s", total, strerror(errno));
	bufs = calloc(opt.buffers, sizeof(*bufs));
	requeue = calloc(opt.buffers, sizeof(*requeue));
	if (!bufs || !requeue)
		wl_die("out of memory");
	for (i = 0; i < opt.buffers; i++) {
		bufs[i].addr = base + i * slot;
		map_buffer(&bufs[i], MAP_FIXED);
		touch(&bufs[i]);
	}
	spare = base + opt.buffers * slot;
	if (munmap(spare, blen))
		wl_die("munmap of the spare slot: %s", strerror(errno));
	/*
	 * A hole for the generation counter's mapping, made now: mapping it
	 * over the reservation once the context exists would cost an UNMAP
	 * invalidation, and letting the kernel choose would put it in the
	 * spare slot.
	 */
	gen_hole = base + total - pg;
	if (munmap(gen_hole, pg))
		wl_die("munmap of the counter's slot: %s", strerror(errno));
}

static int open_device(int quiet)
{
	int fd = open("/dev/ummunotify", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
			fprintf(stderr, "regcache: /dev/ummunotify: %s: is ummunotify.ko loaded?\n",
				strerror(errno));
		else
			fprintf(stderr, "regcache: cannot open /dev/ummunotify: %s\n",
				strerror(errno));
		exit(1);
	}
	if (quiet)
		return fd;
	{
		__u32 features = 0;

		if (ioctl(fd, UMMUNOTIFY_EXCHANGE_FEATURES, &features))
			wl_die("UMMUNOTIFY_EXCHANGE_FEATURES: %s", strerror(errno));
	}
	genp = mmap(gen_hole, sizeof(uint64_t), PROT_READ,
		    MAP_SHARED | (gen_hole ? MAP_FIXED_NOREPLACE : 0), fd, 0);
	if (genp == MAP_FAILED)
		wl_die("mmap of the generation counter: %s", strerror(errno));
	return fd;
}

static void do_register(uint32_t idx)
{
	struct buf *b = &bufs[idx];
	struct ummunotify_register_ioctl r = {
		.start = (uintptr_t)b->addr,
		.end = (uintptr_t)b->addr + blen,
		.user_cookie = (seq++ << COOKIE_IDX_BITS) | idx,
	};

	if (ioctl(ufd, UMMUNOTIFY_REGISTER_REGION, &r))
		wl_die("UMMUNOTIFY_REGISTER_REGION (%zu registrations held): %s",
		       (size_t)(st.registers - st.unregisters), strerror(errno));
	b->cookie = r.user_cookie;
	b->reg_addr = b->addr;
	st.registers++;
}

static void evict(uint32_t idx)
{
	struct buf *b = &bufs[idx];
	__u64 cookie = b->cookie;

	if (ioctl(ufd, UMMUNOTIFY_UNREGISTER_REGION, &cookie))
		wl_die("UMMUNOTIFY_UNREGISTER_REGION: %s", strerror(errno));
	st.unregisters++;
	b->cookie = 0;
	if (!b->queued) {
		b->queued = 1;
		requeue[nrequeue++] = idx;
	}
}

static void handle_event(const struct ummunotify_event *ev)
{
	st.events++;
	if (ev->type == UMMUNOTIFY_EVENT_TYPE_LAST) {
		uint64_t now_gen = *genp;

		st.last++;
		if (ev->user_cookie_counter > now_gen ||
		    ev->user_cookie_counter < last_seen_gen)
			st.err_gen++;
		last_seen_gen = ev->user_cookie_counter;
		return;
	}
	if (ev->type != UMMUNOTIFY_EVENT_TYPE_INVAL) {
		st.err_other++;
		return;
	}
	st.inval++;
	{
		uint64_t idx = ev->user_cookie_counter & COOKIE_IDX_MASK;
		uint64_t lo, hi;
		struct buf *b;

		if (idx >= opt.buffers || bufs[idx].cookie != ev->user_cookie_counter) {
			st.err_stale++;
			return;
		}
		b = &bufs[idx];
		lo = (uintptr_t)b->reg_addr;
		hi = lo + blen;
		if (ev->flags & UMMUNOTIFY_EVENT_FLAG_HINT) {
			st.inval_hint++;
			if (ev->hint_start >= ev->hint_end ||
			    ev->hint_start < lo || ev->hint_end > hi)
				st.err_hint++;
		} else if (ev->hint_start != lo || ev->hint_end != hi) {
			st.err_hint++;
		}
		evict((uint32_t)idx);
	}
}

/* Read everything queued now: poll, then read until EAGAIN. */
static void drain(int timeout_ms)
{
	struct ummunotify_event ev[EVBUF];
	struct pollfd p = { .fd = ufd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) <= 0)
		return;
	for (;;) {
		ssize_t n = read(ufd, ev, sizeof(ev));
		ssize_t i;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				wl_die("read /dev/ummunotify: %s", strerror(errno));
			return;
		}
		if (n == 0 || n % (ssize_t)sizeof(ev[0]))
			wl_die("read /dev/ummunotify returned %zd bytes", n);
		st.reads++;
		for (i = 0; i < n / (ssize_t)sizeof(ev[0]); i++)
			handle_event(&ev[i]);
	}
}

/* Bring evicted buffers back: re-map or re-touch as needed, register again. */
static void reregister(void)
{
	size_t i;

	for (i = 0; i < nrequeue; i++) {
		struct buf *b = &bufs[requeue[i]];

		b->queued = 0;
		if (!b->mapped)
			map_buffer(b, MAP_FIXED_NOREPLACE);
		if (b->needs_touch)
			touch(b);
		do_register(requeue[i]);
	}
	nrequeue = 0;
}

/* Is [p, p + blen) free of mappings?  mincore fails with ENOMEM on holes. */
static int range_is_hole(char *p)
{
	unsigned char vec;
	size_t off;

	for (off = 0; off < blen; off += pg)
		if (mincore(p + off, pg, &vec) == 0 || errno != ENOMEM)
			return 0;
	return 1;
}

static uint64_t registered_now(void)
{
	return st.registers - st.unregisters;
}

static void do_op(enum op_kind k, uint64_t *rng)
{
	uint32_t idx = (uint32_t)wl_rand_below(rng, opt.buffers);
	struct buf *b = &bufs[idx];
	uint64_t hit = k == OP_FORK ? registered_now() : 1;
	pid_t pid;

	switch (k) {
	case OP_UNMAP:
		if (munmap(b->addr, blen))
			wl_die("munmap: %s", strerror(errno));
		b->mapped = 0;
		break;
	case OP_DONTNEED:
		if (madvise(b->addr, blen, MADV_DONTNEED))
			wl_die("madvise(MADV_DONTNEED): %s", strerror(errno));
		b->needs_touch = 1;
		break;
	case OP_MPROTECT:
		b->ro = !b->ro;
		if (mprotect(b->addr, blen, b->ro ? PROT_READ : PROT_READ | PROT_WRITE))
			wl_die("mprotect: %s", strerror(errno));
		break;
	case OP_FORK:
		pid = fork();
		if (pid < 0)
			wl_die("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		break;
	case OP_MREMAP:
		if (!range_is_hole(spare))
			wl_die("the spare slot at %p got mapped by something else",
			       (void *)spare);
		if (mremap(b->addr, blen, blen, MREMAP_MAYMOVE | MREMAP_FIXED,
			   spare) == MAP_FAILED)
			wl_die("mremap: %s", strerror(errno));
		{
			char *old = b->addr;

			b->addr = spare;
			spare = old;
		}
		/*
		 * The registration still names the old range: the INVAL
		 * evicts it and re-registration picks up the new address.
		 */
		break;
	default:
		break;
	}
	st.ops[k]++;
	st.expected_gen += hit * model_gen[k];
	st.expected_inval += hit * model_inval[k];
}

static enum op_kind pick(uint64_t *rng)
{
	unsigned int total = 0, r;
	int k;

	for (k = 0; k < OP_NR; k++)
		total += opt.mix[k];
	r = (unsigned int)wl_rand_below(rng, total);
	for (k = 0; k < OP_NR; k++) {
		if (r < opt.mix[k])
			return (enum op_kind)k;
		r -= opt.mix[k];
	}
	return OP_UNMAP;
}

/* One cache process: set up, churn until told to stop, fill in st. */
static void run_cache(uint64_t seed)
{
	uint64_t rng = seed;
	uint64_t t0, deadline = 0, next, interval = 0, total = 0;
	uint32_t i;

	st.pid = getpid();
	setup_buffers();
	ufd = open_device(0);
	for (i = 0; i < opt.buffers; i++)
		do_register(i);

	t0 = wl_now_ns();
	if (opt.duration > 0)
		deadline = t0 + (uint64_t)(opt.duration * 1e9);
	if (opt.rate > 0)
		interval = (uint64_t)(1e9 / opt.rate);
	next = t0;
	while (!wl_stop) {
		uint64_t now = wl_now_ns();

		if (opt.ops && total >= opt.ops)
			break;
		if (deadline && now >= deadline)
			break;
		if (interval) {
			/* Wait for the next slot, reading whatever arrives. */
			while (!wl_stop && now < next && (!deadline || now < deadline)) {
				uint64_t wait = next - now;

				drain((int)(wait / 1000000) + 1);
				reregister();
				now = wl_now_ns();
			}
			if (wl_stop || (deadline && now >= deadline))
				break;
			next += interval;
			if (next + 1000 * interval < now)
				next = now;	/* far behind: do not burst */
		}
		do_op(pick(&rng), &rng);
		total++;
		drain(0);
		reregister();
	}
	drain(0);
	reregister();
	st.elapsed_ns = wl_now_ns() - t0;
	st.generation = *genp;
	st.registered_end = registered_now();
}

static void add_stats(struct stats *a, const struct stats *b)
{
	uint64_t *pa = (uint64_t *)a;
	const uint64_t *pb = (const uint64_t *)b;
	size_t i;

	/* Every field but the last (pid) is a u64 counter. */
	for (i = 0; i < offsetof(struct stats, pid) / sizeof(uint64_t); i++)
		pa[i] += pb[i];
}

static void print_summary(const struct stats *s, const int64_t *pids, size_t npids)
{
	struct wl_json j = { .f = stdout };
	uint64_t ops = 0;
	size_t i;
	int k;

	for (k = 0; k < OP_NR; k++)
		ops += s->ops[k];
	if (!opt.json) {
		printf("regcache: pid %" PRId64 ": %" PRIu64 " ops (", s->pid, ops);
		for (k = 0; k < OP_NR; k++)
			printf("%s%s %" PRIu64, k ? ", " : "", op_names[k], s->ops[k]);
		printf(") in %.2fs; %" PRIu64 " INVAL (%" PRIu64 " with HINT), %" PRIu64
		       " LAST, generation %" PRIu64 " (model %" PRIu64 "), %" PRIu64
		       " registrations held; errors %" PRIu64 "\n",
		       s->elapsed_ns / 1e9, s->inval, s->inval_hint, s->last,
		       s->generation, s->expected_gen, s->registered_end,
		       s->err_stale + s->err_hint + s->err_gen + s->err_other);
		return;
	}
	wl_json_open(&j, NULL, '{');
	wl_json_str(&j, "program", "regcache");
	wl_json_u64(&j, "version", 1);
	wl_json_i64(&j, "pid", s->pid);
	wl_json_open(&j, "pids", '[');
	for (i = 0; i < npids; i++)
		wl_json_i64(&j, NULL, pids[i]);
	wl_json_close(&j, ']');
	wl_json_str(&j, "kernel", wl_kernel_release());
	wl_json_u64(&j, "procs", opt.procs);
	wl_json_u64(&j, "buffers", opt.buffers);
	wl_json_u64(&j, "pages_per_buffer", opt.pages);
	wl_json_u64(&j, "page_size", pg);
	wl_json_dbl(&j, "elapsed_s", s->elapsed_ns / 1e9);
	wl_json_open(&j, "ops", '{');
	for (k = 0; k < OP_NR; k++)
		wl_json_u64(&j, op_names[k], s->ops[k]);
	wl_json_close(&j, '}');
	wl_json_u64(&j, "ops_total", ops);
	wl_json_u64(&j, "reads", s->reads);
	wl_json_u64(&j, "events", s->events);
	wl_json_u64(&j, "inval", s->inval);
	wl_json_u64(&j, "inval_hint", s->inval_hint);
	wl_json_u64(&j, "last", s->last);
	wl_json_u64(&j, "generation", s->generation);
	wl_json_u64(&j, "registers", s->registers);
	wl_json_u64(&j, "unregisters", s->unregisters);
	wl_json_u64(&j, "registrations", s->registered_end);
	wl_json_open(&j, "expected", '{');
	wl_json_u64(&j, "generation", s->expected_gen);
	wl_json_u64(&j, "inval", s->expected_inval);
	wl_json_close(&j, '}');
	wl_json_bool(&j, "exact", s->generation == s->expected_gen &&
				  s->inval == s->expected_inval);
	wl_json_open(&j, "errors", '{');
	wl_json_u64(&j, "stale_cookie", s->err_stale);
	wl_json_u64(&j, "bad_hint", s->err_hint);
	wl_json_u64(&j, "bad_last", s->err_gen);
	wl_json_u64(&j, "other", s->err_other);
	wl_json_close(&j, '}');
	wl_json_close(&j, '}');
	putchar('\n');
	fflush(stdout);
}

/* The parent of --procs passes a stop on to every child. */
static pid_t *children;
static volatile sig_atomic_t nchildren;

static void forward_signal(int sig)
{
	sig_atomic_t i;

	(void)sig;
	wl_stop = 1;
	for (i = 0; i < nchildren; i++)
		kill(children[i], SIGTERM);
}

static int run_procs(void)
{
	struct stats total, one;
	int64_t *pids = calloc(opt.procs, sizeof(*pids));
	struct sigaction sa;
	int *fds = calloc(opt.procs, sizeof(*fds));
	size_t i, got = 0;
	int failed = 0;

	children = calloc(opt.procs, sizeof(*children));
	if (!pids || !fds || !children)
		wl_die("out of memory");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	close(open_device(1));	/* fail once, clearly, if it is absent */
	memset(&total, 0, sizeof(total));
	for (i = 0; i < opt.procs; i++) {
		int p[2];
		pid_t pid;

		if (pipe(p))
			wl_die("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			wl_die("fork: %s", strerror(errno));
		if (pid == 0) {
			nchildren = 0;	/* only the parent forwards signals */
			close(p[0]);
			run_cache(opt.seed + i * 7919);
			if (write(p[1], &st, sizeof(st)) != (ssize_t)sizeof(st))
				_exit(1);
			_exit(0);
		}
		close(p[1]);
		pids[i] = pid;
		fds[i] = p[0];
		children[i] = pid;
		nchildren = i + 1;
		if (wl_stop)
			kill(pid, SIGTERM);
	}
	total.pid = getpid();
	for (i = 0; i < opt.procs; i++) {
		ssize_t n;

		while ((n = read(fds[i], &one, sizeof(one))) < 0 && errno == EINTR)
			;
		if (n == (ssize_t)sizeof(one)) {
			add_stats(&total, &one);
			got++;
		}
		close(fds[i]);
	}
	for (i = 0; i < opt.procs; i++) {
		int status;

		while (waitpid((pid_t)pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	total.elapsed_ns /= got ? got : 1;
	print_summary(&total, pids, opt.procs);
	if (failed || got != opt.procs) {
		fprintf(stderr, "regcache: %d of %" PRIu64 " cache processes failed\n",
			failed, opt.procs);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int64_t pid;

	wl_prog = "regcache";
	parse_args(argc, argv);
	wl_install_stop_handlers();
	if (opt.procs > 1)
		return run_procs();
	run_cache(opt.seed);
	pid = st.pid;
	print_summary(&st, &pid, 1);
	return st.err_stale + st.err_hint + st.err_gen + st.err_other ? 1 : 0;
}
