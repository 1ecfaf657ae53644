import Foundation
import Testing
import UmmuBPF
@testable import UmmuKit

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let schemaPath = repoRoot.appendingPathComponent("docs/ummutrace.schema.json").path

func hist(_ values: [UInt64]) -> Histogram {
    var h = Histogram()
    for v in values { h.record(v) }
    return h
}

/// A snapshot pair with every field non-zero, both sources and two processes.
func sampleInterval() -> Interval {
    var u = UmmunotifyTotals()
    u.invalidations = [5, 1, 0, 2, 0, 0, 1, 0, 1]
    u.invalidatedBytes = [20480, 4096, 0, 8192, 0, 0, 4096, 0, 4096]
    u.reportsQueued = 8; u.reportsMerged = 2; u.reads = 3; u.eventsRead = 11
    u.registers = 100; u.unregisters = 10; u.registrationsHeld = 90; u.reportsBacklog = 1; u.contexts = 2
    u.spanBytes = hist([4096, 4096, 8192, 20480]); u.readBatch = hist([1, 4, 6])
    var m = UmemTotals()
    m.faults = 10; m.faultsWaited = 8; m.outcomes = [8, 0, 0, 1, 0]; m.reads = 4; m.offsetsHanded = 8
    m.pagesWritten = 12; m.pagesOnDemand = 8; m.pagesPushed = 4; m.pendingRequests = 2; m.areas = 1
    m.serviceLatency = hist([150_000, 200_000, 1_000_000]); m.stallLatency = hist([160_000, 210_000])
    m.readBatch = hist([1, 2, 2, 3])
    var pu = ProcessUmmunotify()
    pu.invalidations = [5, 1, 0, 2, 0, 0, 1, 0, 1]; pu.invalidatedBytes = u.invalidatedBytes
    pu.reportsQueued = 8; pu.registrationsHeld = 90
    var pm = ProcessUmem()
    pm.faults = 10; pm.faultsWaited = 8; pm.serviceLatency = m.serviceLatency; pm.stallLatency = m.stallLatency
    let a = Snapshot(monotonicNs: 1_000_000_000, wallNs: 1_795_000_000_000_000_000)
    let b = Snapshot(monotonicNs: 2_000_000_000, wallNs: 1_795_000_001_000_000_000, ummunotify: u, umem: m,
                     processes: [181: ProcessRow(pid: 181, comm: "regcache \"x\"", ummunotify: pu),
                                 182: ProcessRow(pid: 182, comm: "postcopy", umem: pm)],
                     droppedEvents: 3, bpf: [.ummunotify: BPFRunStats(runTimeNs: 500, runCount: 10)])
    return Interval(from: a, to: b)
}

func sampleEvent(_ kind: EventKind) -> ummu_event {
    var e = ummu_event()
    e.ts_ns = 123_456_789
    e.type = kind.rawValue
    e.cpu = 1
    e.tgid = 181
    e.tid = 183
    e.args = (7, 181, 0x7f00_0000_0000, 0x7f00_0000_3000, 3, 2, 1, 9)
    e.latency_ns = 2500
    return e
}

@Suite("Histogram")
struct HistogramTests {
    @Test func slotsMatchTheBPFBucketing() {
        #expect(Histogram.slot(for: 0) == 0)
        #expect(Histogram.slot(for: 1) == 1)
        #expect(Histogram.slot(for: 2) == 2 && Histogram.slot(for: 3) == 2)
        #expect(Histogram.slot(for: 4) == 3 && Histogram.slot(for: 7) == 3)
        #expect(Histogram.slot(for: 1 << 61) == 62)
        #expect(Histogram.slot(for: 1 << 62) == 63 && Histogram.slot(for: .max) == 63)
        for s in 1..<63 {
            #expect(Histogram.slot(for: Histogram.lowerBound(s)) == s)
            #expect(Histogram.slot(for: Histogram.upperBound(s)) == s)
        }
        #expect(Histogram.upperBound(63) == .max)
    }

