// SPDX-License-Identifier: GPL-2.0
/*
 * postcopy: a post-copy live-migration pair on /dev/umem, in one program.
 *
 * The parent is the migration server ("source"): per round it opens
 * /dev/umem, UMEM_INIT's an area of --pages pages, pushes --push-ahead
 * percent of the pages ahead (before the client starts, or in the
 * background while it runs, as QEMU's post-copy keeps pre-copying), and
 * serves every page the client faults on after --delay-us (a per-request
 * latency: each request is written back delay-us after the server read it).
 * With --punch it then frees the served pages from the memory file and
 * the client re-checks that its copy survived.
 *
 * The child is the destination VM: it receives the umem fd over a unix
 * socket (SCM_RIGHTS; one client process for all rounds), maps it, closes
 * the fd, and --threads threads touch the pages in the chosen --pattern,
 * timing each first touch (the stall) and checking every byte of every
 * page against the pattern the server wrote.
 *
 * --json prints one summary object on stdout at the end.  See --help.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/umem.h>

#include "wl_common.h"

#define MAX_PAGES	(1u << 24)
#define MAX_THREADS	256
#define RDBUF		512
#define NBUCKETS	40		/* log2 ns buckets: [2^i, 2^(i+1)) */
#define MAX_SAMPLES	(1u << 20)

enum { PAT_SEQ, PAT_REVERSE, PAT_RANDOM, PAT_STRIDE, PAT_NR };
static const char *const pat_names[PAT_NR] = { "seq", "reverse", "random", "stride" };

enum { PUSH_BEFORE, PUSH_BACKGROUND };

static struct {
	uint64_t pages;
	uint64_t threads;
	uint64_t delay_us;
	uint64_t push_pct;
	int push_mode;
	int pattern;
	int overlap;
	int punch;
	int write;
	double rate;
	double push_rate;
	double duration;
	uint64_t rounds;
	uint64_t seed;
	int json;
} opt = {
	.pages = 256,
	.threads = 2,
	.delay_us = 100,
	.pattern = PAT_RANDOM,
	.rounds = 1,
	.seed = 1,
};

/* Control messages between server and client (SOCK_SEQPACKET). */
enum msg_type { MSG_ROUND, MSG_STOP, MSG_DONE, MSG_PUNCHED, MSG_VERIFIED, MSG_END, MSG_FINAL };

struct client_final {
	uint64_t touches;
	uint64_t pages_checked;
	uint64_t mismatches;		/* pages with a wrong byte at first touch */
	uint64_t punch_mismatches;	/* pages wrong after the server punched */
	uint64_t stall_min, stall_max, stall_p50, stall_p90, stall_p99;
	uint64_t stall_sum;
	uint64_t hist[NBUCKETS];
};

struct msg {
	uint32_t type;
	uint32_t pad;
	uint64_t round;
	uint64_t value;
	struct client_final fin;
};

static size_t pg;

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
"usage: postcopy [options]\n"
"  --pages N          pages per area (default 256)\n"
"  --threads T        client threads touching pages (default 2)\n"
"  --delay-us D       serve each request D microseconds after reading it (default 100)\n"
"  --push-ahead P     push P percent of the pages ahead (default 0)\n"
"  --push-mode M      before: all pushes before the client starts (exact counts,\n"
"                     default); background: a pusher thread pushes one page per\n"
"                     delay-us (or --push-rate pages/s) while the client runs\n"
"  --pattern P        touch order: seq, reverse, random (default), stride\n"
"  --overlap          every thread touches every page (default: threads split them)\n"
"  --punch            after each round, punch the memory file and re-check the client\n"
"  --write            the client writes each page back after checking it\n"
"  --rate R           client touches per second, 0 = as fast as possible (default 0)\n"
"  --rounds R         areas to migrate, 0 = unlimited (default 1)\n"
"  --duration S       stop starting new rounds after S seconds\n"
"  --seed S           PRNG seed (default 1)\n"
"  --json             print a JSON summary object on stdout at the end\n");
	exit(code);
}

static void parse_pattern(const char *v)
{
	for (opt.pattern = 0; opt.pattern < PAT_NR; opt.pattern++)
		if (!strcmp(v, pat_names[opt.pattern]))
			return;
	wl_die("unknown --pattern '%s' (seq, reverse, random, stride)", v);
}

