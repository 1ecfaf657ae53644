// Snapshots either read every number right or fail with one line: a layout
// mismatch, a missing map or a failed syscall is an error, never zeros; a
// map walk is exact while BPF or user space deletes rows under it; per-CPU
// rows are merged right across CPUs; test runs from several threads count
// exactly.
import Glibc
import Synchronization
import Testing
import UmmuBPF
@testable import UmmuKit

/// A pthread running `body` until joined (Thread_run waits at once).
final class TestThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var started = false

    init(_ body: @escaping @Sendable () -> Void) {
        final class Box { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().f()
            return nil
        }, box)
        if rc == 0 { started = true } else { Unmanaged<Box>.fromOpaque(box).release() }
    }

    /// Waits for the body; false if the thread never started.
    @discardableResult
    func join() -> Bool {
        guard started else { return false }
        pthread_join(thread, nil)
        started = false
        return true
    }
}

/// Set once to tell a thread to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func stop() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// The first error a thread hit (its body cannot throw).
final class FirstError: @unchecked Sendable {
    private let error = Mutex<String?>(nil)
    func record(_ e: any Error) { error.withLock { if $0 == nil { $0 = "\(e)" } } }
    var value: String? { error.withLock { $0 } }
}

/// Names the calling thread (its comm, as BPF sees it).
func nameThread(_ name: String) throws {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw UmmuError(.io, "/proc/thread-self/comm: \(UmmuError.errnoText(errno))") }
    defer { close(fd) }
    let n = name.utf8.count
    guard Array(name.utf8).withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, n) }) == n else {
        throw UmmuError(.io, "cannot name the thread: \(UmmuError.errnoText(errno))")
    }
}

/// The CPUs this process may run on: pinning elsewhere fails (a cpuset,
/// taskset), so the tests pick from these.
let allowedCPUs: [Int32] = {
    var cpus = [Int32](repeating: 0, count: 1024)
    let n = ummu_allowed_cpus(&cpus, Int32(cpus.count))
    return Array(cpus.prefix(max(0, Int(n))))
}()

@Suite("Snapshots: exact or an error", .enabled(if: isRoot, rootReason))
struct SnapshotTests {
    @Test func layoutMismatchIsAnErrorNotZeros() throws {
        let (_, un) = try load(.ummunotify)
        try notify(un)
        // un_totals read through umem's struct: the size differs.
        let e = #expect(throws: UmmuError.self) { try un.totals(.unTotals, as: um_totals.self) }
        #expect(e?.message.contains(BPFMapName.unTotals.rawValue) == true)
        #expect(e?.message.contains("\(MemoryLayout<um_totals>.size)") == true)
        // The right struct reads the count.
        #expect(try un.totals(.unTotals, as: un_totals.self).inval.0 == 1)
    }

    @Test func missingMapIsAnErrorNotZeros() throws {
        let (t, _) = try load(.ummunotify)
        let (_, um) = try load(.umem)
        var procs: [UInt32: ProcessRow] = [:]
        // The ummunotify reader on the umem object: none of its maps exist.
        let e = #expect(throws: UmmuError.self) { try t.readUmmunotify(um, into: &procs) }
        #expect(e?.message.contains(BPFMapName.unTotals.rawValue) == true)
    }

    @Test func failedMapReadFailsTheSnapshot() throws {
        let (t, o) = try load(.ummunotify)
        try notify(o)
        // The map's fd now names /dev/null: every BPF command on it fails
        // (EINVAL), as a revoked or unreadable map would.
        let fd = try o.map(.unProcs).fd
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        try #require(null >= 0 && dup2(null, fd) == fd)
        close(null)
        let e = #expect(throws: UmmuError.self) { try t.snapshot() }
        #expect(e?.message.contains(BPFMapName.unProcs.rawValue) == true)
        #expect(e?.message.contains("Invalid argument") == true)
    }