    @Test func percentilesInterpolateInsideABucket() throws {
        let h = hist(Array(repeating: 1500, count: 100))  // all in [1024, 2047]
        #expect(h.percentile(0.5) == 1536)
        #expect(h.percentile(1) == 2047)
        #expect(h.percentile(0) == 1024)
        // 99 ones and one 1000: p99 is 1 (slot [1, 1]), p100 the top of [512, 1023].
        let g = hist(Array(repeating: 1, count: 99) + [1000])
        #expect(g.percentile(0.99) == 1)
        #expect(g.percentile(1.0) == 1023)
        #expect(try #require(g.percentile(0.995)) == 768)
        #expect(Histogram().percentile(0.5) == nil)
        #expect(hist([0, 0, 0]).percentile(0.99) == 0)
        #expect(hist([1 << 63]).percentile(0.5) == Double(UInt64(1) << 62))
    }

    @Test func countSumAndMean() {
        let h = hist([3, 5, 10])
        #expect(h.count == 3 && h.sum == 18 && h.total == 3)
        #expect(h.mean == 6)
        #expect(h.buckets.map(\.slot) == [2, 3, 4])
        #expect(h.buckets.map(\.min) == [2, 4, 8] && h.buckets.map(\.max) == [3, 7, 15])
    }

    @Test func intervalDeltasAndResets() {
        let a = hist([10, 20])
        var b = a
        b.record(30)
        b.record(1000)
        let d = b.since(a)
        #expect(d.count == 2 && d.sum == 1030)
        #expect(d.slots[Histogram.slot(for: 30)] == 1 && d.slots[Histogram.slot(for: 1000)] == 1)
        #expect(d.slots.reduce(0, +) == 2)
        // A reset source (fewer samples than before) counts from zero.
        #expect(hist([5]).since(a) == hist([5]))
        #expect(a.adding(hist([5])).count == 3)
    }

    @Test func counterDeltasSurviveResets() {
        var a = Snapshot(monotonicNs: 0, wallNs: 0)
        a.processes[9] = ProcessRow(pid: 9, comm: "x", umem: { var p = ProcessUmem(); p.faults = 10; return p }())
        var b = a
        b.monotonicNs = 2_000_000_000
        b.processes[9]?.umem?.faults = 4  // row re-created after pruning
        b.processes[10] = ProcessRow(pid: 10, comm: "y", umem: { var p = ProcessUmem(); p.faults = 6; return p }())
        let i = Interval(from: a, to: b)
        #expect(i.processes.map(\.pid) == [9, 10])
        #expect(i.processes.map { $0.umem?.faults ?? 0 } == [4, 6])
        #expect(i.rate(10) == 5)
    }
}

@Suite("NDJSON against docs/ummutrace.schema.json")
struct SchemaTests {
    let validator: JSONSchemaValidator

    init() throws { validator = try JSONSchemaValidator(path: schemaPath) }