static void parse_push_mode(const char *v)
{
	if (!strcmp(v, "before"))
		opt.push_mode = PUSH_BEFORE;
	else if (!strcmp(v, "background"))
		opt.push_mode = PUSH_BACKGROUND;
	else
		wl_die("unknown --push-mode '%s' (before, background)", v);
}

static void parse_args(int argc, char **argv)
{
	const struct wl_opt opts[] = {
		{ "--pages", WL_U64, &opt.pages, NULL },
		{ "--threads", WL_U64, &opt.threads, NULL },
		{ "--delay-us", WL_U64, &opt.delay_us, NULL },
		{ "--push-ahead", WL_U64, &opt.push_pct, NULL },
		{ "--push-mode", WL_FUNC, NULL, parse_push_mode },
		{ "--pattern", WL_FUNC, NULL, parse_pattern },
		{ "--overlap", WL_FLAG, &opt.overlap, NULL },
		{ "--punch", WL_FLAG, &opt.punch, NULL },
		{ "--write", WL_FLAG, &opt.write, NULL },
		{ "--rate", WL_DBL, &opt.rate, NULL },
		{ "--push-rate", WL_DBL, &opt.push_rate, NULL },
		{ "--rounds", WL_U64, &opt.rounds, NULL },
		{ "--duration", WL_DBL, &opt.duration, NULL },
		{ "--seed", WL_U64, &opt.seed, NULL },
		{ "--json", WL_FLAG, &opt.json, NULL },
		{ NULL, WL_FLAG, NULL, NULL },
	};

	wl_parse_opts(argc, argv, opts, usage);
	if (!opt.pages || opt.pages > MAX_PAGES)
		wl_die("--pages must be 1..%u", MAX_PAGES);
	if (!opt.threads || opt.threads > MAX_THREADS)
		wl_die("--threads must be 1..%u", MAX_THREADS);
	if (opt.push_pct > 100)
		wl_die("--push-ahead must be 0..100");
	if (opt.delay_us > 10000000)
		wl_die("--delay-us must be at most 10000000");
	if (!opt.seed)
		opt.seed = 1;
}

/* The content of word w of page p in round r: any wrong byte shows. */
static inline uint64_t pattern_word(uint64_t r, uint64_t p, uint64_t w)
{
	uint64_t x = (r << 40) ^ (p << 12) ^ w ^ (opt.seed * 0x9e3779b97f4a7c15ull);

	x ^= x >> 29;
	return x * 0xbf58476d1ce4e5b9ull;
}

static void fill_page(char *mem, uint64_t r, uint64_t p)
{
	uint64_t *w = (uint64_t *)(mem + p * pg);
	size_t i;

	for (i = 0; i < pg / 8; i++)
		w[i] = pattern_word(r, p, i);
}

static int page_ok(const char *area, uint64_t r, uint64_t p)
{
	const volatile uint64_t *w = (const volatile uint64_t *)(area + p * pg);
	size_t i;

	for (i = 0; i < pg / 8; i++)
		if (w[i] != pattern_word(r, p, i))
			return 0;
	return 1;
}

static void shuffle(uint64_t *v, uint64_t n, uint64_t *rng)
{
	uint64_t i;

	for (i = n; i > 1; i--) {
		uint64_t j = wl_rand_below(rng, i), t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static void send_msg(int sock, const struct msg *m, int fd)
{
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			wl_die("sendmsg: %s", strerror(errno));
}

/* Returns 0 on a clean end of the peer, else 1; *fd gets a passed fd. */
static int recv_msg(int sock, struct msg *m, int *fd)
{
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0)
		if (errno != EINTR)
			wl_die("recvmsg: %s", strerror(errno));
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*m))
		wl_die("short control message (%zd bytes)", n);
	if (fd) {
		*fd = -1;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				memcpy(fd, CMSG_DATA(c), sizeof(int));
	}
	return 1;
}

/* ------------------------------------------------------------------ client */

static struct {
	char *area;
	uint64_t round;
	atomic_int stop;
	atomic_uint_fast64_t touches, mismatches;
	uint64_t *samples;		/* stall samples, reservoir beyond MAX_SAMPLES */
	uint64_t nsamples;		/* samples seen */
	uint64_t hist[NBUCKETS];
	uint64_t smin, smax, ssum;
	pthread_mutex_t lock;
} cl = { .lock = PTHREAD_MUTEX_INITIALIZER, .smin = UINT64_MAX };