    /// Half the rows are deleted and reinserted by another thread all along;
    /// every walk and every snapshot must hold each other row exactly once.
    @Test func walkWhileRowsAreDeletedSeesEveryStableRowOnce() throws {
        let stableCount = 1500, volatileCount = 1500
        let (t, o) = try load(.umem, LoadOptions(mapSizes: [.umAreas: 4096]))
        let m = try o.map(.umAreas)
        let stablePID = { (i: Int) in UInt32(3_000_000 + i) }
        for i in 0..<stableCount {
            var a = um_area()
            a.client_tgid = stablePID(i)
            a.pending = 1
            try #require(m.update(UInt64(i), [a]))
        }
        var churn = um_area()
        churn.pending = 1000  // no process: only the totals see these
        for i in 0..<volatileCount { try #require(m.update(UInt64(100_000 + i), [churn])) }

        let stop = StopFlag()
        let deleter = TestThread { [churn] in
            while !stop.isSet {
                for i in 0..<volatileCount { m.delete(UInt64(100_000 + i)) }
                for i in 0..<volatileCount { m.update(UInt64(100_000 + i), [churn]) }
            }
        }
        defer {
            stop.stop()
            deleter.join()
        }
        var badWalks = 0, badSnapshots = 0
        for _ in 0..<100 {
            let keys = try m.keys(as: UInt64.self)
            let stable = keys.filter { $0 < 100_000 }
            if stable.count != stableCount || Set(stable).count != stableCount || Set(keys).count != keys.count {
                badWalks += 1
            }

            let s = try t.snapshot()
            let u = try #require(s.umem)
            let stableRows = (0..<stableCount).filter { s.processes[stablePID($0)]?.umem?.pendingRequests == 1 }
            let churned = u.pendingRequests &- UInt64(stableCount), areas = Int(u.areas)
            if stableRows.count != stableCount || churned % 1000 != 0 || areas < stableCount
                || areas > stableCount + volatileCount || churned / 1000 != UInt64(areas - stableCount) {
                badSnapshots += 1
            }
        }
        #expect(badWalks == 0)
        #expect(badSnapshots == 0)
    }

    /// More per-CPU rows than the first batch buffer holds: the read grows
    /// it (retrying a bucket that did not fit) and the next read reuses it.
    @Test func manyPerCPURowsAreReadExactlyInOneBatchOnceSized() throws {
        let (t, o) = try load(.ummunotify)
        let m = try o.map(.unProcs)
        let rows = 2000
        let queued = { (i: Int, cpu: Int) in UInt64(i * 10 + cpu + 1) }
        for i in 0..<rows {
            let copies = (0..<possibleCPUs).map { cpu in
                var p = un_proc()
                p.queued = queued(i, cpu)
                return p
            }
            try #require(m.update(UInt32(200_000 + i), copies))
        }
        for pass in 0..<2 {
            let s = try t.snapshot()
            let wrong = (0..<rows).filter { i in
                s.processes[UInt32(200_000 + i)]?.ummunotify?.reportsQueued
                    != (0..<possibleCPUs).reduce(0) { $0 + queued(i, $1) }
            }
            #expect(wrong.isEmpty && s.processes.count == rows, "pass \(pass)")
            #expect(pass == 0 ? m.lastReadCalls > 1 : m.lastReadCalls == 1, "pass \(pass): \(m.lastReadCalls) calls")
        }
    }

    /// The drivers' programs run on CPU 0 and CPU 1: counts are summed,
    /// gauges taken from the CPU with the driver's newest number (seq),
    /// comm from the CPU that has it.
    @Test(.enabled(if: allowedCPUs.count >= 2, "needs two CPUs this process may run on"))
    func perCPURowsAreMergedAcrossCPUs() throws {
        let (t, un) = try load(.ummunotify)
        let (tu, um) = try load(.umem)
        let failure = FirstError()
        // Two CPUs this process may use: "CPU 0" and "CPU 1" below.
        let (c0, c1) = (Int(allowedCPUs[0]), Int(allowedCPUs[1]))
        let ran = Thread_run {
            do {
                // Runs on CPU 1 are then this thread's own (comm, tgid);
                // runs on CPU 0 go through an IPI.
                let pinned = ummu_pin_thread(Int32(c1))
                guard pinned == 0 else { throw UmmuError(.io, "cannot pin to CPU \(c1): \(UmmuError.errnoText(pinned))") }
                try nameThread("ummu-percpu")
                let n = try un.program("un_notify"), reg = try un.program("un_register")
                let unreg = try un.program("un_unregister"), read = try un.program("un_read")
                let me64 = UInt64(me)
                // The process row is created on CPU 1, with this thread's comm.
                try n.testRun([1, me64, 0x10000, 0x11000, 0, 2, 1, 1, 1], onCPU: c1)
                try n.testRun([1, me64, 0x10000, 0x13000, 0, 1, 1, 2, 1], onCPU: c0)
                try n.testRun([1, me64, 0x10000, 0x13000, 0, 3, 1, 3, 1], onCPU: c0)
                try n.testRun([1, me64, 0x20000, 0x21000, 3, 1, 0, 4, 1], onCPU: c1)
                // (ctx, cookie, start, end, held, owner, queued, seq).
                // Context 1: 3 held on CPU 0, then 2 on CPU 1; context 2: 5 on
                // CPU 1, then 4 on CPU 0. The later value counts: 2 + 4.
                try reg.testRun([1, 1, 0x1000, 0x2000, 3, me64, 0, 1, 1], onCPU: c0)
                try unreg.testRun([1, 1, 0x1000, 0x2000, 2, me64, 0, 2, 1], onCPU: c1)
                try reg.testRun([2, 1, 0x1000, 0x2000, 5, me64, 0, 1, 1], onCPU: c1)
                try reg.testRun([2, 1, 0x1000, 0x2000, 4, me64, 0, 2, 1], onCPU: c0)
                // (ctx, events, queued, owner, held, seq). Backlog of
                // context 1: 9 on CPU 0, then 7 on CPU 1.
                try read.testRun([1, 2, 9, me64, 2, 3, 1], onCPU: c0)
                try read.testRun([1, 4, 7, me64, 2, 4, 1], onCPU: c1)
                let f = try um.program("um_fault")
                for pg in 0..<3 { try f.testRun([7, UInt64(pg), 1, 4242, 1], onCPU: c0) }
                for pg in 3..<8 { try f.testRun([7, UInt64(pg), UInt64(pg % 2), 4242, 1], onCPU: c1) }
            } catch {
                failure.record(error)
            }
        }
        #expect(ran)
        #expect(failure.value == nil)

        // Both CPUs' copies were written.
        let perCPU = try #require(try un.map(.unTotals).lookup(UInt32(0), as: un_totals.self))
        #expect(perCPU.count == possibleCPUs)
        #expect(perCPU[c0].inval.0 == 2 && perCPU[c1].inval.0 == 1 && perCPU[c1].inval.3 == 1)

        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.invalidations == [3, 0, 0, 1, 0, 0, 0, 0, 0])
        #expect(u.invalidatedBytes[0] == 0x1000 + 2 * 0x3000 && u.invalidatedBytes[3] == 0x1000)
        #expect(u.reportsQueued == 3 && u.reportsMerged == 1 + 0 + 2 + 1)
        #expect(u.registers == 3 && u.unregisters == 1)
        #expect(u.registrationsHeld == 2 + 4)
        #expect(u.reportsBacklog == 7)
        #expect(u.reads == 2 && u.eventsRead == 6)
        #expect(u.spanBytes.count == 4)
        #expect(u.contexts == 2)
        let p = try #require(s.processes[me])
        #expect(p.comm == "ummu-percpu")  // CPU 1's copy; CPU 0's is empty
        #expect(p.ummunotify?.invalidations == [3, 0, 0, 1, 0, 0, 0, 0, 0])
        #expect(p.ummunotify?.reportsQueued == 3)
        #expect(p.ummunotify?.reads == 2 && p.ummunotify?.registrationsHeld == 2 + 4)

        let mu = try #require(try tu.snapshot().umem)
        #expect(mu.faults == 8 && mu.faultsWaited == 3 + 3)
    }