    /// The stock sources (mmu_notifier, userfaultfd) with every field
    /// non-zero: three processes, two subscribers, three causes.
    static func stockInterval() -> Interval {
        var n = MMUNotifierTotals()
        n.invalidations = [6, 2, 0, 1, 0, 1, 2, 0, 0]
        n.invalidatedBytes = [24576, 8192, 0, 4096, 0, 4096, 8192, 0, 0]
        n.byCause = [7, 2, 3]
        n.nonBlocking = 1; n.failed = 1; n.releases = 1; n.young = [4, 2, 9]; n.noSubscriber = 5
        n.walkTruncated = 1; n.unowned = 2; n.processOverflow = 1; n.causeOverflow = 1; n.subscriberOverflow = 1
        n.startLost = 1; n.filtered = 4
        n.startLatency = hist([800, 1200, 50_000]); n.endLatency = hist([300, 400])
        n.spanBytes = hist([4096, 4096, 8192, 2 << 20])
        var f = UserfaultfdTotals()
        f.faults = [5, 2, 1]; f.outcomes = [6, 1, 0, 1]
        f.ops = [5, 1, 0, 2, 0, 0]; f.opBytes = [20480, 4096, 0, 8192, 0, 0]
        f.opsFailed = 1; f.processOverflow = 1; f.startLost = 1; f.filtered = 2; f.waiting = 3
        f.stall = [hist([10_000, 20_000]), hist([5_000]), Histogram()]  // minor: empty, null percentiles
        var pn = ProcessMMUNotifier()
        pn.invalidations = [3, 1, 0, 1, 0, 0, 2, 0, 0]; pn.invalidatedBytes = [12288, 4096, 0, 4096, 0, 0, 8192, 0, 0]
        pn.byCause = [4, 1, 2]; pn.nonBlocking = 1; pn.failed = 1; pn.releases = 1; pn.young = 3
        pn.startLatency = hist([800, 1200]); pn.endLatency = hist([300])
        var pf = ProcessUserfaultfd()
        pf.faults = [5, 2, 0]; pf.outcomes = [6, 1, 0, 0]
        pf.ops = [5, 0, 0, 2, 0, 0]; pf.opBytes = [20480, 0, 0, 8192, 0, 0]
        pf.opsFailed = 1; pf.waiting = 1; pf.stall = hist([10_000, 20_000, 5_000])
        var kvm = SubscriberRow()
        kvm.name = "kvm"; kvm.symbol = "kvm_mmu_notifier_ops"
        kvm.invalidations = pn.invalidations; kvm.invalidatedBytes = pn.invalidatedBytes
        kvm.releases = 1; kvm.young = 3; kvm.callback = 0xffff_ffff_c0a0_2000
        var mni = SubscriberRow()
        mni.name = "amdgpu"; mni.symbol = "amdgpu_hmm_mni_ops"
        mni.invalidations = [1, 0, 0, 0, 0, 0, 0, 0, 0]; mni.invalidatedBytes = [4096, 0, 0, 0, 0, 0, 0, 0, 0]
        let a = Snapshot(monotonicNs: 1_000_000_000, wallNs: 1_795_000_000_000_000_000)
        let b = Snapshot(
            monotonicNs: 2_000_000_000, wallNs: 1_795_000_001_000_000_000, mmuNotifier: n, userfaultfd: f,
            processes: [4001: ProcessRow(pid: 4001, comm: "qemu-kvm", mmuNotifier: pn),
                        4002: ProcessRow(pid: 4002, comm: "uffd \"handler\"", userfaultfd: pf),
                        4003: ProcessRow(pid: 4003, comm: "both", mmuNotifier: pn, userfaultfd: pf)],
            subscribers: [SubscriberKey(ops: 0xffff_ffff_c0a0_1000, owner: 4001, interval: false): kvm,
                          SubscriberKey(ops: 0xffff_ffff_c0b0_1000, owner: 4003, interval: true): mni],
            causes: [CauseKey(owner: 4001, kind: .owner, causePID: 4001, causeComm: "", reason: .unmap):
                        CauseCounts(invalidations: 6, bytes: 24576),
                     CauseKey(owner: 4001, kind: .kernelThread, causePID: 45, causeComm: "kswapd0", reason: .clear):
                        CauseCounts(invalidations: 2, bytes: 8192),
                     CauseKey(owner: 4003, kind: .otherProcess, causePID: 5000, causeComm: "compact \"x\"",
                              reason: .migrate):
                        CauseCounts(invalidations: 2, bytes: 8192)],
            droppedEvents: 1,
            bpf: [.mmuNotifier: BPFRunStats(runTimeNs: 900, runCount: 12),
                  .userfaultfd: BPFRunStats(runTimeNs: 300, runCount: 9)])
        return Interval(from: a, to: b)
    }

