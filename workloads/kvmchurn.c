// SPDX-License-Identifier: GPL-2.0
/*
 * kvmchurn: a KVM VM whose one memslot is churned with madvise, mprotect and
 * munmap, so that the MMU-notifier invalidations KVM receives are known
 * exactly.
 *
 * It maps --pages P anonymous pages (THP off for the whole process, or with
 * --thp for the slot until the churn is done, so every page is one PTE),
 * writes every page, creates a VM (KVM_CREATE_VM: KVM registers its MMU
 * notifier on this mm) with one memslot over the P pages
 * (KVM_SET_USER_MEMORY_REGION, slot 0 at guest physical 0; no vCPU), then
 * performs, each on pages of its own:
 *
 *   --dontneed N   N calls madvise(page, 4096, MADV_DONTNEED), one page each;
 *   --mprotect N   N calls mprotect() of one page: call 2k makes page k
 *                  PROT_READ, call 2k+1 makes it PROT_READ|PROT_WRITE again
 *                  (ceil(N/2) pages; with N odd the last page stays
 *                  read-only).  Every call changes the page's protection:
 *                  a call that changes nothing returns before any
 *                  invalidation (mprotect_fixup: newflags == oldflags);
 *   --munmap N     N calls munmap(page, 4096), one page each.
 *
 * Layout of the slot: the --dontneed pages first, then every page that will
 * be mprotect'ed or munmap'ed as a VMA of its own (MADV_DONTDUMP on it and
 * not on its neighbours, so it never merges with them; a plain spacer page
 * between two of them), then the rest (--balloon's).  The mprotect and
 * munmap calls then cover a whole VMA and split or merge none.  That is
 * what makes them exact: a VMA split (or a merge that moves a boundary) at
 * an address that is not 2 MiB aligned, inside a VMA that covers the whole
 * aligned 2 MiB block around it, costs one more MMU_NOTIFY_CLEAR over that
 * block, huge page or not (mm/huge_memory.c vma_adjust_trans_huge ->
 * split_huge_pmd_if_needed -> split_huge_pmd_address -> __split_huge_pmd,
 * which starts the invalidation before it looks at the PMD; same code in
 * 6.1 and 6.12).  madvise(MADV_DONTNEED) splits nothing, so its pages stay
 * in one large VMA.
 *
 * Invalidations (mmu_notifier_invalidate_range_start calls, enum
 * mmu_notifier_event) per call, read from Debian's 6.1.192 and 6.12.117
 * sources and counted in guests of both; the page is present, THP is off,
 * no vCPU exists:
 *
 *   madvise(MADV_DONTNEED)  exactly 1, MMU_NOTIFY_CLEAR (1), range = the page
 *       6.1 and 6.12: mm/madvise.c madvise_dontneed_single_vma ->
 *       mm/memory.c zap_page_range_single (one range_start/end pair)
 *   mprotect (either way)   exactly 1, MMU_NOTIFY_PROTECTION_VMA (2),
 *       range = the page
 *       6.1: mm/mprotect.c mprotect_fixup -> change_protection ->
 *       change_protection_range -> change_pmd_range (one pair per call
 *       that finds a populated PMD entry, i.e. a page table, in its range)
 *       6.12: mprotect_fixup -> ... -> change_pud_range (one pair per call
 *       that finds a populated PUD entry; mm/vma.c vma_modify_flags
 *       splits nothing here)
 *   munmap                  exactly 1, MMU_NOTIFY_UNMAP (0), range = the page
 *       6.1: mm/mmap.c __vm_munmap -> do_mas_munmap -> do_mas_align_munmap
 *       -> unmap_region -> mm/memory.c unmap_vmas
 *       6.12: mm/mmap.c __vm_munmap -> mm/vma.c do_vmi_munmap ->
 *       do_vmi_align_munmap -> vms_complete_munmap_vmas -> vms_clear_ptes
 *       -> unmap_vmas
 *
 * KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION and touching pages invalidate
 * nothing.  At exit, exit_mmap calls mmu_notifier_release (KVM's ->release)
 * first and then unmap_vmas over 0..ULONG_MAX: one more MMU_NOTIFY_UNMAP
 * range_start on the mm, which reaches no subscriber any more (KVM has been
 * released) but does reach __mmu_notifier_invalidate_range_start, since the
 * mm keeps its notifier_subscriptions until it is freed.
 *
 * So that nothing else of this process invalidates after KVM_CREATE_VM,
 * everything that could is done before it: the process's pages are
 * populated once (mlockall(MCL_CURRENT) then munlockall(), which also breaks
 * COW of the binary's writable data, so no later write fault copies a page:
 * wp_page_copy would invalidate, MMU_NOTIFY_CLEAR), the stack is pre-grown,
 * THP is off (no collapse or split; --thp: see below), and the churn does no
 * malloc or stdio; the summary is formatted on the stack and written with
 * write(2).
 *
 * --hold S stays alive S seconds after the churn (another process can act on
 * the memory meanwhile); --ready-file PATH gets "PID\n" (atomically, by
 * rename) once the VM exists and the churn is done.  --balloon then (after
 * the hold, if any) loops until SIGTERM/SIGINT/SIGHUP over the remaining
 * pages of the slot: each step madvise(MADV_DONTNEED)s one page and writes
 * it again (a new zeroed page, no invalidation), at --rate steps/s (default
 * 200): one MMU_NOTIFY_CLEAR per step.
 *
 * --thp hands the slot to khugepaged once the churn is done: the process
 * keeps THP allowed (no PR_SET_THP_DISABLE; the slot still starts as 4 KiB
 * pages, MADV_NOHUGEPAGE while it is filled), and just before the ready file
 * the whole slot gets MADV_HUGEPAGE (a flag change over whole VMAs: no
 * split, no invalidation).  With THP "madvise" (or "always") khugepaged
 * then collapses each populated, aligned 2 MiB block that lies in one VMA:
 * one MMU_NOTIFY_CLEAR over the block, from khugepaged's thread
 * (mm/khugepaged.c collapse_huge_page, 6.1 and 6.12).  After a collapse a
 * --balloon step inside a huge PMD also splits it (one more CLEAR over
 * 2 MiB, mm/memory.c zap_pmd_range -> __split_huge_pmd), so with --thp only
 * the churn's counts are exact.
 *
 * At the end one JSON line on stdout:
 *   {"program":"kvmchurn","version":1,"pid":..,"kernel":"..","pages":P,
 *    "page_size":4096,"slot_start":A,"slot_end":B,"dontneed":N,
 *    "mprotect":N,"mprotect_pages":ceil(N/2),"munmap":N,"thp":0|1,"balloon":0|1,
 *    "balloon_steps":S,"held_s":..,"elapsed_s":..,
 *    "expected":{"unmap":U,"clear":C,"protection_vma":V}}
 * where expected are the invalidations above (clear = dontneed +
 * balloon_steps, protection_vma = mprotect, unmap = munmap; the exit's
 * is not included).  Errors: one line on stderr, exit status 1.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <linux/kvm.h>

#include "wl_common.h"

#define MAX_PAGES	(1u << 22)	/* 16 GiB of 4 KiB pages */
/* Two VMAs per isolated page: stay well below vm.max_map_count (65530). */
#define MAX_ISOLATED	30000

