import Testing
@testable import UmmuKit

/// ummutop's table logic: rows from an interval, sort, filter, selection,
/// column fitting, formats, sparklines and history.
struct TopTableTests {
    static func row(_ pid: UInt32, _ comm: String, inval: Double = 0, faults: Double = 0, regs: UInt64 = 0,
                    stallP99: Double? = nil, pending: UInt64 = 0) -> TopRow {
        TopRow(pid: pid, command: comm, invalidationsPerSec: inval, registrations: regs, pending: pending,
               faultsPerSec: faults, stallP99: stallP99)
    }

    static let rows = [
        row(300, "postcopy", inval: 0, faults: 150, stallP99: 2_000_000, pending: 2),
        row(100, "regcache", inval: 40, faults: 0, regs: 32),
        row(200, "regcache", inval: 10, faults: 0, regs: 8),
        row(250, "mpirun", inval: 10, faults: 5, stallP99: 500_000),
    ]

    @Test func rowFromIntervalComputesRatesAndPercentiles() {
        var a = Snapshot(monotonicNs: 1_000_000_000, wallNs: 0)
        var b = Snapshot(monotonicNs: 3_000_000_000, wallNs: 2_000_000_000)
        var u0 = ProcessUmmunotify()
        u0.invalidations[Reason.unmap.rawValue] = 10
        var u1 = u0
        u1.invalidations[Reason.unmap.rawValue] = 50  // +40 in 2 s
        u1.invalidations[Reason.clear.rawValue] = 20  // +20
        u1.invalidations[Reason.migrate.rawValue] = 4  // +4
        u1.registrationsHeld = 7
        var m1 = ProcessUmem()
        m1.faults = 100
        m1.pendingRequests = 3
        for _ in 0..<100 { m1.stallLatency.record(1500) }  // slot [1024, 2048)
        a.processes[5] = ProcessRow(pid: 5, comm: "app", ummunotify: u0, umem: ProcessUmem())
        b.processes[5] = ProcessRow(pid: 5, comm: "app", ummunotify: u1, umem: m1)
        let iv = Interval(from: a, to: b)
        var t = TopTable()
        t.update(iv)
        #expect(t.rows.count == 1)
        let r = t.rows[0]
        #expect(r.pid == 5 && r.command == "app")
        #expect(r.invalidationsPerSec == 32)  // 64 in 2 s
        #expect(r.reasonRate(.unmap) == 20)
        #expect(r.reasonRate(.clear) == 10)
        #expect(r.otherReasonsPerSec == 2)
        #expect(r.registrations == 7)
        #expect(r.faultsPerSec == 50)
        #expect(r.pending == 3)
        let p50 = r.stallP50 ?? 0
        #expect(p50 >= 1024 && p50 < 2048)
        #expect(r.serviceP99 == nil)
    }

    @Test func sortsBusiestFirstWithPidTieBreak() {
        let byInval = TopSort.sorted(Self.rows, by: .invalidations).map(\.pid)
        #expect(byInval == [100, 200, 250, 300])
        let byFaults = TopSort.sorted(Self.rows, by: .faults).map(\.pid)
        #expect(byFaults == [300, 250, 100, 200])
        // Rows without a latency sample sort below rows with one.
        let byStall = TopSort.sorted(Self.rows, by: .stallP99).map(\.pid)
        #expect(byStall == [300, 250, 100, 200])
        #expect(TopSort.sorted(Self.rows, by: .pid).map(\.pid) == [100, 200, 250, 300])
        #expect(TopSort.sorted(Self.rows, by: .command).map(\.command) == ["mpirun", "postcopy", "regcache", "regcache"])
        #expect(TopSort.sorted(Self.rows, by: .invalidations, reversed: true).map(\.pid) == [300, 200, 250, 100])
    }