    /// Every source at once.
    static func allSourcesInterval() -> Interval {
        var i = sampleInterval()
        let s = stockInterval()
        i.mmuNotifier = s.mmuNotifier
        i.userfaultfd = s.userfaultfd
        i.processes += s.processes
        i.subscribers = s.subscribers
        i.causes = s.causes
        i.bpf.merge(s.bpf) { x, _ in x }
        return i
    }

    func lines() -> [String] {
        var out = [JSONRenderer.interval(sampleInterval(), includeBPFStats: true),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(ummunotify: UmmunotifyTotals()))),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(umem: UmemTotals()))),
                   JSONRenderer.interval(Self.stockInterval(), includeBPFStats: true),
                   JSONRenderer.interval(Self.stockInterval()),
                   JSONRenderer.interval(Self.allSourcesInterval(), includeBPFStats: true),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(mmuNotifier: MMUNotifierTotals()))),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(userfaultfd: UserfaultfdTotals()))),
                   JSONRenderer.drops(endWallNs: 1_795_000_001_000_000_000, dropped: 4, delivered: 100)]
        var buf = OutputBuffer(fd: -1)
        let f = EventFormatter(style: .json)
        for k in EventKind.allCases { f.append(sampleEvent(k), to: &buf) }
        var ret = sampleEvent(.userfaultfdOp)  // a failed ioctl: ret = -EAGAIN as u64
        ret.args.4 = UInt64(bitPattern: -11)
        f.append(ret, to: &buf)
        out += String(decoding: buf.bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        return out
    }

    @Test func everyRecordKindIsValid() throws {
        let all = lines()
        #expect(all.count == 9 + EventKind.allCases.count + 1)
        for l in all {
            #expect(!l.contains("\n"))
            #expect(l.hasPrefix("{\"version\":\(JSONRenderer.version),"))
            let errs = validator.validate(line: l)
            #expect(errs.isEmpty, "\(errs) in \(l.prefix(200))")
        }
    }

    /// Version 3: umem's pairing counters (service_unmatched,
    /// stall_unmatched, expired, overflow.pages/stalls) are gone; version 4
    /// added umem's waiting_faults gauge.
    @Test func everyRecordIsVersion4() {
        #expect(JSONRenderer.version == 4)
        for l in lines() { #expect(l.hasPrefix("{\"version\":4,\"type\":\""), "\(l.prefix(60))") }
        let umem = JSONRenderer.interval(sampleInterval())
        for gone in ["service_unmatched", "stall_unmatched", "expired", "\"stalls\""] {
            #expect(!umem.contains(gone))
        }
        #expect(umem.contains("\"waiting_faults\":"))
    }

    @Test func theValidatorRejectsBrokenRecords() {
        let good = JSONRenderer.interval(sampleInterval())
        #expect(validator.validate(line: good).isEmpty)
        let broken = [
            good.replacingOccurrences(of: "\"version\":4,", with: ""),
            good.replacingOccurrences(of: "\"version\":4", with: "\"version\":3"),
            good.replacingOccurrences(of: "\"waiting_faults\":0,", with: ""),
            good.replacingOccurrences(of: "\"faults\":10", with: "\"faults\":-1"),
            good.replacingOccurrences(of: "\"reports_queued\":8", with: "\"reports_queued\":\"8\""),
            good.replacingOccurrences(of: "\"dropped_events\":3", with: "\"dropped_events\":3,\"surprise\":1"),
            good.replacingOccurrences(of: "\"unit\":\"ns\"", with: "\"unit\":\"s\""),
            "{\"version\":4,\"type\":\"event\",\"event\":\"nope\",\"ts_ns\":1,\"cpu\":0,\"pid\":1,\"tid\":1}",
            "{\"version\":1,\"type\":\"event\",\"event\":\"userfaultfd_op\",\"ts_ns\":1,\"cpu\":0,\"pid\":1,\"tid\":1}",
        ]
        for b in broken {
            #expect(b != good)
            #expect(!validator.validate(line: b).isEmpty, "accepted: \(b)")
        }
    }

    /// `line` with `edit` applied to the object at `path` (keys, or array
    /// indexes as numbers), re-serialized; fails the test when the path's
    /// parent is not there.
    static func edited(_ line: String, _ path: String, _ edit: (inout [String: Any], String) -> Void) throws -> String {
        var reached = false
        func walk(_ v: Any, _ p: ArraySlice<Substring>) -> Any {
            let k = String(p.first!)
            if p.count == 1, var d = v as? [String: Any] {
                edit(&d, k)
                reached = true
                return d
            }
            if var d = v as? [String: Any], let x = d[k] {
                d[k] = walk(x, p.dropFirst())
                return d
            }
            if var a = v as? [Any], let i = Int(k), i < a.count {
                a[i] = walk(a[i], p.dropFirst())
                return a
            }
            return v
        }
        let obj = try JSONSerialization.jsonObject(with: Data(line.utf8))
        let out = walk(obj, path.split(separator: ".")[...])
        #expect(reached, "no object at \(path)")
        return String(decoding: try JSONSerialization.data(withJSONObject: out), as: UTF8.self)
    }

    static func removing(_ line: String, _ path: String) throws -> String {
        try edited(line, path) { d, k in
            #expect(d[k] != nil, "no \(k) to remove in \(path)")
            d[k] = nil
        }
    }

    static func setting(_ line: String, _ path: String, _ v: Any) throws -> String {
        try edited(line, path) { d, k in d[k] = v }
    }

    /// Stock-source records that lack a required field or carry a wrong
    /// value; each must fail, so the schema's new sections are not vacuous.
    func brokenStockRecords() throws -> [String] {
        let good = JSONRenderer.interval(Self.stockInterval(), includeBPFStats: true)
        let empty = JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(mmuNotifier: MMUNotifierTotals())))
        let procs = try #require(try JSONSerialization.jsonObject(with: Data(good.utf8)) as? [String: Any])["processes"]
            as? [[String: Any]]
        let uffdProc = try #require(procs?.firstIndex { $0["userfaultfd"] != nil })
        let mnProc = try #require(procs?.firstIndex { $0["mmu_notifier"] != nil })
        return [
            try Self.removing(good, "userfaultfd.waiting"),
            try Self.removing(good, "processes.\(uffdProc).userfaultfd.waiting"),
            try Self.removing(good, "userfaultfd.ops.poison"),
            try Self.removing(good, "userfaultfd.ops.copy.pages"),
            try Self.removing(good, "userfaultfd.faults.total"),
            try Self.removing(good, "userfaultfd.outcomes.signal"),
            try Self.removing(good, "userfaultfd.stall_ns.minor"),
            try Self.removing(good, "userfaultfd.overflow.processes"),
            try Self.setting(good, "userfaultfd.stall_ns.wp.unit", "s"),
            try Self.setting(good, "processes.\(uffdProc).userfaultfd.faults.huge", 1),
            try Self.removing(good, "mmu_notifier.by_cause"),
            try Self.removing(good, "mmu_notifier.by_cause.kthread"),
            try Self.removing(good, "mmu_notifier.young.test_young"),
            try Self.removing(good, "mmu_notifier.overflow.walk"),
            try Self.removing(good, "mmu_notifier.start_latency_ns"),
            try Self.removing(good, "mmu_notifier.invalidations.migrate"),
            try Self.setting(good, "mmu_notifier.failed", -1),
            try Self.setting(good, "mmu_notifier.overflow.surprise", 1),
            try Self.removing(good, "processes.\(mnProc).mmu_notifier.by_cause"),
            try Self.setting(good, "processes.\(mnProc).mmu_notifier.young", ["test_young": 1]),
            try Self.removing(good, "subscribers.0.symbol"),
            try Self.setting(good, "subscribers.0.kind", "classic"),
            try Self.setting(good, "subscribers.1.pid", "4003"),
            try Self.removing(good, "causes.0.cause_comm"),
            try Self.setting(good, "causes.0.cause", "owner"),
            try Self.setting(good, "causes.1.reason", "munmap"),
            try Self.setting(good, "bpf.userfaultfd.run_count", 1.5),
            try Self.setting(good, "bpf.kvm", ["run_time_ns": 1, "run_count": 1]),
            // subscribers and causes come exactly with mmu_notifier
            try Self.removing(good, "causes"),
            try Self.removing(good, "subscribers"),
            try Self.removing(good, "mmu_notifier"),
            try Self.removing(empty, "subscribers"),
            try Self.setting(JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(userfaultfd: UserfaultfdTotals()))),
                             "causes", [Any]()),
        ]
    }

    @Test func stockRecordsMissingFieldsAreRejected() throws {
        let good = JSONRenderer.interval(Self.stockInterval(), includeBPFStats: true)
        // Re-serializing alone keeps a record valid: the failures below are the edits'.
        let same = try Self.edited(good, "userfaultfd") { _, _ in }
        #expect(validator.validate(line: same).isEmpty)
        let broken = try brokenStockRecords()
        for b in broken { #expect(!validator.validate(line: b).isEmpty, "accepted: \(b)") }
        if let py = try pythonVerdicts([same] + broken) {
            #expect(py.first == "ok", "python rejected the re-serialized record: \(py.first ?? "")")
            for (b, v) in zip(broken, py.dropFirst()) { #expect(v != "ok", "python accepted: \(b)") }
        }
    }

    @Test func intervalCarriesTheIssuesFields() throws {
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(JSONRenderer.interval(sampleInterval()).utf8)) as? [String: Any])
        #expect(obj["start"] as? String == "2026-11-18T11:06:40.000Z")
        #expect(obj["duration_ns"] as? Int == 1_000_000_000)
        let un = try #require(obj["ummunotify"] as? [String: Any])
        let inval = try #require(un["invalidations"] as? [String: Any])
        #expect(inval["total"] as? Int == 10 && inval["protection_page"] as? Int == 2)
        let um = try #require(obj["umem"] as? [String: Any])
        let svc = try #require(um["service_latency_ns"] as? [String: Any])
        #expect(svc["count"] as? Int == 3)
        #expect((svc["p50"] as? NSNumber)?.doubleValue == 229376)  // rank 1.5 of the 2 in [131072, 262144)
        let procs = try #require(obj["processes"] as? [[String: Any]])
        #expect(procs.map { $0["pid"] as? Int } == [181, 182])
        #expect(procs[0]["comm"] as? String == "regcache \"x\"")
        #expect(obj["mmu_notifier"] == nil && obj["userfaultfd"] == nil)
        #expect(obj["subscribers"] == nil && obj["causes"] == nil)
    }

    @Test func intervalCarriesTheStockFields() throws {
        let line = JSONRenderer.interval(Self.stockInterval(), includeBPFStats: true)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let mn = try #require(obj["mmu_notifier"] as? [String: Any])
        #expect((mn["invalidations"] as? [String: Any])?["total"] as? Int == 12)
        #expect(mn["by_cause"] as? [String: Int] == ["self": 7, "other": 2, "kthread": 3])
        #expect(mn["young"] as? [String: Int] == ["clear_flush_young": 4, "clear_young": 2, "test_young": 9])
        #expect(mn["overflow"] as? [String: Int] == ["processes": 1, "causes": 1, "subscribers": 1, "walk": 1])
        let uf = try #require(obj["userfaultfd"] as? [String: Any])
        #expect(uf["faults"] as? [String: Int] == ["total": 8, "missing": 5, "wp": 2, "minor": 1])
        #expect(uf["waiting"] as? Int == 3)
        let ops = try #require(uf["ops"] as? [String: [String: Int]])
        #expect(ops["copy"] == ["count": 5, "bytes": 20480, "pages": 5])
        #expect(Set(ops.keys) == ["copy", "zeropage", "continue", "writeprotect", "move", "poison"])
        let stall = try #require(uf["stall_ns"] as? [String: [String: Any]])
        #expect(stall["minor"]?["p50"] is NSNull)
        let procs = try #require(obj["processes"] as? [[String: Any]])
        #expect(procs.map { $0["pid"] as? Int } == [4001, 4002, 4003])
        #expect(procs.map { $0["mmu_notifier"] != nil } == [true, false, true])
        #expect(procs.map { $0["userfaultfd"] != nil } == [false, true, true])
        let subs = try #require(obj["subscribers"] as? [[String: Any]])
        #expect(subs.map { $0["kind"] as? String } == ["notifier", "interval"])
        #expect(subs.map { $0["name"] as? String } == ["kvm", "amdgpu"])
        let causes = try #require(obj["causes"] as? [[String: Any]])
        #expect(causes.map { $0["cause"] as? String } == ["self", "kthread", "other"])
        #expect(causes.map { $0["reason"] as? String } == ["unmap", "clear", "migrate"])
        #expect(causes[1]["cause_comm"] as? String == "kswapd0")
        let bpf = try #require(obj["bpf"] as? [String: Any])
        #expect(Set(bpf.keys) == ["mmu_notifier", "userfaultfd"])
    }

    /// python3-jsonschema's verdict on each line ("ok" or its first error);
    /// nil when python3 or its jsonschema module is missing.
    func pythonVerdicts(_ lines: [String]) throws -> [String]? {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import jsonschema"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else {
            print("python3 not found; only the built-in validator ran")
            return nil
        }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            print("python3 has no jsonschema module; only the built-in validator ran")
            return nil
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ummu-schema-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("lines.ndjson")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let p = Process()
        let pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.standardOutput = pipe
        p.arguments = ["python3", "-c", """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            v = jsonschema.Draft202012Validator(schema)
            for line in open(sys.argv[2]):
                errs = list(v.iter_errors(json.loads(line)))
                print("bad: " + errs[0].message[:200].replace("\\n", " ") if errs else "ok")
            """, schemaPath, file.path]
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let verdicts = String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(verdicts.count == lines.count)
        return verdicts
    }

    /// Cross-check with python3-jsonschema when present (the self-contained
    /// validator above is what CI relies on).
    @Test func pythonJsonschemaAgrees() throws {
        let all = lines()
        guard let verdicts = try pythonVerdicts(all) else { return }
        for (l, v) in zip(all, verdicts) { #expect(v == "ok", "\(v) in \(l.prefix(200))") }
    }
}