static struct {
	uint64_t pages;
	uint64_t dontneed;
	uint64_t mprotect;
	uint64_t munmap;
	double hold;
	double rate;
	int balloon;
	int thp;
	const char *ready_file;
} opt = {
	.pages = 1024,
	.rate = 200,
};

static size_t pg;

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
"usage: kvmchurn [options]\n"
"  --pages P          pages in the VM's memslot (default 1024)\n"
"  --dontneed N       madvise(MADV_DONTNEED) N pages, one call each\n"
"                     (1 MMU_NOTIFY_CLEAR invalidation per call)\n"
"  --mprotect N       N mprotect calls of one page each: read-only, then back\n"
"                     to read-write, page after page (1 MMU_NOTIFY_PROTECTION_VMA\n"
"                     per call; ceil(N/2) pages)\n"
"  --munmap N         munmap N pages, one call each (1 MMU_NOTIFY_UNMAP per call)\n"
"  --hold S           stay alive S seconds after the churn (SIGTERM ends it)\n"
"  --ready-file PATH  write the pid to PATH once the VM exists and the churn is done\n"
"  --balloon          then, until SIGTERM: DONTNEED one page and write it again,\n"
"                     over the pages the churn did not use, at --rate per second\n"
"  --rate R           balloon steps per second, 0 = as fast as possible (default 200)\n"
"  --thp              after the churn, MADV_HUGEPAGE the slot: khugepaged may\n"
"                     collapse it (one MMU_NOTIFY_CLEAR per 2 MiB, from khugepaged)\n"
"All pages are distinct; each mprotect'ed or munmap'ed page is a VMA of its own\n"
"(exact counts, see kvmchurn.c), so P must be at least\n"
"dontneed + 2 * (ceil(mprotect/2) + munmap) (+1 with --balloon).\n"
"Prints one JSON line at the end (see the comment at the top of kvmchurn.c).\n");
	exit(code);
}

