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
            reason: UInt64 = 0, hits: UInt64 = 1, queued: UInt64 = 1, gen: UInt64 = 1) throws {
    try o.program("un_notify").testRun([ctx, UInt64(tgid), start, end, reason, hits, queued, gen])
}

func fault(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, wait: Bool = true, tgid: UInt32 = me) throws {
    try o.program("um_fault").testRun([area, pgoff, wait ? 1 : 0, UInt64(tgid)])
}

func faultDone(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, outcome: UInt64 = 0) throws {
    try o.program("um_fault_done").testRun([area, pgoff, outcome])
}

func write(_ o: BPFObject, area: UInt64 = 7, pgoff: UInt64, onDemand: Bool) throws {
    try o.program("um_write").testRun([area, pgoff, onDemand ? 1 : 0])
}

@Suite("BPF programs under BPF_PROG_TEST_RUN", .enabled(if: isRoot, rootReason))
struct BPFTests {
    @Test func everyProgramLoadsWithItsTracepoint() throws {
        let (_, un) = try load(.ummunotify)
        #expect(un.programs.map(\.tracepoint).sorted()
            == ["ummunotify_notify", "ummunotify_read", "ummunotify_register", "ummunotify_unregister"])
        let (_, um) = try load(.umem)
        #expect(um.programs.map(\.tracepoint).sorted() == ["umem_fault", "umem_fault_done", "umem_read", "umem_write"])
        let minimal = try BPFObject(.benchMinimal)
        #expect(minimal.programs.count == 1)
        for p in un.programs + um.programs + minimal.programs {
            #expect(try p.testRun([0, 0, 0, 0, 0, 0, 0, 0]) == 0)
        }
    }

    @Test func mapLayoutsMatchTheSharedHeader() throws {
        let (_, un) = try load(.ummunotify)
        let (_, um) = try load(.umem)
        #expect(try un.map("un_totals").valueSize == MemoryLayout<un_totals>.size)
        #expect(try un.map("un_procs").valueSize == MemoryLayout<un_proc>.size)
        #expect(try un.map("un_ctxs").valueSize == MemoryLayout<un_ctx>.size)
        #expect(try un.map("un_hists").valueSize == MemoryLayout<ummu_hist>.size)
        #expect(try um.map("um_totals").valueSize == MemoryLayout<um_totals>.size)
        #expect(try um.map("um_procs").valueSize == MemoryLayout<um_proc>.size)
        #expect(try um.map("um_areas").valueSize == MemoryLayout<um_area>.size)
        #expect(try um.map("um_pages").keySize == MemoryLayout<um_page_key>.size)
        #expect(try um.map("um_stalls").valueSize == MemoryLayout<um_stall>.size)
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
        #expect(u.contexts == 2)
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

    @Test func readsFillTheBatchHistogramAndBacklog() throws {
        let (t, o) = try load(.ummunotify)
        let read = try o.program("un_read")
        try read.testRun([9, 5, 3])
        try read.testRun([9, 5, 2])
        try read.testRun([9, 0, 0])
        try read.testRun([9, 64, 1])
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.reads == 4)
        #expect(u.eventsRead == 74)
        #expect(u.readBatch.slots[0] == 1)   // 0
        #expect(u.readBatch.slots[3] == 2)   // 5 -> [4, 8)
        #expect(u.readBatch.slots[7] == 1)   // 64 -> [64, 128)
        #expect(u.reportsBacklog == 1)       // the last read's still_queued
        let p = try #require(s.processes[me]?.ummunotify)  // read() runs in the reader
        #expect(p.reads == 4 && p.eventsRead == 74)
    }

    @Test func registrationsHeldIsTheLastValuePerContext() throws {
        let (t, o) = try load(.ummunotify)
        let reg = try o.program("un_register")
        let unreg = try o.program("un_unregister")
        for held in 1...3 { try reg.testRun([1, UInt64(held), 0x1000, 0x2000, UInt64(held)]) }
        try unreg.testRun([1, 2, 0x1000, 0x2000, 2])
        for held in 1...5 { try reg.testRun([2, UInt64(held), 0x1000, 0x2000, UInt64(held)]) }
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.registers == 8)
        #expect(u.unregisters == 1)
        #expect(u.registrationsHeld == 7)
        #expect(s.processes[me]?.ummunotify?.registrationsHeld == 7)
    }

    @Test func pidFilterCountsOnlyThatProcess() throws {
        let (t, o) = try load(.ummunotify, LoadOptions(filterPID: 4242))
        try notify(o, tgid: 4242)
        try notify(o, tgid: 4343)
        try notify(o, tgid: 4343)
        try o.program("un_read").testRun([1, 1, 0])  // runs as this process: filtered
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.totalInvalidations == 1)
        #expect(u.filtered == 3)
        #expect(u.reads == 0)
        #expect(Array(s.processes.keys) == [4242])

        let (tu, um) = try load(.umem, LoadOptions(filterPID: 4242))
        try fault(um, pgoff: 1, tgid: 4242)
        try fault(um, area: 8, pgoff: 2, tgid: 5555)
        try write(um, pgoff: 1, onDemand: true)  // server != 4242 but the page's client is
        try write(um, area: 8, pgoff: 2, onDemand: true)  // neither: filtered
        let m = try #require(try tu.snapshot().umem)
        #expect(m.faults == 1 && m.pagesOnDemand == 1 && m.serviceLatency.count == 1)
        #expect(m.filtered == 2)
    }

    @Test func processRowsAreBoundedAndOverflowIsCounted() throws {
        let (t, o) = try load(.ummunotify, LoadOptions(mapSizes: ["un_procs": 4, "un_ctxs": 3]))
        for i in 0..<6 { try notify(o, ctx: UInt64(i), tgid: UInt32(5000 + i)) }
        let s = try t.snapshot()
        let u = try #require(s.ummunotify)
        #expect(u.totalInvalidations == 6)       // totals never lose a count
        #expect(u.processOverflow == 2)
        #expect(u.contextOverflow == 3)
        #expect(s.processes.count == 4)
        #expect(u.contexts == 3)
    }

    @Test func faultIsPairedWithTheServersWriteAndTheFaultDone() throws {
        let (t, o) = try load(.umem)
        let t0 = monotonicNs()
        try fault(o, pgoff: 3)
        sleepMs(3)
        try fault(o, pgoff: 3)          // a second fault on the page: the first one starts the clock
        try fault(o, pgoff: 4, wait: false)
        sleepMs(3)
        try write(o, pgoff: 3, onDemand: true)
        try faultDone(o, pgoff: 3)
        let elapsed = monotonicNs() - t0
        try write(o, pgoff: 9, onDemand: false)   // pushed ahead
        try write(o, pgoff: 10, onDemand: true)   // requested, start unknown
        try faultDone(o, pgoff: 4)                // did not wait: served at once, not a stall
        try faultDone(o, pgoff: 3, outcome: 1)    // killed, already paired
        try faultDone(o, pgoff: 12, outcome: 9)   // a number beyond the contract: other

        let s = try t.snapshot()
        let m = try #require(s.umem)
        #expect(m.faults == 3 && m.faultsWaited == 2)
        #expect(m.pagesWritten == 3 && m.pagesOnDemand == 2 && m.pagesPushed == 1)
        #expect(m.serviceLatency.count == 1)
        #expect(m.serviceUnmatched == 1)
        #expect(m.stallLatency.count == 1)
        #expect(m.stallUnmatched == 2)  // the killed one and outcome 9, both without a start
        #expect(m.outcomes == [2, 1, 0, 0, 1])
        // Service: first fault -> write, at least 6 ms and at most the elapsed time.
        #expect(m.serviceLatency.sum >= 6_000_000 && m.serviceLatency.sum <= elapsed)
        // Stall: the second fault (same thread) -> fault_done, at least 3 ms.
        #expect(m.stallLatency.sum >= 3_000_000 && m.stallLatency.sum < m.serviceLatency.sum)
        #expect(m.serviceLatency.slots[Histogram.slot(for: m.serviceLatency.sum)] == 1)
        let p = try #require(s.processes[me]?.umem)
        #expect(p.faults == 3 && p.faultsWaited == 2 && p.pagesOnDemand == 1)
        #expect(p.serviceLatency == m.serviceLatency.since(Histogram()))
        #expect(p.stallLatency.count == 1)
        // The start maps are empty again.
        #expect(try o.map("um_pages").keys(as: PageKey.self).isEmpty)
    }

    @Test func stallStartsAreKeptPerThread() throws {
        let (t, o) = try load(.umem)
        try fault(o, area: 7, pgoff: 1)
        // Another thread's fault_done on the same page does not end this one's stall.
        let other = Thread_run { try? faultDone(o, area: 7, pgoff: 1, outcome: 2) }
        #expect(other)
        try faultDone(o, area: 7, pgoff: 2, outcome: 2)  // another page: no match
        sleepMs(2)
        try faultDone(o, area: 7, pgoff: 1)
        try faultDone(o, area: 7, pgoff: 1)  // already ended: served without a start, ignored
        let m = try #require(try t.snapshot().umem)
        #expect(m.stallLatency.count == 1 && m.stallLatency.sum >= 2_000_000)
        #expect(m.stallUnmatched == 2)
        #expect(m.outcomes == [2, 0, 2, 0, 0])
    }

    @Test func serverReadsHandOffsetsAndReportPending() throws {
        let (t, o) = try load(.umem)
        try fault(o, area: 7, pgoff: 1, tgid: 4242)
        let read = try o.program("um_read")
        try read.testRun([7, 3, 5])
        try read.testRun([7, 1, 2])
        let s = try t.snapshot()
        let m = try #require(s.umem)
        #expect(m.reads == 2 && m.offsetsHanded == 4)
        #expect(m.readBatch.slots[2] == 1 && m.readBatch.slots[1] == 1)
        #expect(m.pendingRequests == 2 && m.areas == 1)
        #expect(s.processes[4242]?.umem?.pendingRequests == 2)
    }

    @Test func faultStartsAreBoundedAndOverflowIsCounted() throws {
        let (t, o) = try load(.umem, LoadOptions(mapSizes: ["um_pages": 4, "um_procs": 1, "um_areas": 2]))
        for pg in 0..<8 { try fault(o, pgoff: UInt64(pg)) }
        try fault(o, pgoff: 0, tgid: 4242)  // second process: no row left
        try fault(o, area: 8, pgoff: 0, wait: false)
        try fault(o, area: 9, pgoff: 0, wait: false)  // third area: no row left
        let m = try #require(try t.snapshot().umem)
        #expect(m.faults == 11)
        #expect(m.pageOverflow == 4)   // pages 4..7 (page 0 again is not new)
        #expect(m.stallOverflow == 0)  // task storage: one start per thread
        #expect(m.processOverflow == 1)
        #expect(m.areaOverflow == 1)
        #expect(try o.map("um_pages").keys(as: PageKey.self).count == 4)
    }

    @Test func maintenanceDropsExitedProcessesAndExpiresStarts() throws {
        let (t, o) = try load(.umem)
        try fault(o, area: 7, pgoff: 1, tgid: 4242)
        try fault(o, area: 8, pgoff: 1, tgid: me)
        t.maxStartAgeNs = 1_000_000
        sleepMs(5)
        // The first call only expires the starts: 4242's rows stay until a
        // snapshot has counted them and a second call still finds it gone.
        #expect(t.maintain(isAlive: { $0 != 4242 }) == 2)
        #expect(try t.snapshot().processes[4242]?.umem?.faults == 1)
        let removed = t.maintain(isAlive: { $0 != 4242 })
        #expect(removed == 2)  // row 4242 and area 7
        let s = try t.snapshot()
        #expect(s.processes[4242] == nil && s.processes[me] != nil)
        #expect(s.umem?.faults == 2)
        #expect(s.umem?.expired == 2)
        try write(o, area: 8, pgoff: 1, onDemand: true)
        #expect(try t.snapshot().umem?.serviceUnmatched == 1)
    }

    @Test func ringBufferCarriesEventsAndCountsDrops() throws {
        let (t, o) = try load(.umem, LoadOptions(events: true, ringBytes: 4096))
        try fault(o, area: 7, pgoff: 3, tgid: 4242)
        try write(o, area: 7, pgoff: 3, onDemand: true)
        var got: [ummu_event] = []
        let stream = try EventStream(objects: [o]) { (e: ummu_event) in got.append(e) }
        #expect(try stream.consume() == 2)
        #expect(got.map(\.type) == [EventKind.umemFault.rawValue, EventKind.umemWrite.rawValue])
        #expect(got[0].tgid == 4242 && got[0].tid == UInt32(ummu_gettid()))
        #expect(cArray(got[0].args, count: 4) == [7, 3, 1, 4242])
        #expect(got[1].tgid == 4242 && got[1].latency_ns > 0)
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