    @Test func sortKeyAgainReversesAndKeysParse() {
        var t = TopTable(sortKey: .invalidations)
        t.update(rows: Self.rows)
        #expect(t.rows.first?.pid == 100)
        t.sort(by: .invalidations)
        #expect(t.reversed && t.rows.first?.pid == 300)
        t.sort(by: .registrations)
        #expect(!t.reversed && t.rows.map(\.pid) == [100, 200, 250, 300])
        #expect(TopSortKey.parse("stall") == .stallP99)
        #expect(TopSortKey.parse("u") == .faults)
        #expect(TopSortKey.parse("bogus") == nil)
        #expect(TopSortKey.forKey("i") == .invalidations)
        #expect(TopSortKey.pid.cycled(by: -1) == .pending)
        #expect(TopSortKey.pending.cycled(by: 1) == .pid)
        // Every key letter is distinct and none is taken by another action.
        let keys = TopSortKey.allCases.map(\.key)
        #expect(Set(keys).count == keys.count)
        #expect(!keys.contains { "qphfa+-/jkR<> ".contains($0) })
    }

    @Test func filterByCommandOrPidPrefix() {
        var t = TopTable()
        t.update(rows: Self.rows)
        t.setFilter("regcache")
        #expect(Set(t.rows.map(\.pid)) == [100, 200])
        t.setFilter("REGC")
        #expect(t.rows.count == 2)
        t.setFilter("25")
        #expect(t.rows.map(\.pid) == [250])
        t.setFilter("post, 1")
        #expect(Set(t.rows.map(\.pid)) == [100, 300])
        t.setFilter("nothing")
        #expect(t.rows.isEmpty)
        t.setFilter("")
        #expect(t.rows.count == 4)
        #expect(TopFilter("3").matches(pid: 300, command: "x"))
        #expect(!TopFilter("3").matches(pid: 130, command: "x"))
    }

    @Test func selectionFollowsPidAndDropsWhenFiltered() {
        var t = TopTable()
        t.update(rows: Self.rows)
        #expect(t.selectedPID == nil)
        t.moveSelection(1)
        #expect(t.selectedPID == 100)
        t.moveSelection(2)
        #expect(t.selectedPID == 250)
        t.sort(by: .pid)  // the selection follows the process, not the line
        #expect(t.selectedPID == 250 && t.selectedIndex == 2)
        t.moveSelection(10)
        #expect(t.selectedPID == 300)
        t.moveSelection(-10)
        #expect(t.selectedPID == nil)  // up past the top: back to "all"
        t.moveSelection(1)
        t.setFilter("postcopy")
        #expect(t.selectedPID == nil)  // 100 is hidden now
    }