struct cthread {
	pthread_t th;
	uint64_t idx;
	uint64_t rng;
};

static void record_stalls(const uint64_t *s, uint64_t n, uint64_t *rng)
{
	uint64_t i;

	pthread_mutex_lock(&cl.lock);
	for (i = 0; i < n; i++) {
		uint64_t v = s[i], b = 0;

		while (b + 1 < NBUCKETS && (v >> (b + 1)))
			b++;
		cl.hist[b]++;
		cl.ssum += v;
		if (v < cl.smin)
			cl.smin = v;
		if (v > cl.smax)
			cl.smax = v;
		if (cl.nsamples < MAX_SAMPLES) {
			cl.samples[cl.nsamples] = v;
		} else {
			uint64_t j = wl_rand_below(rng, cl.nsamples + 1);

			if (j < MAX_SAMPLES)
				cl.samples[j] = v;
		}
		cl.nsamples++;
	}
	pthread_mutex_unlock(&cl.lock);
}

/* The pages thread t touches, in order. */
static uint64_t thread_pages(uint64_t t, uint64_t *list, uint64_t *rng)
{
	uint64_t n = 0, p, step;

	for (p = 0; p < opt.pages; p++)
		if (opt.overlap || p % opt.threads == t)
			list[n++] = p;
	switch (opt.pattern) {
	case PAT_REVERSE:
		for (p = 0; p < n / 2; p++) {
			uint64_t x = list[p];

			list[p] = list[n - 1 - p];
			list[n - 1 - p] = x;
		}
		break;
	case PAT_RANDOM:
		shuffle(list, n, rng);
		break;
	case PAT_STRIDE:
		/* Every 16th page, then the next residue: strided sweeps. */
		if (n > 16) {
			uint64_t *tmp = malloc(n * sizeof(*tmp)), k = 0;

			if (!tmp)
				wl_die("out of memory");
			for (step = 0; step < 16; step++)
				for (p = step; p < n; p += 16)
					tmp[k++] = list[p];
			memcpy(list, tmp, n * sizeof(*tmp));
			free(tmp);
		}
		break;
	default:
		break;
	}
	return n;
}

static void *client_thread(void *arg)
{
	struct cthread *ct = arg;
	uint64_t *list = malloc(opt.pages * sizeof(*list));
	uint64_t *st = malloc(opt.pages * sizeof(*st));
	uint64_t n, i, done = 0, bad = 0, next, interval = 0;

	if (!list || !st)
		wl_die("out of memory");
	n = thread_pages(ct->idx, list, &ct->rng);
	if (opt.rate > 0)
		interval = (uint64_t)(1e9 * (double)opt.threads / opt.rate);
	next = wl_now_ns();
	for (i = 0; i < n && !atomic_load(&cl.stop) && !wl_stop; i++) {
		volatile uint64_t *w = (volatile uint64_t *)(cl.area + list[i] * pg);
		uint64_t t0, t1;

		if (interval) {
			wl_sleep_until(next);
			next += interval;
		}
		t0 = wl_now_ns();
		(void)*w;		/* the first touch: blocks until served */
		t1 = wl_now_ns();
		st[done++] = t1 - t0;
		if (!page_ok(cl.area, cl.round, list[i]))
			bad++;
		if (opt.write)
			*w = *w;
	}
	record_stalls(st, done, &ct->rng);
	atomic_fetch_add(&cl.touches, done);
	atomic_fetch_add(&cl.mismatches, bad);
	free(list);
	free(st);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, uint64_t n, double q)
{
	if (!n)
		return 0;
	return sorted[(uint64_t)(q * (double)(n - 1) + 0.5)];
}

static void *stop_watcher(void *arg)
{
	int sock = *(int *)arg;
	struct msg m;

	/* Peek: a MSG_STOP during a round stops the touching threads. */
	while (recv(sock, &m, sizeof(m), MSG_PEEK) == (ssize_t)sizeof(m) &&
	       m.type == MSG_STOP) {
		if (recv(sock, &m, sizeof(m), 0) <= 0)
			break;
		atomic_store(&cl.stop, 1);
	}
	return NULL;
}

