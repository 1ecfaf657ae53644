// PrometheusTests.swift - the text encoder, the log2 -> Prometheus
// histogram conversion, the top-N bookkeeping and the atomic file writer.

import Testing
@testable import UmmuKit

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed (with its files) by `remove()`.
struct PromTempDir {
    let path: String
    init() {
        var tmpl = Array("/tmp/ummu-prom-test-XXXXXX".utf8CString)
        let p = tmpl.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }
    func remove() {
        if let d = opendir(path) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(d)
        }
        rmdir(path)
    }
}

@Suite("PrometheusEncoder")
struct PrometheusEncoderTests {
    @Test func helpTypeAndSamples() throws {
        let text = try PrometheusText.encode([
            PrometheusFamily(name: "a_total", help: "Line one\nback\\slash", type: .counter, samples: [
                PrometheusSample(labels: [("x", "q\"uote\\n\nl")], value: 3),
                PrometheusSample(value: 0.25),
            ]),
            PrometheusFamily(name: "b", help: "Empty gauge.", type: .gauge),
        ])
        #expect(text == """
            # HELP a_total Line one\\nback\\\\slash
            # TYPE a_total counter
            a_total{x="q\\"uote\\\\n\\nl"} 3
            a_total 0.25
            # HELP b Empty gauge.
            # TYPE b gauge

            """)
    }

    @Test func values() {
        #expect(PrometheusText.formatValue(0) == "0")
        #expect(PrometheusText.formatValue(42) == "42")
        #expect(PrometheusText.formatValue(-7) == "-7")
        #expect(PrometheusText.formatValue(1.5e-9) == "1.5e-09")
        #expect(PrometheusText.formatValue(.infinity) == "+Inf")
        #expect(PrometheusText.formatValue(-.infinity) == "-Inf")
        #expect(PrometheusText.formatValue(.nan) == "NaN")
        #expect(PrometheusText.formatValue(1e300) == "1e+300")
    }

    @Test func controlCharactersInLabelValues() {
        #expect(PrometheusText.escapeLabelValue("a\tb\u{1}") == "a\u{FFFD}b\u{FFFD}")
    }

    @Test func rejectsBadNamesAndDuplicates() {
        #expect(throws: PrometheusTextError.invalidMetricName("1abc")) {
            try PrometheusText.encode([PrometheusFamily(name: "1abc", help: "", type: .gauge)])
        }
        #expect(throws: PrometheusTextError.invalidLabelName("__x")) {
            try PrometheusText.encode([PrometheusFamily(name: "ok", help: "", type: .gauge,
                samples: [PrometheusSample(labels: [("__x", "1")], value: 1)])])
        }
        #expect(throws: PrometheusTextError.duplicateFamily("ok")) {
            try PrometheusText.encode([PrometheusFamily(name: "ok", help: "", type: .gauge),
                                       PrometheusFamily(name: "ok", help: "", type: .gauge)])
        }
        #expect(PrometheusText.isValidMetricName("ummu:rate_5m:sum"))
        #expect(!PrometheusText.isValidLabelName("a-b"))
    }

    @Test func log2HistogramBecomesCumulativeSeconds() {
        // 0 ns once, 1 ns twice, 3 ns (slot 2) once, 2^40 ns (slot 41) once.
        var h = Histogram()
        h.record(0)
        h.record(1, times: 2)
        h.record(3)
        h.record(1 << 40)
        #expect(h.slots[41] == 1)
        let s = h.prometheusSamples(divisor: 1e9, maxSlot: 3, labels: [("side", "x")])
        #expect(s.map(\.suffix) == ["_bucket", "_bucket", "_bucket", "_bucket", "_bucket", "_sum", "_count"])
        #expect(s.map { $0.labels.last!.value } == ["0", "1e-09", "3e-09", "7e-09", "+Inf", "x", "x"])
        #expect(s.map(\.value) == [1, 3, 4, 4, 5, Double(h.sum) / 1e9, 5])
        #expect(s[0].labels.first!.name == "side")
        // A value exactly on a bound lands in the next bucket: 1024 ns is
        // not <= 1.023e-06 s.
        var g = Histogram()
        g.record(1023)
        g.record(1024)
        let b = g.prometheusSamples(divisor: 1e9, maxSlot: 11)
        #expect(b[10].labels[0].value == "1.023e-06" && b[10].value == 1)
        #expect(b[11].labels[0].value == "2.047e-06" && b[11].value == 2)
    }
}

@Suite("PrometheusMetricsState")
struct PrometheusMetricsStateTests {
    static func row(_ pid: UInt32, _ comm: String, unmap: UInt64, faults: UInt64 = 0) -> ProcessRow {
        var u = ProcessUmmunotify()
        u.invalidations[0] = unmap
        u.invalidatedBytes[0] = unmap * 4096
        var m = ProcessUmem()
        m.faults = faults
        m.faultsWaited = faults / 2
        return ProcessRow(pid: pid, comm: comm, ummunotify: u, umem: m)
    }

    static func holder(_ pid: UInt32, _ comm: String, _ held: UInt64) -> ProcessRow {
        var u = ProcessUmmunotify()
        u.registrationsHeld = held
        return ProcessRow(pid: pid, comm: comm, ummunotify: u)
    }

    /// An interval whose totals are the rows' sums plus `lost` unmap
    /// invalidations of processes without a row.
    static func interval(_ rows: [ProcessRow], lost: UInt64 = 0, held: UInt64 = 0) -> Interval {
        var un = UmmunotifyTotals()
        let unmap = rows.reduce(lost) { $0 + ($1.ummunotify?.invalidations[0] ?? 0) }
        un.invalidations[0] = unmap
        un.invalidatedBytes[0] = unmap * 4096
        un.registrationsHeld = held
        var um = UmemTotals()
        um.faults = rows.reduce(0) { $0 + ($1.umem?.faults ?? 0) }
        um.faultsWaited = rows.reduce(0) { $0 + ($1.umem?.faultsWaited ?? 0) }
        var iv = Interval(from: Snapshot(), to: Snapshot(ummunotify: un, umem: um))
        iv.processes = rows
        return iv
    }

    static func value(_ fams: [PrometheusFamily], _ name: String, _ labels: [String: String]) -> Double? {
        guard let f = fams.first(where: { $0.name == name }) else { return nil }
        return f.samples.first { s in
            s.suffix == "" && labels.allSatisfy { k, v in s.labels.contains { $0.name == k && $0.value == v } }
        }?.value
    }

    @Test func topNPlusOtherKeepsCountersMonotonic() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 2, evictAfterIdleIntervals: 2))
        // Interval 1: a (5) and b (3) get slots, c (1) and 2 lost rows go to other.
        st.ingest(Self.interval([Self.row(1, "a", unmap: 5), Self.row(2, "b", unmap: 3), Self.row(3, "c", unmap: 1)], lost: 2))
        var f = st.families(now: 1)
        let inv = UmmuMetricName.invalidations
        #expect(Self.value(f, inv, ["pid": "1", "reason": "unmap"]) == 5)
        #expect(Self.value(f, inv, ["pid": "2"]) == 3)
        #expect(Self.value(f, inv, ["pid": "3"]) == nil)
        #expect(Self.value(f, inv, ["pid": "other", "comm": "other"]) == 3)
        #expect(Self.value(f, UmmuMetricName.invalidatedBytes, ["pid": "other"]) == 12288)
        #expect(st.trackedCount == 2)

        // Interval 2: c is busy, but nobody has been idle for 2 intervals yet.
        st.ingest(Self.interval([Self.row(1, "a", unmap: 1), Self.row(3, "c", unmap: 50)]))
        f = st.families(now: 2)
        #expect(Self.value(f, inv, ["pid": "3"]) == nil)
        #expect(Self.value(f, inv, ["pid": "other"]) == 53)
        // Interval 3: b idle since interval 1 (2 intervals): c takes its slot,
        // starting at this interval's delta; other does not go down.
        st.ingest(Self.interval([Self.row(1, "a", unmap: 1), Self.row(3, "c", unmap: 7)]))
        f = st.families(now: 3)
        #expect(Self.value(f, inv, ["pid": "2"]) == nil)
        #expect(Self.value(f, inv, ["pid": "3", "comm": "c"]) == 7)
        #expect(Self.value(f, inv, ["pid": "1"]) == 7)
        #expect(Self.value(f, inv, ["pid": "other"]) == 53)
        #expect(Self.value(f, UmmuMetricName.trackedProcesses, [:]) == 2)
    }

    @Test func topZeroPutsEverythingInOther() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 0))
        st.ingest(Self.interval([Self.row(1, "a", unmap: 5, faults: 4), Self.row(2, "b", unmap: 3, faults: 2)]))
        let f = st.families(now: 1)
        #expect(Self.value(f, UmmuMetricName.invalidations, ["pid": "other"]) == 8)
        #expect(Self.value(f, UmmuMetricName.faults, ["pid": "other", "waited": "true"]) == 3)
        #expect(Self.value(f, UmmuMetricName.faults, ["pid": "other", "waited": "false"]) == 3)
        #expect(f.first { $0.name == UmmuMetricName.invalidations }!.samples.count == 1)
    }

    @Test func registrationsGaugeIsTopNPlusOther() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 1))
        // 13 held in rows, 2 more by processes the maps had no room for.
        st.ingest(Self.interval([Self.holder(7, "x", 3), Self.holder(8, "y", 9), Self.holder(9, "z", 1)], held: 15))
        let f = st.families(now: 1)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "8"]) == 9)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "other"]) == 6)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "7"]) == nil)
    }

    /// The registrations gauge follows the tracked processes: a holder
    /// keeps its series while a bigger one comes and goes, instead of the
    /// series following the ranking at every write.
    @Test func registrationsSeriesDoNotChurnWithTheRanking() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 1))
        st.ingest(Self.interval([Self.holder(7, "x", 9), Self.holder(8, "y", 3)], held: 12))
        #expect(Self.value(st.families(now: 1), UmmuMetricName.registrations, ["pid": "7"]) == 9)
        // y now holds more than x, for one interval, then less again.
        st.ingest(Self.interval([Self.holder(7, "x", 9), Self.holder(8, "y", 20)], held: 29))
        var f = st.families(now: 2)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "7"]) == 9)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "8"]) == nil)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "other"]) == 20)
        st.ingest(Self.interval([Self.holder(7, "x", 9), Self.holder(8, "y", 3)], held: 12))
        f = st.families(now: 3)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "7"]) == 9)
        #expect(Self.value(f, UmmuMetricName.registrations, ["pid": "other"]) == 3)
    }

    /// --metrics-without-pid: a series per comm, no pid label anywhere.
    @Test func withoutPidLabelsProcessesOfOneNameShareASeries() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 2, pidLabel: false))
        st.ingest(Self.interval([Self.row(101, "worker", unmap: 5), Self.row(102, "worker", unmap: 3),
                                 Self.row(103, "db", unmap: 1), Self.row(104, "cron", unmap: 1)]))
        // A worker restarted under a new pid continues the series.
        st.ingest(Self.interval([Self.row(205, "worker", unmap: 2)]))
        let f = st.families(now: 2)
        #expect(Self.value(f, UmmuMetricName.invalidations, ["comm": "worker", "reason": "unmap"]) == 10)
        #expect(Self.value(f, UmmuMetricName.invalidations, ["comm": "db"]) == 1)
        #expect(Self.value(f, UmmuMetricName.invalidations, ["comm": "other"]) == 1)
        let labelled = f.flatMap(\.samples).filter { $0.labels.contains { $0.name == "pid" } }
        #expect(labelled.isEmpty, "\(labelled.prefix(2))")
        #expect(Self.value(f, UmmuMetricName.trackedProcesses, [:]) == 2)
    }

    /// A process may call itself "other": it must not write the aggregate's
    /// labels (a duplicate series, which node_exporter drops silently).
    @Test func aProcessNamedOtherIsNotTheAggregate() throws {
        for pidLabel in [true, false] {
            var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 1, pidLabel: pidLabel))
            st.ingest(Self.interval([Self.row(7, "other", unmap: 5), Self.row(8, "b", unmap: 1)]))
            let text = try st.render(now: 1)
            let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            let series = lines.map { $0.split(separator: " ").dropLast().joined(separator: " ") }
            #expect(Set(series).count == series.count, "duplicate series: pidLabel \(pidLabel)")
            let inv = UmmuMetricName.invalidations
            let f = st.families(now: 1)
            var aggregate = ["comm": "other", "reason": "unmap"]
            if pidLabel { aggregate["pid"] = "other" }
            #expect(Self.value(f, inv, aggregate) == 1)
        }
    }

    @Test func sidesNotLoadedWriteNoFamilies() throws {
        var st = UmmuMetricsState()
        st.ingest(Interval(from: Snapshot(), to: Snapshot()))
        let names = st.families(now: 5).map(\.name)
        #expect(!names.contains(UmmuMetricName.invalidations))
        #expect(!names.contains(UmmuMetricName.faults))
        #expect(names.contains(UmmuMetricName.lastWrite))
        #expect(try st.render(now: 5).hasSuffix("ummu_exporter_last_write_timestamp_seconds 5\n"))
    }

    @Test func everyCatalogueFamilyIsWritten() throws {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(bpfStats: true))
        st.ingest(PrometheusSynthetic.interval(round: 1))
        let fams = st.families(now: 1)
        #expect(fams.map(\.name) == UmmuMetricName.all)
        for f in fams {
            #expect(!f.help.isEmpty)
            #expect(!f.samples.isEmpty, "family \(f.name) has no samples")
            switch f.type {
            case .counter: #expect(f.name.hasSuffix("_total"))
            case .gauge, .histogram: #expect(!f.name.hasSuffix("_total"))
            }
        }
    }
}

/// The catalogue of docs/metrics.md ("Families" table) against the code.
@Suite("PrometheusCatalogue")
struct PrometheusCatalogueTests {
    struct DocRow: Equatable {
        var name: String
        var type: String
        var labels: Set<String>
        var help: String
    }

    /// `s` without leading and trailing `chars` (no Foundation here).
    static func trim(_ s: Substring, _ chars: Set<Character> = [" "]) -> String {
        String(s.drop { chars.contains($0) }.reversed().drop { chars.contains($0) }.reversed())
    }

    /// Rows `| `name` | type | labels | unit | HELP |` of docs/metrics.md.
    static func docRows() throws -> [DocRow] {
        let file = "\(#filePath)"
        guard let cut = file.firstRange(of: "/Tests/UmmuKitTests/") else {
            Issue.record("cannot find the package root from \(file)")
            return []
        }
        let text = try promReadFile(String(file[..<cut.lowerBound]) + "/docs/metrics.md")
        var rows: [DocRow] = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `ummu_") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { trim($0) }
            // "", name, type, labels, unit, help, ""
            guard cells.count == 7 else {
                Issue.record("docs/metrics.md: malformed row \(line)")
                continue
            }
            rows.append(DocRow(name: trim(Substring(cells[1]), [" ", "`"]), type: cells[2],
                               labels: Set(cells[3].split(separator: ",").map { trim($0) }.filter { !$0.isEmpty }),
                               help: cells[5]))
        }
        return rows
    }

    /// Every family of the synthetic workload (every catalogue family has samples).
    static func families() -> [PrometheusFamily] {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 3))
        st.ingest(PrometheusSynthetic.interval(round: 1))
        return st.families(now: 1)
    }

    @Test func docsListTheCatalogueInOrder() throws {
        #expect(try Self.docRows().map(\.name) == UmmuMetricName.all)
    }

    @Test func docsTypeLabelsAndHelpMatchTheFamilies() throws {
        let docs = Dictionary(try Self.docRows().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for f in Self.families() {
            guard let d = docs[f.name] else {
                Issue.record("family \(f.name) is not in docs/metrics.md")
                continue
            }
            #expect(d.type == "\(f.type)", "\(f.name): docs type \(d.type), code \(f.type)")
            #expect(d.help == f.help, "\(f.name): HELP differs:\n docs: \(d.help)\n code: \(f.help)")
            let labels = Set(f.samples.flatMap { $0.labels.map { $0.name } })
            #expect(d.labels == labels, "\(f.name): docs labels \(d.labels.sorted()), written \(labels.sorted())")
        }
    }
}

@Suite("PrometheusStockFamilies")
struct PrometheusStockFamiliesTests {
    typealias T = PrometheusMetricsStateTests

    static func samples(_ fams: [PrometheusFamily], _ name: String, suffix: String = "") -> [PrometheusSample] {
        fams.first { $0.name == name }?.samples.filter { $0.suffix == suffix } ?? []
    }

    static func pids(_ fams: [PrometheusFamily], _ name: String) -> Set<String> {
        Set(samples(fams, name).compactMap { s in s.labels.first { $0.name == "pid" }?.value })
    }

    @Test func perProcessFamiliesShareTheTopNWithOther() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 3))
        for r in 1...3 { st.ingest(PrometheusSynthetic.interval(round: r)) }
        let f = st.families(now: 3)
        // The same three processes as the driver families, plus other.
        let want: Set<String> = ["4103", "4104", "4105", "other"]
        #expect(Self.pids(f, UmmuMetricName.invalidations) == want)
        #expect(Self.pids(f, UmmuMetricName.mnInvalidations) == want)
        #expect(Self.pids(f, UmmuMetricName.mnInvalidatedBytes) == want)
        #expect(Self.pids(f, UmmuMetricName.mnCauses) == want)
        #expect(Self.pids(f, UmmuMetricName.ufFaults) == want)
        // Per process at most 9 reasons, 3 causes, 3 kinds.
        #expect(Self.samples(f, UmmuMetricName.mnInvalidations).count <= 9 * 4)
        #expect(Self.samples(f, UmmuMetricName.mnCauses).count <= 3 * 4)
        #expect(Self.samples(f, UmmuMetricName.ufFaults).count <= 3 * 4)
        // sum over the series == the totals: 3 rounds of (5 processes x 10k + 2 lost).
        let all = Self.samples(f, UmmuMetricName.mnInvalidations).reduce(0) { $0 + $1.value }
        #expect(all == 3 * (10 * 15 + 2))
        let faults = Self.samples(f, UmmuMetricName.ufFaults).reduce(0) { $0 + $1.value }
        #expect(faults == 3 * 12 * 15)
    }

    @Test func subscriberSeriesAreByNameWithoutPid() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 3))
        st.ingest(PrometheusSynthetic.interval(round: 1))
        let subs = Self.samples(st.families(now: 1), UmmuMetricName.mnSubscriberInvalidations)
        #expect(subs.allSatisfy { $0.labels.map { $0.name } == ["subscriber", "reason"] })
        // Two ummunotify subscriptions (pids 4103, 4105) make one series per reason.
        #expect(Set(subs.map { $0.labels[0].value }) == ["amdgpu", "kvm", "ummunotify"])
        let unmaps = subs.first { $0.labels[0].value == "ummunotify" && $0.labels[1].value == "unmap" }?.value
        #expect(unmaps == 48)
        // Reasons without invalidations write no series.
        #expect(!subs.contains { $0.labels[1].value == "soft_dirty" })
    }

    @Test func histogramsAreBySideAndKind() {
        var st = UmmuMetricsState()
        st.ingest(PrometheusSynthetic.interval(round: 1))
        let f = st.families(now: 1)
        let cb = Self.samples(f, UmmuMetricName.mnCallbacks, suffix: "_count")
        // By side, then by process: 4105's own start-side callbacks; the
        // rest of the totals, and the end side nobody else has, in other.
        #expect(cb.map { $0.labels.map { $0.value } }
            == [["start", "4105", "rdma-agent"], ["start", "other", "other"], ["end", "other", "other"]])
        #expect(cb.map(\.value) == [30, 70, 100])
        // Fixed bucket set: slots 0..36 and +Inf, per side and process.
        #expect(Self.samples(f, UmmuMetricName.mnCallbacks, suffix: "_bucket").count == 3 * 38)
        // Per subscriber whose callback is timed, by name, no pid.
        let sub = Self.samples(f, UmmuMetricName.mnSubscriberCallbacks, suffix: "_count")
        #expect(sub.map { $0.labels.map { $0.name + "=" + $0.value } } == [["subscriber=gru"], ["subscriber=kvm"]])
        #expect(sub.map(\.value) == [40, 60])
        #expect(Self.samples(f, UmmuMetricName.mnSubscriberCallbacks, suffix: "_bucket").count == 2 * 38)
        let stall = Self.samples(f, UmmuMetricName.ufStall, suffix: "_count")
        #expect(stall.map { $0.labels[0].value } == ["missing", "wp", "minor"])
        let sum = Self.samples(f, UmmuMetricName.ufStall, suffix: "_sum")
        let ns: UInt64 = 98 * 40_000 + 2 * 30_000_000
        #expect(sum[0].value == Double(ns) / 1e9)
    }

    @Test func stockGaugesAndCountersWithoutActivity() {
        // Both stock sources loaded, nothing happened: every label value of
        // the fixed sets is written (0), per-process families only for other.
        var st = UmmuMetricsState()
        var iv = Interval(from: Snapshot(), to: Snapshot(mmuNotifier: MMUNotifierTotals(), userfaultfd: UserfaultfdTotals()))
        iv.processes = []
        st.ingest(iv)
        let f = st.families(now: 1)
        #expect(Self.samples(f, UmmuMetricName.ufOps).count == UffdOp.count)
        #expect(Self.samples(f, UmmuMetricName.ufResolvedBytes).count == UffdOp.count)
        #expect(Self.samples(f, UmmuMetricName.ufOutcomes).count == UffdOutcome.count)
        #expect(Self.samples(f, UmmuMetricName.mnYoung).count == YoungKind.count)
        #expect(Self.samples(f, UmmuMetricName.ufWaiting).map(\.value) == [0])
        #expect(Self.samples(f, UmmuMetricName.ufFaults).map { $0.labels.map { $0.value } }
            == [["missing", "other", "other"], ["wp", "other", "other"], ["minor", "other", "other"]])
        #expect(Self.samples(f, UmmuMetricName.mnInvalidations).isEmpty)
        #expect(!f.contains { $0.name == UmmuMetricName.invalidations })
    }

    /// A process seen only by the stock sources (a KVM guest's QEMU, a
    /// post-copy destination) gets its own series like a driver user, and
    /// keeps it while only the stock sources see it busy.
    @Test func stockOnlyProcessIsAdmittedToTheTopN() {
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 1, evictAfterIdleIntervals: 2))
        st.ingest(PrometheusSynthetic.stuckInterval(round: 1))
        var f = st.families(now: 1)
        // One slot: the busier of the two (24 invalidations against 4 faults).
        // (other has no MMU-notifier invalidations: no series for it.)
        #expect(Self.pids(f, UmmuMetricName.mnInvalidations) == ["5201"])
        #expect(Self.pids(f, UmmuMetricName.ufFaults) == ["other"])
        // qemu-guest stays busy (MMU-notifier only): qemu-dest, idle
        // after round 1, never takes its slot.
        for r in 2...4 { st.ingest(PrometheusSynthetic.stuckInterval(round: r)) }
        f = st.families(now: 4)
        #expect(Self.pids(f, UmmuMetricName.mnInvalidations) == ["5201"])
        let unmaps: Double? = Self.samples(f, UmmuMetricName.mnInvalidations).first { $0.labels[1].value == "5201" }?.value
        #expect(unmaps == 80)  // 4 rounds x 20
        // With two slots both are tracked.
        st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 2))
        st.ingest(PrometheusSynthetic.stuckInterval(round: 1))
        f = st.families(now: 1)
        #expect(Self.pids(f, UmmuMetricName.ufFaults) == ["5202", "other"])
    }

    /// Two newcomers and one slot freed by a long-idle process: the busier
    /// newcomer gets it. A process admitted in an interval used to count as
    /// idle until credited, so the next, quieter candidate evicted it.
    @Test func busiestNewcomerKeepsAFreedSlot() {
        typealias T = PrometheusMetricsStateTests
        var st = UmmuMetricsState(config: UmmuMetricsConfig(topN: 1))  // evict after 10 idle intervals
        st.ingest(T.interval([T.row(1, "old", unmap: 5)]))
        for _ in 2...11 { st.ingest(T.interval([])) }
        st.ingest(T.interval([T.row(2, "busy", unmap: 50), T.row(3, "quiet", unmap: 5)]))
        let f = st.families(now: 12)
        #expect(T.value(f, UmmuMetricName.invalidations, ["pid": "2"]) == 50)
        #expect(T.value(f, UmmuMetricName.invalidations, ["pid": "3"]) == nil)
    }
}

@Suite("PrometheusFileWriter")
struct PrometheusFileWriterTests {
    @Test func writesAndReplaces() throws {
        let d = PromTempDir()
        defer { d.remove() }
        let w = try MetricsFileWriter(path: d.path + "/ummu.prom")
        #expect(w.temporaryPath == d.path + "/.ummu.prom.tmp")
        try w.write("a 1\n")
        try w.write("a 2\n")
        #expect(try promReadFile(d.path + "/ummu.prom") == "a 2\n")
        var st = stat()
        #expect(lstat(w.temporaryPath, &st) != 0, "temporary file left behind")
        #expect(stat(d.path + "/ummu.prom", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o644)
    }

    @Test func missingDirectoryIsAClearError() {
        #expect(throws: MetricsFileError.directoryMissing("/nonexistent-ummu-dir/sub")) {
            try MetricsFileWriter(path: "/nonexistent-ummu-dir/sub/ummu.prom")
        }
        let e = MetricsFileError.directoryMissing("/x")
        #expect(e.description.contains("does not exist"))
    }

    @Test func fileAsDirectoryIsAClearError() throws {
        let d = PromTempDir()
        defer { d.remove() }
        let fd = open(d.path + "/plain", O_WRONLY | O_CREAT, 0o644)
        close(fd)
        #expect(throws: MetricsFileError.notADirectory(d.path + "/plain")) {
            try MetricsFileWriter(path: d.path + "/plain/ummu.prom")
        }
        #expect(throws: MetricsFileError.invalidPath(d.path + "/")) {
            try MetricsFileWriter(path: d.path + "/")
        }
    }

    @Test func refusesSymlinkAtTemporaryPath() throws {
        let d = PromTempDir()
        defer { d.remove() }
        let victim = d.path + "/victim"
        let fd = open(victim, O_WRONLY | O_CREAT, 0o600)
        #expect(fd >= 0)
        _ = "secret\n".withCString { Glibc.write(fd, $0, 7) }
        close(fd)
        let w = try MetricsFileWriter(path: d.path + "/ummu.prom")
        #expect(symlink(victim, w.temporaryPath) == 0)
        #expect(throws: MetricsFileError.symlinkAtTemporaryPath(w.temporaryPath)) {
            try w.write("a 1\n")
        }
        #expect(try promReadFile(victim) == "secret\n")
        var st = stat()
        #expect(lstat(w.temporaryPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK, "symlink must be left alone")
        #expect(stat(w.path, &st) != 0, "no metrics file may appear")
        // A dangling symlink is refused the same way.
        unlink(w.temporaryPath)
        #expect(symlink(d.path + "/nowhere", w.temporaryPath) == 0)
        #expect(throws: MetricsFileError.symlinkAtTemporaryPath(w.temporaryPath)) {
            try w.write("a 1\n")
        }
        #expect(stat(d.path + "/nowhere", &st) != 0, "symlink target must not be created")
    }

    @Test func staleTemporaryFileIsReplaced() throws {
        let d = PromTempDir()
        defer { d.remove() }
        let w = try MetricsFileWriter(path: d.path + "/ummu.prom")
        let fd = open(w.temporaryPath, O_WRONLY | O_CREAT, 0o600)
        close(fd)
        try w.write("a 3\n")
        #expect(try promReadFile(w.path) == "a 3\n")
    }

    /// Unwritable directory: as root, checked in a child that drops to
    /// uid/gid 65534 (root itself may write anywhere).
    @Test func unwritableDirectoryIsAClearError() throws {
        let d = PromTempDir()
        defer { d.remove() }
        #expect(chmod(d.path, 0o555) == 0)
        defer { chmod(d.path, 0o700) }
        let path = d.path + "/ummu.prom"
        if geteuid() != 0 {
            #expect(throws: MetricsFileError.directoryNotWritable(d.path, errno: EACCES)) {
                try MetricsFileWriter(path: path)
            }
            return
        }
        // The child needs to reach the directory: /tmp/x is 0555 after chmod
        // and /tmp is world-searchable.
        let pid = fork()
        if pid == 0 {
            alarm(10)
            guard setgroups(0, nil) == 0, setgid(65534) == 0,
                  setuid(65534) == 0 else { _exit(3) }
            do {
                _ = try MetricsFileWriter(path: path)
                _exit(1)
            } catch MetricsFileError.directoryNotWritable(let dir, errno: EACCES) where dir == d.path {
                _exit(0)
            } catch {
                _exit(2)
            }
        }
        #expect(pid > 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        // exited normally with 0: the expected error in the expected shape.
        #expect(status == 0, "child status \(status): 1 = no error, 2 = other error, 3 = setuid failed")
        // And a write attempt by the unprivileged writer fails the same way
        // (checked through the error mapping for EROFS/EACCES at create).
    }

    /// A reader polling while the writer rewrites many times sees one whole
    /// version each time, never a mix or a truncated file.
    @Test func readerNeverSeesAPartialFile() async throws {
        let d = PromTempDir()
        defer { d.remove() }
        let path = d.path + "/ummu.prom"
        let w = try MetricsFileWriter(path: path)
        // Two versions of very different sizes (small, ~600 KB), each with
        // its own last line.
        let small = "# small\nx 1\nend_small 1\n"
        var big = "# big\n"
        for i in 0..<20000 { big += "y{i=\"\(i)\"} \(i)\n" }
        big += "end_big 1\n"
        try w.write(small)
        let bigCopy = big
        let writes = 150
        async let writer: Int = Task.detached {
            for i in 0..<writes { try w.write(i % 2 == 0 ? bigCopy : small) }
            return writes
        }.value
        async let reader: (good: Int, bad: Int) = Task.detached {
            var good = 0, bad = 0
            for _ in 0..<400 {
                let s = try promReadFile(path)
                if s == small || s == bigCopy { good += 1 } else { bad += 1 }
            }
            return (good, bad)
        }.value
        let (n, r) = try await (writer, reader)
        #expect(n == writes)
        #expect(r.bad == 0)
        #expect(r.good == 400)
    }
}

@Suite("BPF statistics in the metrics file")
struct MetricsBPFStatsTests {
    /// Without --bpf-stats the run-time families are absent: a zero would
    /// claim the programs cost nothing.
    @Test func absentUnlessAsked() throws {
        var off = UmmuMetricsState()
        off.ingest(sampleInterval())
        let text = try off.render(now: 1_795_000_001)
        #expect(!text.contains("ummu_bpf_run_"))
        var on = UmmuMetricsState(config: UmmuMetricsConfig(bpfStats: true))
        on.ingest(sampleInterval())
        let withStats = try on.render(now: 1_795_000_001)
        #expect(withStats.contains("ummu_bpf_run_time_seconds_total{prog=\"ummunotify\"} 5e-07"))
        #expect(withStats.contains("ummu_bpf_run_count_total{prog=\"ummunotify\"} 10"))
    }
}
