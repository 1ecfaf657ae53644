// BPF logic on this machine's kernel: every program is loaded (not attached;
// the drivers' tracepoints need not exist) and driven with BPF_PROG_TEST_RUN
// on synthetic tracepoint arguments; the maps are then read back exactly.
import Glibc
import Testing
import UmmuBPF
@testable import UmmuKit

let isRoot = getuid() == 0
let rootReason: Comment = "BPF_PROG_TEST_RUN needs root (CAP_BPF+CAP_PERFMON); run the tests as root"

/// Loads one side without attaching.
func load(_ side: TraceSource, _ options: LoadOptions = LoadOptions()) throws -> (Tracer, BPFObject) {
    let t = try Tracer(sources: [side], required: true, options: options, attach: false)
    guard let o = t.object(side) else { throw UmmuError(.bpf, "side not loaded") }
    return (t, o)
}

func sleepMs(_ ms: UInt32) { usleep(ms * 1000) }

/// Runs body on a new pthread and waits for it; false if it could not start.
func Thread_run(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: @unchecked Sendable { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var th = pthread_t()
    let rc = pthread_create(&th, nil, { arg in
        guard let arg else { return nil }
        let b = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
        b.f()
        return nil
    }, box)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        return false
    }
    pthread_join(th, nil)
    return true
}

let me = UInt32(getpid())

// Argument builders in TP_PROTO order (docs/tracepoints.md).
func notify(_ o: BPFObject, ctx: UInt64 = 1, tgid: UInt32 = 4242, start: UInt64 = 0x10000, end: UInt64 = 0x13000,
            reason: UInt64 = 0, hits: UInt64 = 1, queued: UInt64 = 1, gen: UInt64 = 1,
            tgidStart: UInt64 = 1) throws {
    try o.program("un_notify").testRun([ctx, UInt64(tgid), start, end, reason, hits, queued, gen, tgidStart])
}

func fault(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, wait: Bool = true, tgid: UInt32 = me,
           tgidStart: UInt64 = 1) throws {
    try o.program("um_fault").testRun([area, pgoff, wait ? 1 : 0, UInt64(tgid), tgidStart])
}

func faultDone(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, outcome: UInt64 = 0, waitNs: UInt64 = 0,
               tgid: UInt32 = me, tgidStart: UInt64 = 1, waitStart: UInt64? = nil) throws {
    // A wait began when it ended minus its length; none: 0.
    let start = waitStart ?? (waitNs > 0 ? monotonicNow() - waitNs : 0)
    try o.program("um_fault_done").testRun([area, pgoff, outcome, waitNs, UInt64(tgid), tgidStart, start])
}

func monotonicNow() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// A page served; the driver passes the service time (0 when pushed) and
/// the process to charge.
func write(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, onDemand: Bool, serviceNs: UInt64? = nil,
           tgid: UInt32 = me, tgidStart: UInt64 = 1) throws {
    let service = serviceNs ?? (onDemand ? 1_000 : 0)
    try o.program("um_write").testRun([area, pgoff, onDemand ? 1 : 0, service, UInt64(tgid), tgidStart])
}

func umRead(_ o: BPFObject, area: UInt64 = 7, handed: UInt64, pending: UInt64, client: UInt32 = me) throws {
    try o.program("um_read").testRun([area, handed, pending, UInt64(client)])
}

func unRead(_ o: BPFObject, ctx: UInt64 = 9, events: UInt64, queued: UInt64, tgid: UInt32 = me,
            regions: UInt64 = 0, seq: UInt64) throws {
    try o.program("un_read").testRun([ctx, events, queued, UInt64(tgid), regions, seq, 1])
}

func unRegister(_ o: BPFObject, unregister: Bool = false, ctx: UInt64, cookie: UInt64 = 1, held: UInt64,
                tgid: UInt32 = me, queued: UInt64 = 0, seq: UInt64) throws {
    try o.program(unregister ? "un_unregister" : "un_register")
        .testRun([ctx, cookie, 0x1000, 0x2000, held, UInt64(tgid), queued, seq, 1])
}