static int client_main(int sock)
{
	struct client_final fin;
	struct cthread ct[MAX_THREADS];
	uint64_t checked = 0, punch_bad = 0, rng = opt.seed * 31 + 7;
	struct msg m;
	uint64_t t, n, p;
	int fd;

	cl.samples = malloc(MAX_SAMPLES * sizeof(*cl.samples));
	if (!cl.samples)
		wl_die("out of memory");
	for (;;) {
		pthread_t watcher;
		size_t size;

		if (!recv_msg(sock, &m, &fd))
			wl_die("client: the server went away");
		if (m.type == MSG_END)
			break;
		if (m.type == MSG_STOP)
			continue;	/* between rounds: nothing to stop */
		if (m.type != MSG_ROUND || fd < 0)
			wl_die("client: unexpected message %u", m.type);
		size = opt.pages * pg;
		cl.area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (cl.area == MAP_FAILED)
			wl_die("client: mmap of /dev/umem: %s", strerror(errno));
		close(fd);	/* the mapping keeps the area alive */
		cl.round = m.round;
		atomic_store(&cl.stop, 0);
		if (pthread_create(&watcher, NULL, stop_watcher, &sock))
			wl_die("pthread_create failed");
		for (t = 0; t < opt.threads; t++) {
			ct[t].idx = t;
			ct[t].rng = wl_rand(&rng) | 1;
			if (pthread_create(&ct[t].th, NULL, client_thread, &ct[t]))
				wl_die("pthread_create failed");
		}
		for (t = 0; t < opt.threads; t++)
			pthread_join(ct[t].th, NULL);
		/* The watcher only peeks and holds no lock: cancel it. */
		pthread_cancel(watcher);
		pthread_join(watcher, NULL);
		memset(&m, 0, sizeof(m));
		m.type = MSG_DONE;
		m.round = cl.round;
		send_msg(sock, &m, -1);
		do {	/* a late MSG_STOP may still be queued: skip it */
			if (!recv_msg(sock, &m, NULL))
				wl_die("client: the server went away");
		} while (m.type == MSG_STOP);
		if (m.type == MSG_PUNCHED) {
			/* Every page served in this round must still read right. */
			n = m.value;
			for (p = 0; p < n; p++) {
				if (!page_ok(cl.area, cl.round, p))
					punch_bad++;
				checked++;
			}
			memset(&m, 0, sizeof(m));
			m.type = MSG_VERIFIED;
			m.value = punch_bad;
			send_msg(sock, &m, -1);
		} else if (m.type != MSG_VERIFIED) {
			wl_die("client: unexpected message %u", m.type);
		}
		munmap(cl.area, size);
	}
	memset(&fin, 0, sizeof(fin));
	fin.touches = atomic_load(&cl.touches);
	fin.mismatches = atomic_load(&cl.mismatches);
	fin.punch_mismatches = punch_bad;
	fin.pages_checked = checked;
	n = cl.nsamples < MAX_SAMPLES ? cl.nsamples : MAX_SAMPLES;
	qsort(cl.samples, n, sizeof(*cl.samples), cmp_u64);
	fin.stall_min = cl.nsamples ? cl.smin : 0;
	fin.stall_max = cl.smax;
	fin.stall_sum = cl.ssum;
	fin.stall_p50 = pct(cl.samples, n, 0.50);
	fin.stall_p90 = pct(cl.samples, n, 0.90);
	fin.stall_p99 = pct(cl.samples, n, 0.99);
	memcpy(fin.hist, cl.hist, sizeof(fin.hist));
	memset(&m, 0, sizeof(m));
	m.type = MSG_FINAL;
	m.fin = fin;
	send_msg(sock, &m, -1);
	return 0;
}

/* ------------------------------------------------------------------ server */

enum { PG_UNSERVED, PG_FILLING, PG_SERVED };