    /// Four threads at once, spread over the CPUs, each its own process and
    /// context: the per-CPU totals and rows count every run, and snapshots
    /// taken meanwhile by two threads (sharing each map's buffer) only grow.
    @Test func testRunsFromSeveralThreadsCountExactly() throws {
        let (t, o) = try load(.ummunotify)
        let threads = 4, runs = 2000
        let failure = FirstError()
        let workers = (0..<threads).map { i in
            TestThread {
                do {
                    let pinned = allowedCPUs.isEmpty ? 0 : ummu_pin_thread(allowedCPUs[i % allowedCPUs.count])
                    guard pinned == 0 else { throw UmmuError(.io, "cannot pin: \(UmmuError.errnoText(pinned))") }
                    let n = try o.program("un_notify")
                    for g in 0..<runs {
                        try n.testRun([UInt64(10 + i), UInt64(6000 + i), 0, 0x1000, UInt64(i), 1, 1, UInt64(g), 1])
                    }
                } catch {
                    failure.record(error)
                }
            }
        }
        let snapshotsShrank = { @Sendable () throws -> Bool in
            var last: UInt64 = 0, shrank = false
            for _ in 0..<20 {
                let n = try t.snapshot().ummunotify?.totalInvalidations ?? 0
                if n < last { shrank = true }
                last = n
            }
            return shrank
        }
        let reader = TestThread {
            do {
                if try snapshotsShrank() { failure.record(UmmuError(.bpf, "the other thread's snapshots shrank")) }
            } catch {
                failure.record(error)
            }
        }
        let shrank = try snapshotsShrank()
        for w in workers + [reader] { #expect(w.join()) }
        #expect(failure.value == nil)
        #expect(!shrank)
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.totalInvalidations == UInt64(threads * runs))
        #expect(u.invalidatedBytes.reduce(0, +) == UInt64(threads * runs * 0x1000))
        #expect(u.reportsQueued == UInt64(threads * runs))
        #expect(u.contexts == 0)  // notify keeps nothing per context
        for i in 0..<threads {
            let p = s.processes[UInt32(6000 + i)]?.ummunotify
            #expect(p?.invalidations[i] == UInt64(runs))
            #expect(p?.totalInvalidations == UInt64(runs))
        }
    }
}