static void set_ready_file(const char *v)
{
	opt.ready_file = v;
}

/* Grow the stack now, so no later call faults a new stack page in. */
static void __attribute__((noinline)) pregrow_stack(void)
{
	volatile char buf[256 * 1024];
	size_t i;

	for (i = 0; i < sizeof(buf); i += 512)
		buf[i] = 1;
}

static void write_ready_file(void)
{
	char tmp[4096], line[32];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", opt.ready_file) >= (int)sizeof(tmp))
		wl_die("--ready-file path too long");
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_die("%s: %s", tmp, strerror(errno));
	if (write(fd, line, n) != n)
		wl_die("write %s: %s", tmp, strerror(errno));
	close(fd);
	if (rename(tmp, opt.ready_file))
		wl_die("rename %s to %s: %s", tmp, opt.ready_file, strerror(errno));
}

/* Sleep until t_ns or until a stop signal, whichever comes first. */
static void sleep_until_or_stop(uint64_t t_ns)
{
	while (!wl_stop) {
		uint64_t now = wl_now_ns(), step;
		struct timespec ts;

		if (now >= t_ns)
			break;
		step = t_ns - now;
		if (step > 100000000ull)
			step = 100000000ull;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)step;
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv)
{
	const struct wl_opt opts[] = {
		{ "--pages", WL_U64, &opt.pages, NULL },
		{ "--dontneed", WL_U64, &opt.dontneed, NULL },
		{ "--mprotect", WL_U64, &opt.mprotect, NULL },
		{ "--munmap", WL_U64, &opt.munmap, NULL },
		{ "--hold", WL_DBL, &opt.hold, NULL },
		{ "--ready-file", WL_FUNC, NULL, set_ready_file },
		{ "--balloon", WL_FLAG, &opt.balloon, NULL },
		{ "--rate", WL_DBL, &opt.rate, NULL },
		{ "--thp", WL_FLAG, &opt.thp, NULL },
		{ NULL, WL_FLAG, NULL, NULL },
	};
	struct kvm_userspace_memory_region region;
	uint64_t mprot_pages, isolated, used, i, first, steps = 0, t0, t_end, held = 0;
	uint64_t balloon_first, balloon_n;
	const char *kernel;
	char out[1024], *slot;
	int kvm, vm, n;

	wl_prog = "kvmchurn";
	wl_parse_opts(argc, argv, opts, usage);
	pg = (size_t)sysconf(_SC_PAGESIZE);
	mprot_pages = (opt.mprotect + 1) / 2;
	isolated = mprot_pages + opt.munmap;
	used = opt.dontneed + 2 * isolated;
	if (!opt.pages || opt.pages > MAX_PAGES)
		wl_die("--pages must be 1..%u", MAX_PAGES);
	if (isolated > MAX_ISOLATED)
		wl_die("ceil(mprotect/2) + munmap must be at most %u", MAX_ISOLATED);
	if (used + (opt.balloon ? 1 : 0) > opt.pages)
		wl_die("--pages %" PRIu64 " is too small: the churn needs %" PRIu64
		       " pages%s", opt.pages, used + (opt.balloon ? 1 : 0),
		       opt.balloon ? " (and --balloon one more)" : "");
	if (opt.hold > 1e9)
		wl_die("--hold must be at most 1e9 seconds");
	wl_install_stop_handlers();
	kernel = wl_kernel_release();

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		wl_die("/dev/kvm: %s: is KVM loaded (scripts/guest-run --kvm)?",
		       strerror(errno));
	n = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (n != KVM_API_VERSION)
		wl_die("KVM_GET_API_VERSION: %d, want %d", n, KVM_API_VERSION);

	/* No huge pages anywhere in this mm: no splits, no khugepaged. */
	if (!opt.thp && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_die("prctl(PR_SET_THP_DISABLE): %s", strerror(errno));
	slot = mmap(NULL, opt.pages * pg, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (slot == MAP_FAILED)
		wl_die("mmap of %" PRIu64 " pages: %s", opt.pages, strerror(errno));
	if (madvise(slot, opt.pages * pg, MADV_NOHUGEPAGE))
		wl_die("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	for (i = 0; i < opt.pages; i++)
		memset(slot + i * pg, (int)(i & 0x7f) | 1, pg);
	/* Page k to be mprotect'ed or munmap'ed: dontneed + 2k + 1. */
	for (i = 0; i < isolated; i++)
		if (madvise(slot + (opt.dontneed + 2 * i + 1) * pg, pg, MADV_DONTDUMP))
			wl_die("madvise(MADV_DONTDUMP): %s", strerror(errno));
	pregrow_stack();
	/*
	 * Populate every mapping and break COW of every writable private
	 * page now; the pages stay when unlocked.  Best effort: without
	 * CAP_IPC_LOCK the limit may refuse it.
	 */
	if (!mlockall(MCL_CURRENT))
		munlockall();

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		wl_die("KVM_CREATE_VM: %s", strerror(errno));
	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = opt.pages * pg;
	region.userspace_addr = (uint64_t)(uintptr_t)slot;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region))
		wl_die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));

	t0 = wl_now_ns();
	for (i = 0; i < opt.dontneed; i++)
		if (madvise(slot + i * pg, pg, MADV_DONTNEED))
			wl_die("madvise(MADV_DONTNEED): %s", strerror(errno));
	first = opt.dontneed + 1;	/* the first isolated page */
	for (i = 0; i < opt.mprotect; i++) {
		int prot = i % 2 ? PROT_READ | PROT_WRITE : PROT_READ;

		if (mprotect(slot + (first + 2 * (i / 2)) * pg, pg, prot))
			wl_die("mprotect: %s", strerror(errno));
	}
	first += 2 * mprot_pages;
	for (i = 0; i < opt.munmap; i++)
		if (munmap(slot + (first + 2 * i) * pg, pg))
			wl_die("munmap: %s", strerror(errno));
	first = used;

	/* The munmap'ed pages are holes: ENOMEM, the rest is done. */
	if (opt.thp && madvise(slot, opt.pages * pg, MADV_HUGEPAGE) &&
	    !(errno == ENOMEM && opt.munmap))
		wl_die("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	if (opt.ready_file)
		write_ready_file();
	if (opt.hold > 0) {
		uint64_t t = wl_now_ns();

		sleep_until_or_stop(t + (uint64_t)(opt.hold * 1e9));
		held = wl_now_ns() - t;
	}

	balloon_first = first;
	balloon_n = opt.pages - first;
	if (opt.balloon) {
		uint64_t next = wl_now_ns(), interval = 0;

		if (opt.rate > 0)
			interval = (uint64_t)(1e9 / opt.rate);
		while (!wl_stop) {
			char *p = slot + (balloon_first + steps % balloon_n) * pg;

			if (interval) {
				next += interval;
				sleep_until_or_stop(next);
				if (wl_stop)
					break;
			}
			if (madvise(p, pg, MADV_DONTNEED))
				wl_die("madvise(MADV_DONTNEED): %s", strerror(errno));
			*(volatile char *)p = (char)(steps | 1);
			steps++;
		}
	}
	t_end = wl_now_ns();

	n = snprintf(out, sizeof(out),
		"{\"program\":\"kvmchurn\",\"version\":1,\"pid\":%d,"
		"\"kernel\":\"%s\",\"pages\":%" PRIu64 ",\"page_size\":%zu,"
		"\"slot_start\":%" PRIu64 ",\"slot_end\":%" PRIu64 ","
		"\"dontneed\":%" PRIu64 ",\"mprotect\":%" PRIu64 ","
		"\"mprotect_pages\":%" PRIu64 ",\"munmap\":%" PRIu64 ","
		"\"thp\":%d,\"balloon\":%d,\"balloon_steps\":%" PRIu64 ","
		"\"held_s\":%.3f,\"elapsed_s\":%.3f,"
		"\"expected\":{\"unmap\":%" PRIu64 ",\"clear\":%" PRIu64
		",\"protection_vma\":%" PRIu64 "}}\n",
		(int)getpid(), kernel, opt.pages, pg,
		(uint64_t)(uintptr_t)slot, (uint64_t)(uintptr_t)slot + opt.pages * pg,
		opt.dontneed, opt.mprotect, mprot_pages, opt.munmap,
		opt.thp, opt.balloon, steps,
		(double)held / 1e9,
		(double)(t_end - t0) / 1e9,
		opt.munmap, opt.dontneed + steps, opt.mprotect);
	if (n < 0 || n >= (int)sizeof(out) || write(1, out, n) != n)
		wl_die("cannot write the summary");
	return 0;
}