static struct {
	int ufd;
	char *mem;			/* the memory file, mapped shared */
	uint64_t round;
	_Atomic unsigned char *state;
	unsigned char *requested;
	uint64_t *push_list;
	uint64_t npush;
	atomic_int pusher_stop;
	/* totals */
	uint64_t faults_served;		/* written because the client asked */
	atomic_uint_fast64_t pushed;
	uint64_t requests;		/* offsets read */
	uint64_t reads;			/* read() calls that returned offsets */
	uint64_t writes;		/* write() calls */
	uint64_t max_pending;
	uint64_t late;			/* request for a page already pushed */
	uint64_t dup;			/* an unserved page reported twice */
	uint64_t bad_offset;
	uint64_t svc_min, svc_max, svc_sum;
	uint64_t rounds;
	uint64_t expected_faults;
	uint64_t punched;
} sv = { .svc_min = UINT64_MAX };

static void serve_write(const uint64_t *offs, size_t n)
{
	ssize_t w;

	while ((w = write(sv.ufd, offs, n * sizeof(*offs))) < 0)
		if (errno != EINTR)
			wl_die("write /dev/umem (%zu offsets): %s", n, strerror(errno));
	if ((size_t)w != n * sizeof(*offs))
		wl_die("write /dev/umem took %zd of %zu bytes", w, n * sizeof(*offs));
	sv.writes++;
}

/* Claim, fill and write one page; 0 if someone else has it. */
static int push_page(uint64_t p)
{
	unsigned char expect = PG_UNSERVED;

	if (!atomic_compare_exchange_strong(&sv.state[p], &expect, PG_FILLING))
		return 0;
	fill_page(sv.mem, sv.round, p);
	serve_write(&p, 1);
	atomic_store(&sv.state[p], PG_SERVED);
	atomic_fetch_add(&sv.pushed, 1);
	return 1;
}

static void *pusher(void *arg)
{
	uint64_t i, next = wl_now_ns(), interval = opt.delay_us * 1000;

	(void)arg;
	if (opt.push_rate > 0)
		interval = (uint64_t)(1e9 / opt.push_rate);
	for (i = 0; i < sv.npush && !atomic_load(&sv.pusher_stop); i++) {
		next += interval;
		wl_sleep_until(next);
		push_page(sv.push_list[i]);
	}
	return NULL;
}

struct pending {
	uint64_t off;
	uint64_t t_read;
};

/* Serve one round; returns when the client reports MSG_DONE. */
static void serve_round(int sock)
{
	struct pending *q = calloc(opt.pages, sizeof(*q));
	uint64_t *batch = calloc(opt.pages, sizeof(*batch));
	uint64_t offs[RDBUF];
	size_t qh = 0, qn = 0;
	int stop_sent = 0;
	struct msg m;

	if (!q || !batch)
		wl_die("out of memory");
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = sv.ufd, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
		};
		uint64_t now = wl_now_ns();
		struct timespec ts, *tsp = NULL;
		size_t nb = 0;
		ssize_t n, i;

		if (wl_stop && !stop_sent) {
			memset(&m, 0, sizeof(m));
			m.type = MSG_STOP;
			send_msg(sock, &m, -1);
			stop_sent = 1;
		}
		/* Write back every request whose delay is over, in one write. */
		while (qn && q[qh].t_read + opt.delay_us * 1000 <= now) {
			uint64_t p = q[qh].off;
			unsigned char expect = PG_UNSERVED;

			if (atomic_compare_exchange_strong(&sv.state[p], &expect, PG_FILLING)) {
				fill_page(sv.mem, sv.round, p);
				batch[nb++] = p;
				sv.faults_served++;
				now = wl_now_ns();
				if (now - q[qh].t_read < sv.svc_min)
					sv.svc_min = now - q[qh].t_read;
				if (now - q[qh].t_read > sv.svc_max)
					sv.svc_max = now - q[qh].t_read;
				sv.svc_sum += now - q[qh].t_read;
			} else {
				sv.late++;	/* the pusher got there first */
			}
			qh = (qh + 1) % opt.pages;
			qn--;
		}
		if (nb) {
			size_t k;

			serve_write(batch, nb);
			for (k = 0; k < nb; k++)
				atomic_store(&sv.state[batch[k]], PG_SERVED);
		}
		if (qn) {
			uint64_t due = q[qh].t_read + opt.delay_us * 1000;
			uint64_t wait = due > now ? due - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			tsp = &ts;
		}
		if (wl_stop && !stop_sent) {
			ts.tv_sec = 0;
			ts.tv_nsec = 0;
			tsp = &ts;
		}
		if (ppoll(pf, 2, tsp, NULL) < 0) {
			if (errno == EINTR)
				continue;
			wl_die("poll: %s", strerror(errno));
		}
		if (pf[1].revents) {
			if (!recv_msg(sock, &m, NULL))
				wl_die("server: the client went away");
			if (m.type != MSG_DONE)
				wl_die("server: unexpected message %u", m.type);
			break;
		}
		if (!(pf[0].revents & POLLIN))
			continue;
		n = read(sv.ufd, offs, sizeof(offs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			wl_die("read /dev/umem: %s", strerror(errno));
		}
		if (n == 0 || n % 8)
			wl_die("read /dev/umem returned %zd bytes", n);
		sv.reads++;
		now = wl_now_ns();
		for (i = 0; i < n / 8; i++) {
			uint64_t p = offs[i];

			sv.requests++;
			if (p >= opt.pages) {
				sv.bad_offset++;
				continue;
			}
			if (sv.requested[p]) {
				sv.dup++;
				continue;
			}
			sv.requested[p] = 1;
			if (atomic_load(&sv.state[p]) != PG_UNSERVED) {
				sv.late++;
				continue;
			}
			q[(qh + qn) % opt.pages] = (struct pending){ p, now };
			qn++;
			if (qn > sv.max_pending)
				sv.max_pending = qn;
		}
	}
	free(q);
	free(batch);
}