    @Test func columnsFitTheWidth() {
        let wide = TopColumn.fitting(500)
        #expect(wide.count == TopColumn.all.count)
        let w80 = TopColumn.fitting(80)
        let used = w80.reduce(0) { $0 + $1.width } + w80.count - 1
        #expect(used <= 80)
        // The essential columns stay; by-reason columns go first.
        for id in ["pid", "command", "inval", "faults", "stl99"] { #expect(w80.contains { $0.id == id }) }
        #expect(!w80.contains { $0.id == "other" })
        let header = TopColumn.headerLine(w80, sortedBy: .faults)
        #expect(header.contains("FAULT/s*"))
        #expect(header.count == used)
        let line = TopColumn.line(w80, Self.rows[1])
        #expect(line.count == used)
        #expect(line.contains("regcache") && line.contains("40"))
    }

    @Test func formats() {
        #expect(TopFormat.rate(0) == "0")
        #expect(TopFormat.rate(2.5) == "2.5")
        #expect(TopFormat.rate(3) == "3")
        #expect(TopFormat.rate(42.4) == "42")
        #expect(TopFormat.rate(12_345) == "12.3K")
        #expect(TopFormat.latency(nil) == "-")
        #expect(TopFormat.latency(850) == "850ns")
        #expect(TopFormat.latency(1500) == "1.5us")
        #expect(TopFormat.latency(2_500_000) == "2.5ms")
        #expect(TopFormat.latency(25_000_000) == "25ms")
        #expect(TopFormat.fit("abcdef", 3) == "abc")
        #expect(TopFormat.fit("ab", 4) == "  ab")
        #expect(TopFormat.fit("ab", 4, left: true) == "ab  ")
    }

    @Test func sparklineScalesToPeak() {
        #expect(Sparkline.render([0, 1, 2, 4, 8], width: 5) == " ▁▂▄█")
        #expect(Sparkline.render([0, 1, 2, 4, 8], width: 5, unicode: false) == " _.~#")
        #expect(Sparkline.render([5], width: 4) == "   █")  // right-aligned
        #expect(Sparkline.render([1, 2, 3, 4, 5, 6], width: 3).count == 3)  // newest kept
        #expect(Sparkline.render([0, 0], width: 2) == "  ")
        #expect(Sparkline.render([1], width: 0) == "")
    }

    @Test func historyIsBoundedAndForgetsIdleProcesses() {
        var h = TopHistory(capacity: 3)
        for i in 0..<5 {
            h.append(invalidationsPerSec: Double(i), faultsPerSec: 0, stallP99: nil,
                     rows: i == 0 ? [Self.row(7, "x", inval: 9)] : [Self.row(8, "y", inval: Double(i))])
        }
        #expect(h.series(.invalidations, pid: nil).values == [2, 3, 4])
        #expect(h.series(.invalidations, pid: 8).values == [2, 3, 4])
        #expect(h.perProcess[7] == nil)  // idle for a whole window
        var s = RateSeries(capacity: 2)
        s.append(1); s.append(.nan); s.append(3)
        #expect(s.values == [0, 3])
    }

    @Test func batchTextHasHeaderTableAndEveryRow() {
        var src = SyntheticSource(processes: 30)
        let a = src.snapshot()
        let b = src.snapshot(advance: 2)
        let iv = Interval(from: a, to: b)
        var t = TopTable(sortKey: .invalidations)
        t.update(iv)
        #expect(t.rows.count == 30)
        let text = TopRender.batch(iv, table: t, status: TopStatus(intervalSeconds: 2))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("ummutop - "))
        #expect(lines.contains { $0.hasPrefix("ummunotify  inval/s ") })
        #expect(lines.contains { $0.hasPrefix("umem        faults/s ") })
        #expect(lines.contains { $0.contains("PID") && $0.contains("INVAL/s*") })
        #expect(lines.filter { $0.contains("synth-") }.count == 30)
        // Synthetic process 6 invalidates 70 times a second: busiest first.
        #expect(t.rows.first?.invalidationsPerSec == 70)
        #expect(t.rows.first.map { ($0.pid - 1000) % 7 == 6 } == true)
    }

    @Test func bpfOverheadFromRunStats() {
        let a = Snapshot(monotonicNs: 0, bpf: [.ummunotify: BPFRunStats(runTimeNs: 1_000, runCount: 10)])
        let b = Snapshot(monotonicNs: 1_000_000_000,
                         bpf: [.ummunotify: BPFRunStats(runTimeNs: 5_001_000, runCount: 10_010)])
        let o = BPFOverhead.of(Interval(from: a, to: b))
        #expect(o.count == 1)
        #expect(o.first?.nsPerEvent == 500)
        #expect(o.first.map { abs($0.cpuPercent - 0.5) < 1e-9 } == true)
    }

    @Test func histogramPanelMergesLowSlotsToFit() {
        var h = Histogram()
        for v: UInt64 in [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000] { h.record(v) }
        let lines = TopRender.histogram(h, title: "stall", width: 60, height: 5)
        #expect(lines.count == 5)
        #expect(lines[0].contains("n=7"))
        #expect(lines[1].contains("<-131us") && lines[1].contains(" 6 |"))  // slots below merged
        #expect(lines.allSatisfy { $0.count <= 60 })
        #expect(TopRender.histogram(Histogram(), title: "x", width: 30, height: 4).last?.contains("no samples") == true)
    }
}