@Suite("Text rendering")
struct TextTests {
    @Test func histogramRowsLikeBiolatency() {
        let h = hist([1, 2, 3, 3, 8, 9, 10, 11, 12, 13])
        let text = TextRenderer.histogram(h, label: "usecs")
        let expected = """
                               usecs : count     distribution
                     1 -> 1          : 1        |******                                  |
                     2 -> 3          : 3        |********************                    |
                     4 -> 7          : 0        |                                        |
                     8 -> 15         : 6        |****************************************|

            """
        #expect(text == expected)
    }

    @Test func nanosecondsShownInMicroseconds() {
        let text = TextRenderer.histogram(hist([1500, 1600, 3000]), label: "usecs (umem service)", divisor: 1000)
        #expect(text.contains("1.024 -> 2.047      : 2"))
        #expect(text.contains("2.048 -> 4.095      : 1"))
    }

    @Test func intervalTextHasRatesHistogramsAndProcesses() {
        let text = TextRenderer(milliseconds: false).render(sampleInterval())
        #expect(text.contains("ummunotify (1.00s): invalidations/s 10.0 (unmap 5.0, clear 1.0, protection_page 2.0, migrate 1.0, other 1.0)"))
        #expect(text.contains("registrations held 90"))
        #expect(text.contains("umem (1.00s): faults/s 10.0 (waited 8.0)"))
        #expect(text.contains("usecs (umem service)"))
        #expect(text.contains("dropped events: 3"))
        #expect(text.contains("    181 regcache \"x\""))
        #expect(text.contains("    182 postcopy"))
        let ms = TextRenderer(milliseconds: true).render(sampleInterval())
        #expect(ms.contains("msecs (umem stall)"))
    }