static void server_round(int sock, uint64_t r, uint64_t *rng)
{
	struct umem_init init = { .size = opt.pages * pg };
	size_t size = opt.pages * pg;
	pthread_t pth;
	struct msg m;
	uint64_t i;

	sv.round = r;
	sv.ufd = open("/dev/umem", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (sv.ufd < 0) {
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
			fprintf(stderr, "postcopy: /dev/umem: %s: is umem.ko loaded?\n",
				strerror(errno));
		else
			fprintf(stderr, "postcopy: cannot open /dev/umem: %s\n",
				strerror(errno));
		exit(1);
	}
	if (ioctl(sv.ufd, UMEM_INIT, &init))
		wl_die("UMEM_INIT(%zu bytes): %s", size, strerror(errno));
	if (init.size != size)
		wl_die("UMEM_INIT rounded %zu bytes to %llu", size,
		       (unsigned long long)init.size);
	if (ftruncate(init.shmem_fd, (off_t)size))
		wl_die("ftruncate of the memory file: %s", strerror(errno));
	sv.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, init.shmem_fd, 0);
	if (sv.mem == MAP_FAILED)
		wl_die("mmap of the memory file: %s", strerror(errno));
	memset((void *)sv.state, 0, opt.pages);
	memset(sv.requested, 0, opt.pages);

	/* Which pages go ahead: a random P percent. */
	for (i = 0; i < opt.pages; i++)
		sv.push_list[i] = i;
	shuffle(sv.push_list, opt.pages, rng);
	sv.npush = opt.pages * opt.push_pct / 100;
	if (opt.push_mode == PUSH_BEFORE) {
		for (i = 0; i < sv.npush; i++)
			push_page(sv.push_list[i]);
		sv.expected_faults += opt.pages - sv.npush;
	}

	memset(&m, 0, sizeof(m));
	m.type = MSG_ROUND;
	m.round = r;
	send_msg(sock, &m, sv.ufd);
	atomic_store(&sv.pusher_stop, 0);
	if (opt.push_mode == PUSH_BACKGROUND && sv.npush &&
	    pthread_create(&pth, NULL, pusher, NULL))
		wl_die("pthread_create failed");

	serve_round(sock);

	if (opt.push_mode == PUSH_BACKGROUND && sv.npush) {
		atomic_store(&sv.pusher_stop, 1);
		pthread_join(pth, NULL);
	}
	memset(&m, 0, sizeof(m));
	if (opt.punch) {
		/* The client has faulted every page in: drop our copies. */
		if (fallocate(init.shmem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      0, (off_t)size))
			wl_die("fallocate(PUNCH_HOLE) of the memory file: %s",
			       strerror(errno));
		sv.punched += opt.pages;
		m.type = MSG_PUNCHED;
		/* Re-check only a complete round: a stopped one has holes. */
		m.value = wl_stop ? 0 : opt.pages;
		send_msg(sock, &m, -1);
		if (!recv_msg(sock, &m, NULL) || m.type != MSG_VERIFIED)
			wl_die("server: no verification from the client");
	} else {
		m.type = MSG_VERIFIED;
		send_msg(sock, &m, -1);
	}
	munmap(sv.mem, size);
	close(init.shmem_fd);
	close(sv.ufd);
	sv.rounds++;
}

