// A pid that an exited process had and a new one took: the drivers pass the
// process's start time with its tgid, BPF takes a per-CPU copy of another
// start time over, and user space sums only the copies of the newest
// process, so the old process's counts never reach the new one's.
import Testing
@testable import UmmuKit

@Suite("PID reuse: the drivers' per-process rows", .enabled(if: isRoot, rootReason))
struct PIDReuseTests {
    let pid: UInt32 = 4_300_001  // above pid_max: no live process, no comm
    let old: UInt64 = 1_000, new: UInt64 = 2_000  // start times

    @Test(.enabled(if: allowedCPUs.count >= 2, "needs two CPUs this process may run on"))
    func umemRowsOfAReusedPidDoNotMix() throws {
        let (t, o) = try load(.umem)
        let (c0, c1) = (Int(allowedCPUs[0]), Int(allowedCPUs[1]))
        let f = try o.program("um_fault"), done = try o.program("um_fault_done")
        let w = try o.program("um_write")
        // The old process faults and waits on both CPUs.
        for (cpu, pg) in [(c0, 0), (c1, 1), (c1, 2)] as [(Int, UInt64)] {
            try f.testRun([7, pg, 1, UInt64(pid), old], onCPU: cpu)
            try done.testRun([7, pg, 0, 5_000, UInt64(pid), old, monotonicNow()], onCPU: cpu)
            try w.testRun([7, pg, 1, 4_000, UInt64(pid), old], onCPU: cpu)
        }
        let before = try #require(try t.snapshot().processes[pid]?.umem)
        #expect(before.startTime == old && before.faults == 3 && before.stallLatency.count == 3)
        #expect(before.pagesOnDemand == 3)
        // It exits; the new one faults 5 times, on CPU 0 only: CPU 1's copy
        // still holds the old process's counts.
        for pg: UInt64 in 10..<15 {
            try f.testRun([7, pg, 1, UInt64(pid), new], onCPU: c0)
            try done.testRun([7, pg, 0, 7_000, UInt64(pid), new, monotonicNow()], onCPU: c0)
        }
        // The old process's late event: a page served for a request it
        // queued. It must not take the row back.
        try w.testRun([7, 2, 1, 4_000, UInt64(pid), old], onCPU: c0)
        let after = try #require(try t.snapshot().processes[pid]?.umem)
        #expect(after.startTime == new)
        #expect(after.faults == 5 && after.faultsWaited == 5 && after.pagesOnDemand == 0)
        #expect(after.stallLatency.count == 5 && after.stallLatency.sum == 35_000)
        #expect(after.serviceLatency.count == 0)
        // Over the interval, the new process's own counts, not a
        // difference with the old one's (5 - 3).
        #expect(after.since(before).faults == 5)
        #expect(after.since(before).stallLatency.count == 5)
        // The totals count both processes.
        #expect(try t.snapshot().umem?.faults == 8)
    }

    @Test(.enabled(if: allowedCPUs.count >= 2, "needs two CPUs this process may run on"))
    func ummunotifyRowsOfAReusedPidDoNotMix() throws {
        let (t, o) = try load(.ummunotify)
        let (c0, c1) = (Int(allowedCPUs[0]), Int(allowedCPUs[1]))
        let n = try o.program("un_notify"), rd = try o.program("un_read")
        let rel = try o.program("un_release")
        let p = UInt64(pid)
        // The old process: invalidations on both CPUs, a context read and
        // released (its reads move into the process row).
        try n.testRun([1, p, 0x1000, 0x2000, 0, 1, 1, 1, old], onCPU: c0)
        try n.testRun([1, p, 0x1000, 0x3000, 0, 1, 1, 2, old], onCPU: c1)
        try rd.testRun([1, 1, 0, p, 1, 1, old], onCPU: c1)
        try rel.testRun([1, p, 1, old], onCPU: c1)
        let before = try #require(try t.snapshot().processes[pid]?.ummunotify)
        #expect(before.startTime == old && before.totalInvalidations == 2 && before.reads == 1)
        // The new process opens a context and reads it before any
        // invalidation of its own: the row still holds the old counts.
        try rd.testRun([2, 3, 0, p, 1, 1, new], onCPU: c0)
        let reading = try #require(try t.snapshot().processes[pid]?.ummunotify)
        #expect(reading.startTime == new && reading.reads == 1 && reading.eventsRead == 3)
        #expect(reading.totalInvalidations == 0)
        // Its first invalidations, on CPU 0: CPU 1's copy is still the old one's.
        for g: UInt64 in 1...3 { try n.testRun([2, p, 0x5000, 0x6000, 0, 1, 1, g, new], onCPU: c0) }
        // A context of the old process (its fd outlived it) is released
        // late, on CPU 0: it must not take the row back.
        try rd.testRun([3, 4, 0, p, 1, 1, old], onCPU: c0)
        try rel.testRun([3, p, 1, old], onCPU: c0)
        let after = try #require(try t.snapshot().processes[pid]?.ummunotify)
        #expect(after.startTime == new && after.totalInvalidations == 3)
        #expect(after.totalInvalidatedBytes == 0x3000 && after.reads == 1)
        #expect(after.since(before).totalInvalidations == 3)
        #expect(try t.snapshot().ummunotify?.invalidations.reduce(0, +) == 5)
    }
}