    @Test func eventLinesInTextAndJSON() {
        var buf = OutputBuffer(fd: -1)
        EventFormatter(style: .text, baseNs: 123_000_000).append(sampleEvent(.umemWrite), to: &buf)
        EventFormatter(style: .json).append(sampleEvent(.ummunotifyNotify), to: &buf)
        let s = String(decoding: buf.bytes, as: UTF8.self)
        #expect(s == "0.000457   1     181     183 umem_write            area=7 pgoff=181 on_demand=139637976727552 latency=2.5us\n"
            + "{\"version\":4,\"type\":\"event\",\"event\":\"ummunotify_notify\",\"ts_ns\":123456789,\"cpu\":1,\"pid\":181,\"tid\":183,"
            + "\"ctx\":7,\"start\":139637976727552,\"end\":139637976739840,\"reason\":3,\"hits\":2,\"queued\":1,\"generation\":9}\n")
    }

    @Test func formatting() {
        #expect(Fmt.fixed(1.25, 1) == "1.3" || Fmt.fixed(1.25, 1) == "1.2")
        #expect(Fmt.fixed(-0.04, 1) == "0.0")
        #expect(Fmt.fixed(12.345, 2) == "12.35" || Fmt.fixed(12.345, 2) == "12.34")
        #expect(Fmt.compact(2.5) == "2.5" && Fmt.compact(1024) == "1024")
        #expect(Fmt.human(1536, binary: true) == "1.5Ki")
        #expect(Fmt.jsonString("a\"b\\\n\u{1}") == "\"a\\\"b\\\\\\n\\u0001\"")
        #expect(Fmt.rfc3339(0) == "1970-01-01T00:00:00.000Z")
    }
}