static void hist_json(struct wl_json *j, const char *key, const uint64_t *h)
{
	int b;

	/* Non-empty log2 buckets only, each as [low, high, count]. */
	wl_json_open(j, key, '[');
	for (b = 0; b < NBUCKETS; b++) {
		if (!h[b])
			continue;
		wl_json_open(j, NULL, '[');
		wl_json_u64(j, NULL, b ? 1ull << b : 0);
		wl_json_u64(j, NULL, 1ull << (b + 1));
		wl_json_u64(j, NULL, h[b]);
		wl_json_close(j, ']');
	}
	wl_json_close(j, ']');
}

/* Prints the summary; returns the number of errors. */
static uint64_t print_summary(const struct client_final *f, pid_t client,
			      uint64_t elapsed_ns)
{
	struct wl_json j = { .f = stdout };
	int exact = opt.push_mode == PUSH_BEFORE;
	/* Pushed before the client ran: such a page must never be requested. */
	uint64_t pushed_req = exact ? sv.late : 0;
	uint64_t errors = f->mismatches + f->punch_mismatches + sv.dup +
			  sv.bad_offset + pushed_req;

	if (!opt.json) {
		printf("postcopy: server %d client %d: %" PRIu64 " rounds of %" PRIu64
		       " pages in %.2fs: %" PRIu64 " faults served, %" PRIu64
		       " pushed ahead, %" PRIu64 " touches, stall us min/p50/p99/max "
		       "%.1f/%.1f/%.1f/%.1f, %" PRIu64 " mismatches, %" PRIu64
		       " after punch, %" PRIu64 " duplicate requests\n",
		       (int)getpid(), (int)client, sv.rounds, opt.pages,
		       elapsed_ns / 1e9, sv.faults_served, (uint64_t)sv.pushed,
		       f->touches, f->stall_min / 1e3, f->stall_p50 / 1e3,
		       f->stall_p99 / 1e3, f->stall_max / 1e3, f->mismatches,
		       f->punch_mismatches, sv.dup);
		return errors;
	}
	wl_json_open(&j, NULL, '{');
	wl_json_str(&j, "program", "postcopy");
	wl_json_u64(&j, "version", 1);
	wl_json_i64(&j, "pid", getpid());
	wl_json_i64(&j, "pid_server", getpid());
	wl_json_i64(&j, "pid_client", client);
	wl_json_str(&j, "kernel", wl_kernel_release());
	wl_json_u64(&j, "pages", opt.pages);
	wl_json_u64(&j, "page_size", pg);
	wl_json_u64(&j, "threads", opt.threads);
	wl_json_u64(&j, "delay_us", opt.delay_us);
	wl_json_u64(&j, "push_ahead_percent", opt.push_pct);
	wl_json_str(&j, "push_mode", opt.push_mode == PUSH_BEFORE ? "before" : "background");
	wl_json_str(&j, "pattern", pat_names[opt.pattern]);
	wl_json_bool(&j, "overlap", opt.overlap);
	wl_json_u64(&j, "rounds", sv.rounds);
	wl_json_dbl(&j, "elapsed_s", elapsed_ns / 1e9);
	wl_json_u64(&j, "faults_served", sv.faults_served);
	wl_json_u64(&j, "pages_pushed", (uint64_t)sv.pushed);
	wl_json_u64(&j, "requests", sv.requests);
	wl_json_u64(&j, "umem_reads", sv.reads);
	wl_json_u64(&j, "umem_writes", sv.writes);
	wl_json_u64(&j, "max_pending", sv.max_pending);
	wl_json_u64(&j, "late_requests", sv.late);
	wl_json_u64(&j, "pages_punched", sv.punched);
	wl_json_open(&j, "service_us", '{');
	wl_json_dbl(&j, "min", sv.faults_served ? sv.svc_min / 1e3 : 0);
	wl_json_dbl(&j, "mean", sv.faults_served ? sv.svc_sum / 1e3 / sv.faults_served : 0);
	wl_json_dbl(&j, "max", sv.svc_max / 1e3);
	wl_json_close(&j, '}');
	wl_json_u64(&j, "touches", f->touches);
	wl_json_u64(&j, "pages_rechecked", f->pages_checked);
	wl_json_open(&j, "stall_us", '{');
	wl_json_dbl(&j, "min", f->stall_min / 1e3);
	wl_json_dbl(&j, "p50", f->stall_p50 / 1e3);
	wl_json_dbl(&j, "p90", f->stall_p90 / 1e3);
	wl_json_dbl(&j, "p99", f->stall_p99 / 1e3);
	wl_json_dbl(&j, "max", f->stall_max / 1e3);
	wl_json_dbl(&j, "mean", f->touches ? f->stall_sum / 1e3 / f->touches : 0);
	wl_json_close(&j, '}');
	hist_json(&j, "stall_hist_ns", f->hist);
	wl_json_open(&j, "expected", '{');
	if (exact)
		wl_json_u64(&j, "faults_served", sv.expected_faults);
	wl_json_close(&j, '}');
	wl_json_bool(&j, "exact", exact && sv.faults_served == sv.expected_faults);
	wl_json_open(&j, "errors", '{');
	wl_json_u64(&j, "mismatches", f->mismatches);
	wl_json_u64(&j, "mismatches_after_punch", f->punch_mismatches);
	wl_json_u64(&j, "duplicate_requests", sv.dup);
	wl_json_u64(&j, "bad_offsets", sv.bad_offset);
	wl_json_u64(&j, "requests_for_pushed_pages", pushed_req);
	wl_json_close(&j, '}');
	wl_json_u64(&j, "errors_total", errors);
	wl_json_close(&j, '}');
	putchar('\n');
	fflush(stdout);
	return errors;
}