/// Two CPUs this process may run on (see allowedCPUs), when it has two.
let twoCPUs: (Int, Int)? = allowedCPUs.count >= 2 ? (Int(allowedCPUs[0]), Int(allowedCPUs[1])) : nil

/// Runs body on a new thread pinned to `cpu`; false if that cannot be done.
func onCPU(_ cpu: Int, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Flag: @unchecked Sendable { var ok = false }
    let pinned = Flag()
    let ran = Thread_run {
        guard ummu_pin_thread(Int32(cpu)) == 0 else { return }
        pinned.ok = true
        body()
    }
    return ran && pinned.ok
}

@Suite("BPF programs under BPF_PROG_TEST_RUN", .enabled(if: isRoot, rootReason))
struct BPFTests {
    @Test func everyProgramLoadsWithItsTracepoint() throws {
        let (_, un) = try load(.ummunotify)
        #expect(un.programs.map(\.tracepoint).sorted()
            == ["ummunotify_notify", "ummunotify_read", "ummunotify_register", "ummunotify_release",
                "ummunotify_unregister"])
        let (_, um) = try load(.umem)
        #expect(um.programs.map(\.tracepoint).sorted()
            == ["umem_fault", "umem_fault_done", "umem_read", "umem_release", "umem_write"])
        let minimal = try BPFObject(.benchMinimal)
        #expect(minimal.programs.count == 1)
        for p in un.programs + um.programs + minimal.programs {
            #expect(try p.testRun([UInt64](repeating: 0, count: 9)) == 0)
        }
    }

    @Test func mapLayoutsMatchTheSharedHeader() throws {
        let (_, un) = try load(.ummunotify)
        let (_, um) = try load(.umem)
        #expect(try un.map(.unTotals).valueSize == MemoryLayout<un_totals>.size)
        #expect(try un.map(.unProcs).valueSize == MemoryLayout<un_proc>.size)
        #expect(try un.map(.unCtxs).valueSize == MemoryLayout<un_ctx>.size)
        #expect(try un.map(.unHists).valueSize == MemoryLayout<ummu_hist>.size)
        #expect(try um.map(.umTotals).valueSize == MemoryLayout<um_totals>.size)
        #expect(try um.map(.umProcs).valueSize == MemoryLayout<um_proc>.size)
        #expect(try um.map(.umAreas).valueSize == MemoryLayout<um_area>.size)
        // Nothing pairs events any more: umem has exactly BPFObjectID.umem.mapNames
        // (BPFMapNameTests), no um_pages or um_stalls.
        #expect(MemoryLayout<ummu_event>.size == 96)
        #expect(MemoryLayout<ummu_hist>.size == 66 * 8)
    }

    @Test func notifyCountsByReasonProcessAndContext() throws {
        let (t, o) = try load(.ummunotify)
        // 3 pages, unmap, two registrations hit, one newly queued.
        try notify(o, ctx: 1, tgid: 4242, start: 0x10000, end: 0x13000, reason: 0, hits: 2, queued: 1, gen: 1)
        // 1 page, protection_page, one hit queued.
        try notify(o, ctx: 1, tgid: 4242, start: 0x20000, end: 0x21000, reason: 3, hits: 1, queued: 1, gen: 2)
        // Another process and context, a reason number beyond the enum.
        try notify(o, ctx: 2, tgid: 4343, start: 0, end: 0x100000, reason: 42, hits: 1, queued: 0, gen: 7)
        // No registration hit: not an invalidation.
        try notify(o, ctx: 1, tgid: 4242, reason: 0, hits: 0, queued: 0)
        // The whole-mm soft-dirty clear: an invalidation of 0 bytes.
        try notify(o, ctx: 1, tgid: 4242, start: 0, end: ~0, reason: 4, hits: 3, queued: 3, gen: 3)

        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.invalidations == [1, 0, 0, 1, 1, 0, 0, 0, 1])
        #expect(u.invalidatedBytes == [0x3000, 0, 0, 0x1000, 0, 0, 0, 0, 0x100000])
        #expect(u.notifyNoHit == 1)
        #expect(u.reportsQueued == 5)
        #expect(u.reportsMerged == 2)
        #expect(u.contexts == 0)  // notify keeps nothing per context
        // Span histogram: 0x3000 (bit length 14), 0x1000 (13), 0x100000 (21), soft dirty 0.
        #expect(u.spanBytes.count == 4)
        #expect(u.spanBytes.slots[14] == 1 && u.spanBytes.slots[13] == 1 && u.spanBytes.slots[21] == 1)
        #expect(u.spanBytes.slots[0] == 1)
        #expect(u.spanBytes.sum == 0x3000 + 0x1000 + 0x100000)

        let p1 = try #require(s.processes[4242]?.ummunotify)
        #expect(p1.invalidations == [1, 0, 0, 1, 1, 0, 0, 0, 0])
        #expect(p1.invalidatedBytes[0] == 0x3000 && p1.invalidatedBytes[4] == 0)
        #expect(p1.reportsQueued == 5 && p1.reportsMerged == 1)
        let p2 = try #require(s.processes[4343]?.ummunotify)
        #expect(p2.invalidations[Reason.other.rawValue] == 1)
        #expect(p2.reportsMerged == 1)
        #expect(s.processes.count == 2)
    }

    @Test func readsFillTheBatchHistogramAndTheNewestBacklog() throws {
        let (t, o) = try load(.ummunotify)
        try unRead(o, events: 5, queued: 3, regions: 4, seq: 1)
        try unRead(o, events: 5, queued: 2, regions: 4, seq: 3)
        try unRead(o, events: 0, queued: 0, regions: 4, seq: 2)   // taken before seq 3, fired after it
        try unRead(o, events: 64, queued: 1, regions: 4, seq: 5)
        try unRead(o, events: 1, queued: 7, regions: 6, seq: 4)   // older again
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.reads == 5)
        #expect(u.eventsRead == 75)
        #expect(u.readBatch.slots[0] == 1)   // 0
        #expect(u.readBatch.slots[1] == 1)   // 1
        #expect(u.readBatch.slots[3] == 2)   // 5 -> [4, 8)
        #expect(u.readBatch.slots[7] == 1)   // 64 -> [64, 128)
        #expect(u.reportsBacklog == 1 && u.registrationsHeld == 4)  // the gauges of seq 5
        #expect(u.contexts == 1)
        let p = try #require(s.processes[me]?.ummunotify)  // the context's owner
        #expect(p.reads == 5 && p.eventsRead == 75 && p.registrationsHeld == 4)
        // Reads are charged to the owner the driver names, not the reader.
        try unRead(o, ctx: 10, events: 2, queued: 0, tgid: 4242, regions: 1, seq: 1)
        #expect(try t.snapshot().processes[4242]?.ummunotify?.reads == 1)
    }

    @Test func releaseDropsTheContextAndKeepsItsReads() throws {
        let (t, o) = try load(.ummunotify)
        try unRegister(o, ctx: 9, held: 1, seq: 1)
        try unRead(o, events: 3, queued: 2, regions: 1, seq: 2)
        #expect(onCPU(Int(allowedCPUs.last ?? 0)) { try? unRead(o, events: 4, queued: 0, regions: 1, seq: 3) })
        try unRegister(o, ctx: 11, held: 2, seq: 1)   // another context of the process stays
        let before = try #require(try t.snapshot().processes[me]?.ummunotify)
        #expect(before.reads == 2 && before.eventsRead == 7 && before.registrationsHeld == 3)
        try o.program("un_release").testRun([9, UInt64(me), 1, 1])
        try o.program("un_release").testRun([12, UInt64(me), 0, 1])  // never seen: nothing to do
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.contexts == 1 && u.registrationsHeld == 2 && u.reportsBacklog == 0)
        let p = try #require(s.processes[me]?.ummunotify)
        // Every CPU's reads of the context moved to the process's row.
        #expect(p.reads == 2 && p.eventsRead == 7 && p.registrationsHeld == 2)
        #expect(try o.map(.unCtxs).keys(as: UInt64.self) == [11])
    }

    @Test func gaugesAreTheNewestBySeqAcrossCPUs() throws {
        let (t, o) = try load(.ummunotify)
        try unRegister(o, ctx: 1, held: 1, seq: 1)
        try unRegister(o, ctx: 1, held: 2, seq: 2)
        try unRegister(o, ctx: 1, held: 3, seq: 3)
        try unRegister(o, unregister: true, ctx: 1, held: 2, seq: 4)
        for held in 1...5 { try unRegister(o, ctx: 2, held: UInt64(held), seq: UInt64(held)) }
        var s = try t.snapshot()
        var u = try #require(s.ummunotify)
        #expect(u.registers == 8 && u.unregisters == 1)
        #expect(u.registrationsHeld == 7)
        #expect(s.processes[me]?.ummunotify?.registrationsHeld == 7)
        guard let (a, b) = twoCPUs else { return }
        // Another CPU sees a newer unregister of context 2 (held 4, one
        // report queued), then this CPU an older one: the newest wins
        // whichever CPU wrote it and whenever it arrived.
        #expect(onCPU(b) { try? unRegister(o, unregister: true, ctx: 2, held: 4, queued: 1, seq: 7) })
        #expect(onCPU(a) { try? unRegister(o, unregister: true, ctx: 2, held: 3, seq: 6) })
        // And the other way round on context 3.
        #expect(onCPU(a) { try? unRegister(o, ctx: 3, held: 9, seq: 9) })
        #expect(onCPU(b) { try? unRegister(o, ctx: 3, held: 8, queued: 5, seq: 8) })
        s = try t.snapshot()
        u = try #require(s.ummunotify)
        #expect(u.registrationsHeld == 2 + 4 + 9 && u.reportsBacklog == 1)
    }

    @Test func pidFilterCountsOnlyThatProcess() throws {
        let (t, o) = try load(.ummunotify, LoadOptions(filterPID: 4242))
        try notify(o, tgid: 4242)
        try notify(o, tgid: 4343)
        try notify(o, tgid: 4343)
        try unRead(o, events: 1, queued: 0, tgid: me, seq: 1)  // another owner: filtered
        try unRead(o, events: 1, queued: 0, tgid: 4242, seq: 2)  // 4242's context, read by us: counted
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.totalInvalidations == 1)
        #expect(u.filtered == 3)
        #expect(u.reads == 1)
        #expect(Array(s.processes.keys) == [4242])

        let (tu, um) = try load(.umem, LoadOptions(filterPID: 4242))
        try fault(um, pgoff: 1, tgid: 4242)
        try fault(um, area: 8, pgoff: 2, tgid: 5555)
        try write(um, pgoff: 1, onDemand: true, tgid: 4242)  // server != 4242 but the page's client is
        try write(um, area: 8, pgoff: 2, onDemand: true, tgid: 5555)  // neither: filtered
        try umRead(um, area: 7, handed: 1, pending: 0, client: 4242)  // 4242's area
        try umRead(um, area: 8, handed: 1, pending: 0, client: 5555)  // filtered
        let m = try #require(try tu.snapshot().umem)
        #expect(m.faults == 1 && m.pagesOnDemand == 1 && m.serviceLatency.count == 1)
        #expect(m.reads == 1 && m.areas == 1)
        #expect(m.filtered == 3)
    }

    @Test func processRowsAreBoundedAndOverflowIsCounted() throws {
        let (t, o) = try load(.ummunotify, LoadOptions(mapSizes: [.unProcs: 4, .unCtxs: 3]))
        for i in 0..<6 { try notify(o, ctx: UInt64(i), tgid: UInt32(5000 + i)) }
        for i in 0..<5 { try unRead(o, ctx: UInt64(i), events: 1, queued: 0, tgid: UInt32(5000 + i), seq: 1) }
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.totalInvalidations == 6)       // totals never lose a count
        #expect(u.reads == 5)
        #expect(u.processOverflow == 2)
        #expect(u.contextOverflow == 2)
        #expect(s.processes.count == 4)
        #expect(u.contexts == 3)
    }

    @Test func perCPUMapsAreSizedForTheMachine() throws {
        // 2048 rows of 192 bytes: 96 MiB at 256 CPUs, so 341 rows (16 MiB).
        #expect(BPFObject.perCPURows(compiled: 2048, valueSize: 192, cpus: 256) == 341)
        #expect(BPFObject.perCPURows(compiled: 2048, valueSize: 192, cpus: 2) == 2048)
        #expect(BPFObject.perCPURows(compiled: 1024, valueSize: 1076, cpus: 4096) == 64)
        let (_, un) = try load(.ummunotify)
        let (_, um) = try load(.umem)
        let perCPU: [(BPFObject, BPFMapName, Int)] = [(un, .unProcs, 2048), (un, .unCtxs, 1024), (um, .umProcs, 1024)]
        for (o, name, compiled) in perCPU {
            let m = try o.map(name)
            #expect(m.isPerCPU)
            #expect(m.maxEntries == Int(BPFObject.perCPURows(compiled: UInt32(compiled), valueSize: m.valueSize,
                                                             cpus: possibleCPUs)))
            #expect(m.maxEntries * possibleCPUs * ((m.valueSize + 7) & ~7) <= max(BPFObject.perCPUMapBudget,
                                                                                 64 * possibleCPUs * m.valueSize + 64))
        }
        // An explicit size still wins.
        let (_, sized) = try load(.umem, LoadOptions(mapSizes: [.umProcs: 7]))
        #expect(try sized.map(.umProcs).maxEntries == 7)
    }

    @Test func serviceAndStallAreTheDriversDurations() throws {
        let (t, o) = try load(.umem)
        try fault(o, pgoff: 3)
        try fault(o, pgoff: 3)          // a second thread on the page: one request
        try fault(o, pgoff: 4, wait: false)
        try write(o, pgoff: 3, onDemand: true, serviceNs: 6_000_000, tgid: 4242)  // charged to the requester
        try faultDone(o, pgoff: 3, waitNs: 5_000_000)
        try faultDone(o, pgoff: 3, waitNs: 4_000_000)
        try write(o, pgoff: 9, onDemand: false)   // pushed ahead
        try faultDone(o, pgoff: 4)                // did not wait: not a stall
        try faultDone(o, pgoff: 3, outcome: 2)    // error at once: no wait, not a stall
        try faultDone(o, pgoff: 12, outcome: 9)   // a number beyond the contract: other

        let s = try t.snapshot()
        let m = try #require(s.umem)
        #expect(m.faults == 3 && m.faultsWaited == 2)
        #expect(m.pagesWritten == 2 && m.pagesOnDemand == 1 && m.pagesPushed == 1)
        #expect(m.serviceLatency.count == 1 && m.serviceLatency.sum == 6_000_000)
        #expect(m.serviceLatency.slots[Histogram.slot(for: 6_000_000)] == 1)
        #expect(m.stallLatency.count == 2 && m.stallLatency.sum == 9_000_000)
        #expect(m.outcomes == [3, 0, 1, 0, 1])
        let p = try #require(s.processes[me]?.umem)
        #expect(p.faults == 3 && p.faultsWaited == 2 && p.pagesOnDemand == 0)
        #expect(p.stallLatency == m.stallLatency.since(Histogram()))
        let q = try #require(s.processes[4242]?.umem)
        #expect(q.pagesOnDemand == 1 && q.serviceLatency == m.serviceLatency.since(Histogram()))
    }

    /// Faults waiting now: those that had to wait, minus those whose wait
    /// or at-once failure ended; a wait that began before the programs were
    /// loaded ends a fault they never counted and must not hide one.
    @Test func waitingFaultsAreThoseThatHadToWaitAndDidNotEnd() throws {
        let (t, o) = try load(.umem)
        try fault(o, pgoff: 1)
        try fault(o, pgoff: 2)
        try fault(o, pgoff: 3)
        try fault(o, pgoff: 4, wait: false)
        #expect(try t.snapshot().umem?.waitingFaults == 3)
        try faultDone(o, pgoff: 1, waitNs: 1_000)  // served after a wait
        try faultDone(o, pgoff: 2, outcome: 2)     // no server: SIGBUS at once
        try faultDone(o, pgoff: 4)                 // did not have to wait
        #expect(try t.snapshot().umem?.waitingFaults == 1)
        // A thread that had been waiting since long before the load (its
        // fault uncounted) wakes: page 3's thread still waits.
        try faultDone(o, pgoff: 9, waitNs: 3_600_000_000, waitStart: 1)
        #expect(try t.snapshot().umem?.waitingFaults == 1)
        try faultDone(o, pgoff: 3, waitNs: 1_000)
        #expect(try t.snapshot().umem?.waitingFaults == 0)
    }

    @Test func processRowsSumOverCPUs() throws {
        let (t, o) = try load(.umem)
        guard let (a, b) = twoCPUs else { return }
        #expect(onCPU(a) {
            try? fault(o, pgoff: 1)
            try? faultDone(o, pgoff: 1, waitNs: 1_000)
        })
        #expect(onCPU(b) {
            try? fault(o, pgoff: 2)
            try? fault(o, pgoff: 3, wait: false)
            try? faultDone(o, pgoff: 2, waitNs: 3_000)
            try? write(o, pgoff: 2, onDemand: true, serviceNs: 7_000)
        })
        let p = try #require(try t.snapshot().processes[me]?.umem)
        #expect(p.faults == 3 && p.faultsWaited == 2 && p.pagesOnDemand == 1)
        #expect(p.stallLatency.count == 2 && p.stallLatency.sum == 4_000)
        #expect(p.stallLatency.slots[Histogram.slot(for: 1_000)] == 1)
        #expect(p.stallLatency.slots[Histogram.slot(for: 3_000)] == 1)
        #expect(p.serviceLatency.count == 1 && p.serviceLatency.sum == 7_000)
    }

    @Test func serverReadsHandOffsetsAndReportPendingUntilRelease() throws {
        let (t, o) = try load(.umem)
        try umRead(o, area: 7, handed: 3, pending: 5, client: 4242)
        try umRead(o, area: 7, handed: 1, pending: 2, client: 4242)
        try umRead(o, area: 8, handed: 1, pending: 1, client: me)
        var s = try t.snapshot()
        var m = try #require(s.umem)
        #expect(m.reads == 3 && m.offsetsHanded == 5)
        #expect(m.readBatch.slots[2] == 1 && m.readBatch.slots[1] == 2)
        #expect(m.pendingRequests == 3 && m.areas == 2)
        #expect(s.processes[4242]?.umem?.pendingRequests == 2)
        try o.program("um_release").testRun([7, 4242])
        s = try t.snapshot()
        m = try #require(s.umem)
        #expect(m.pendingRequests == 1 && m.areas == 1)
        #expect(s.processes[4242]?.umem?.pendingRequests ?? 0 == 0)
        #expect(try o.map(.umAreas).keys(as: UInt64.self) == [8])
    }

    @Test func umemRowsAreBoundedAndOverflowIsCounted() throws {
        let (t, o) = try load(.umem, LoadOptions(mapSizes: [.umProcs: 1, .umAreas: 2]))
        for pg in 0..<8 { try fault(o, pgoff: UInt64(pg)) }
        try fault(o, pgoff: 0, tgid: 4242)  // second process: no row left
        for area in 7...9 { try umRead(o, area: UInt64(area), handed: 1, pending: 0) }  // third area: none
        let m = try #require(try t.snapshot().umem)
        #expect(m.faults == 9)
        #expect(m.processOverflow == 1)
        #expect(m.areaOverflow == 1)
        #expect(m.reads == 3 && m.areas == 2)
    }

    @Test func maintenanceDropsExitedProcesses() throws {
        let (t, o) = try load(.umem)
        try fault(o, area: 7, pgoff: 1, tgid: 4242)
        try fault(o, area: 8, pgoff: 1, tgid: me)
        // The first call removes nothing: 4242's row stays until a snapshot
        // has counted it and a second call still finds it gone.
        #expect(t.maintain(isAlive: { $0 != 4242 }) == 0)
        #expect(try t.snapshot().processes[4242]?.umem?.faults == 1)
        #expect(t.maintain(isAlive: { $0 != 4242 }) == 1)
        let s = try t.snapshot()
        #expect(s.processes[4242] == nil && s.processes[me] != nil)
        #expect(s.umem?.faults == 2)
    }

    @Test func ringBufferCarriesEventsAndCountsDrops() throws {
        let (t, o) = try load(.umem, LoadOptions(events: true, ringBytes: 4096))
        try fault(o, area: 7, pgoff: 3, tgid: 4242)
        try write(o, area: 7, pgoff: 3, onDemand: true, serviceNs: 123_456, tgid: 4242)
        var got: [ummu_event] = []
        let stream = try EventStream(objects: [o]) { (e: ummu_event) in got.append(e) }
        #expect(try stream.consume() == 2)
        #expect(got.map(\.type) == [EventKind.umemFault.rawValue, EventKind.umemWrite.rawValue])
        #expect(got[0].tgid == 4242 && got[0].tid == UInt32(ummu_gettid()))
        #expect(cArray(got[0].args, count: 4) == [7, 3, 1, 4242])
        #expect(got[1].tgid == 4242 && got[1].latency_ns == 123_456)
        #expect(cArray(got[1].args, count: 4) == [7, 3, 1, 0])  // the tracepoint's first three, as before
        #expect(try got[1].latency_ns == t.snapshot().umem?.serviceLatency.sum)

        // 4096 bytes hold 39 records of 8 + 96 bytes; the rest are drops.
        got.removeAll()
        for pg in 0..<100 { try fault(o, area: 9, pgoff: UInt64(pg), wait: false) }
        #expect(try t.snapshot().droppedEvents == 61)
        #expect(try stream.consume() == 39)
        #expect(got.count == 39)
    }

    @Test func noEventsUnlessAsked() throws {
        let (t, o) = try load(.ummunotify)
        try notify(o)
        var n = 0
        let stream = try EventStream(objects: [o]) { (_: ummu_event) in n += 1 }
        #expect(try stream.consume() == 0 && n == 0)
        #expect(try t.snapshot().droppedEvents == 0)
    }

    @Test func intervalIsTheDifferenceOfTwoSnapshots() throws {
        let (t, o) = try load(.ummunotify)
        try notify(o, reason: 6)
        let a = try t.snapshot()
        try notify(o, reason: 6)
        try notify(o, reason: 0, hits: 3, queued: 1)
        let b = try t.snapshot()
        let i = Interval(from: a, to: b)
        #expect(i.ummunotify?.invalidations[Reason.migrate.rawValue] == 1)
        #expect(i.ummunotify?.invalidations[Reason.unmap.rawValue] == 1)
        #expect(i.ummunotify?.reportsMerged == 2)
        #expect(i.processes.map(\.pid) == [4242])
        #expect(i.processes.first?.ummunotify?.totalInvalidations == 2)
        #expect(i.durationNs == b.monotonicNs - a.monotonicNs)
    }
}