@Suite("Start-up checks")
struct StartupTests {
    func status(_ capEff: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ummu-status-\(getpid())-\(capEff)").path
        try "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t\(capEff)\nCapBnd:\t000001ffffffffff\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func privilegesNeedSysAdminOrBPFAndPerfmon() throws {
        for ok in ["000001ffffffffff", "0000000000200000", "000000c000000000"] {
            let p = try status(ok)
            defer { unlink(p) }
            #expect(throws: Never.self) { try checkPrivileges(statusPath: p) }
        }
        for bad in ["0000000000000000", "0000008000000000", "0000004000000000"] {
            let p = try status(bad)
            defer { unlink(p) }
            #expect(throws: UmmuError(.privileges, "need root or CAP_BPF+CAP_PERFMON to trace (try sudo)")) {
                try checkPrivileges(statusPath: p)
            }
        }
        #expect(UmmuError(.privileges, "").exitCode == 3)
        #expect(UmmuError(.driverAbsent, "").exitCode == 4)
        #expect(UmmuError(.noBPF, "").exitCode == 5)
    }

    static let noDrivers = access("/sys/module/umem", F_OK) != 0 && access("/sys/module/ummunotify", F_OK) != 0

    @Test(.enabled(if: isRoot, rootReason),
          .enabled(if: noDrivers, "the ummu modules are loaded on this host; the guest e2e test covers absence"))
    func absentTracepointsAreOneClearLine() throws {
        // This host has no ummu modules: attaching must fail with the driver hint.
        #expect(throws: UmmuError(.driverAbsent,
            "umem not loaded (no tracepoint umem:umem_fault; modprobe umem)")) {
            _ = try Tracer(sources: [.umem], required: true)
        }
        #expect(throws: UmmuError(.driverAbsent,
            "umem not loaded (no tracepoint umem:umem_fault; modprobe umem)")) {
            _ = try Tracer(sources: [.umem, .ummunotify], required: true)
        }
    }
}