int main(int argc, char **argv)
{
	struct client_final fin;
	uint64_t rng, r, t0, deadline = 0;
	int sv_pair[2], status, rc = 0;
	struct msg m;
	pid_t client;

	wl_prog = "postcopy";
	parse_args(argc, argv);
	pg = (size_t)sysconf(_SC_PAGESIZE);
	rng = opt.seed;

	/* Fail early and clearly when the driver is absent. */
	sv.ufd = open("/dev/umem", O_RDWR | O_CLOEXEC);
	if (sv.ufd < 0) {
		if (errno == ENOENT || errno == ENXIO || errno == ENODEV)
			fprintf(stderr, "postcopy: /dev/umem: %s: is umem.ko loaded?\n",
				strerror(errno));
		else
			fprintf(stderr, "postcopy: cannot open /dev/umem: %s\n",
				strerror(errno));
		return 1;
	}
	close(sv.ufd);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_pair))
		wl_die("socketpair: %s", strerror(errno));
	client = fork();
	if (client < 0)
		wl_die("fork: %s", strerror(errno));
	if (client == 0) {
		close(sv_pair[0]);
		/* The server stops us through the socket, not by signal. */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		_exit(client_main(sv_pair[1]));
	}
	close(sv_pair[1]);
	wl_install_stop_handlers();

	sv.state = calloc(opt.pages, 1);
	sv.requested = calloc(opt.pages, 1);
	sv.push_list = calloc(opt.pages, sizeof(*sv.push_list));
	if (!sv.state || !sv.requested || !sv.push_list)
		wl_die("out of memory");
	t0 = wl_now_ns();
	if (opt.duration > 0)
		deadline = t0 + (uint64_t)(opt.duration * 1e9);
	for (r = 1; !wl_stop && (!opt.rounds || r <= opt.rounds); r++) {
		if (deadline && wl_now_ns() >= deadline)
			break;
		server_round(sv_pair[0], r, &rng);
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_END;
	send_msg(sv_pair[0], &m, -1);
	memset(&fin, 0, sizeof(fin));
	if (!recv_msg(sv_pair[0], &m, NULL) || m.type != MSG_FINAL) {
		fprintf(stderr, "postcopy: no final report from the client\n");
		rc = 1;
	} else {
		fin = m.fin;
	}
	while (waitpid(client, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "postcopy: the client failed (status 0x%x)\n", status);
		rc = 1;
	}
	if (print_summary(&fin, client, wl_now_ns() - t0))
		rc = 1;
	return rc;
}