/// A context's reads move from un_ctxs to un_procs at its release; a
/// snapshot racing that must not see the process's reads go back (which the
/// next interval would count as a reset: the whole total again).
@Suite("Snapshots racing a context's release", .enabled(if: isRoot, rootReason))
struct ReleaseRaceTests {
    @Test func aProcessesReadsNeverGoBack() throws {
        let (t, o) = try load(.ummunotify)
        let stop = StopFlag()
        let failure = FirstError()
        let pid: UInt32 = 4_300_000  // above pid_max: never alive, never pruned here
        let releaser = TestThread {
            do {
                var ctx: UInt64 = 100
                while !stop.isSet {
                    try unRead(o, ctx: ctx, events: 2, queued: 0, tgid: pid, seq: 1)
                    try o.program("un_release").testRun([ctx, UInt64(pid), 0, 1])
                    ctx += 1
                }
            } catch {
                failure.record(error)
            }
        }
        var last: (reads: UInt64, eventsRead: UInt64) = (0, 0)
        var wentBack = 0
        var prev = try t.snapshot()
        let initial = prev.processes[pid]?.ummunotify?.reads ?? 0
        var summed: UInt64 = 0
        for _ in 0..<3000 {
            let cur = try t.snapshot()
            if let p = cur.processes[pid]?.ummunotify {
                if p.reads < last.reads || p.eventsRead < last.eventsRead { wentBack += 1 }
                last = (p.reads, p.eventsRead)
            }
            // What the intervals report must add up to the count: a count
            // that went back reads as a reset, its whole total again.
            summed += Interval(from: prev, to: cur).processes.first { $0.pid == pid }?.ummunotify?.reads ?? 0
            prev = cur
        }
        stop.stop()
        releaser.join()
        #expect(failure.value == nil)
        #expect(last.reads > 0, "the releaser ran")
        #expect(wentBack == 0, "a process's reads went back \(wentBack) times")
        #expect(summed == last.reads - initial,
                "the intervals' reads add up to \(summed), the count went from \(initial) to \(last.reads)")
    }
}
