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

/// A snapshot pair with every field non-zero, both sides and two processes.
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

    func lines() -> [String] {
        var out = [JSONRenderer.interval(sampleInterval(), includeBPFStats: true),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(ummunotify: UmmunotifyTotals()))),
                   JSONRenderer.interval(Interval(from: Snapshot(), to: Snapshot(umem: UmemTotals()))),
                   JSONRenderer.drops(endWallNs: 1_795_000_001_000_000_000, dropped: 4, delivered: 100)]
        var buf = OutputBuffer(fd: -1)
        let f = EventFormatter(style: .json)
        for k in EventKind.allCases { f.append(sampleEvent(k), to: &buf) }
        out += String(decoding: buf.bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        return out
    }

    @Test func everyRecordKindIsValid() throws {
        let all = lines()
        #expect(all.count == 4 + EventKind.allCases.count)
        for l in all {
            #expect(!l.contains("\n"))
            let errs = validator.validate(line: l)
            #expect(errs.isEmpty, "\(errs) in \(l.prefix(200))")
        }
    }

    @Test func theValidatorRejectsBrokenRecords() {
        let good = JSONRenderer.interval(sampleInterval())
        #expect(validator.validate(line: good).isEmpty)
        let broken = [
            good.replacingOccurrences(of: "\"version\":1,", with: ""),
            good.replacingOccurrences(of: "\"version\":1", with: "\"version\":2"),
            good.replacingOccurrences(of: "\"faults\":10", with: "\"faults\":-1"),
            good.replacingOccurrences(of: "\"reports_queued\":8", with: "\"reports_queued\":\"8\""),
            good.replacingOccurrences(of: "\"dropped_events\":3", with: "\"dropped_events\":3,\"surprise\":1"),
            good.replacingOccurrences(of: "\"unit\":\"ns\"", with: "\"unit\":\"s\""),
            "{\"version\":1,\"type\":\"event\",\"event\":\"nope\",\"ts_ns\":1,\"cpu\":0,\"pid\":1,\"tid\":1}",
        ]
        for b in broken {
            #expect(b != good)
            #expect(!validator.validate(line: b).isEmpty, "accepted: \(b)")
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
    }

    /// Cross-check with python3-jsonschema when present (the self-contained
    /// validator above is what CI relies on).
    @Test func pythonJsonschemaAgrees() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import jsonschema"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else {
            print("pythonJsonschemaAgrees: python3 not found; only the built-in validator ran")
            return
        }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            print("pythonJsonschemaAgrees: python3 has no jsonschema module; only the built-in validator ran")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ummu-schema-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("lines.ndjson")
        try lines().joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            v = jsonschema.Draft202012Validator(schema)
            bad = 0
            for line in open(sys.argv[2]):
                errs = list(v.iter_errors(json.loads(line)))
                bad += bool(errs)
                for e in errs: print(e.message[:200])
            sys.exit(1 if bad else 0)
            """, schemaPath, file.path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
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
            + "{\"version\":1,\"type\":\"event\",\"event\":\"ummunotify_notify\",\"ts_ns\":123456789,\"cpu\":1,\"pid\":181,\"tid\":183,"
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
            "tracepoint umem:umem_fault not found: is umem.ko loaded? (modprobe umem)")) {
            _ = try Tracer(sides: [.umem], required: true)
        }
        #expect(throws: UmmuError(.driverAbsent,
            "no ummu tracepoints found: are ummunotify.ko and umem.ko loaded? (modprobe ummunotify umem)")) {
            _ = try Tracer()
        }
    }
}
