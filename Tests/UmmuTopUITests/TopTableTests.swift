import Testing
@testable import UmmuKit
@testable import UmmuTopUI

/// ummutop's table logic: rows of each view from an interval, sort, filter,
/// selection, view switching, column fitting, formats, sparklines, history,
/// header and batch text.
struct TopTableTests {
    static func row(_ pid: UInt32, _ comm: String, inval: Double = 0, faults: Double = 0, regs: UInt64 = 0,
                    stallP99: Double? = nil, pending: UInt64 = 0) -> TopDriverRow {
        TopDriverRow(pid: pid, command: comm, invalidationsPerSec: inval, registrations: regs, pending: pending,
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
        t.sort(by: .young)  // not a key of the drivers view: ignored
        #expect(t.sortKey == .registrations)
        #expect(TopSortKey.parse("stall", in: .drivers) == .stallP99)
        #expect(TopSortKey.parse("u", in: .drivers) == .faults)
        #expect(TopSortKey.parse("bogus", in: .drivers) == nil)
        #expect(TopSortKey.parse("young", in: .drivers) == nil)
        #expect(TopViewKind.drivers.sortKey(forKey: "i") == .invalidations)
        #expect(TopSortKey.pid.cycled(by: -1, in: .drivers) == .pending)
        #expect(TopSortKey.pending.cycled(by: 1, in: .drivers) == .pid)
        // The same letter means the like key of each view.
        #expect(TopSortKey.parse("w", in: .drivers) == .pending)
        #expect(TopSortKey.parse("w", in: .userfaultfd) == .waiting)
        #expect(TopSortKey.parse("s", in: .userfaultfd) == .stallP99)
        #expect(TopSortKey.parse("o", in: .mmuNotifier) == .notSelf)
        #expect(TopSortKey.parse("o", in: .userfaultfd) == .ops)
        #expect(TopSortKey.pid.cycled(by: -1, in: .userfaultfd) == .ops)
        #expect(TopSortKey.young.cycled(by: 1, in: .mmuNotifier) == .pid)
    }

    /// Within each view the sort letters are distinct and none is taken by
    /// another action or a view key; every key of a view has a column
    /// marked when sorted by it.
    @Test func everyViewsKeysAreDistinctAndHaveAColumn() {
        let views = TopViewKind.allCases.map(\.key)
        #expect(Set(views).count == views.count)
        for v in TopViewKind.allCases {
            let keys = v.sortKeys.map(\.key)
            #expect(Set(keys).count == keys.count, "\(v)")
            #expect(!keys.contains { "qphfa+-/jkR<>,.=_? \t1234".contains($0) }, "\(v)")
            #expect(v.sortKeys.contains(v.defaultSort))
        }
        func marked<Row: TopViewRow>(_: Row.Type) {
            let sortable = Set(Row.columns.compactMap(\.sortKey))
            #expect(sortable == Set(Row.view.sortKeys), "\(Row.view)")
            for k in Row.view.sortKeys {
                #expect(TopColumn<Row>.headerLine(Row.columns, sortedBy: k).contains("*"), "\(k)")
            }
        }
        marked(TopDriverRow.self)
        marked(TopMMUNotifierRow.self)
        marked(TopSubscriberRow.self)
        marked(TopUserfaultfdRow.self)
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
        #expect(wide.count == TopDriverRow.columns.count)
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
        #expect(lines.contains { $0.hasPrefix("ummunotify   inval/s ") })
        #expect(lines.contains { $0.hasPrefix("umem         faults/s ") })
        #expect(lines.contains { $0.hasPrefix("mmu_notifier inval/s ") })
        #expect(lines.contains { $0.hasPrefix("userfaultfd  faults/s ") })
        #expect(!lines.contains { $0.hasPrefix("not traced") })
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

/// The stock sources' views (mmu_notifier, subscribers, userfaultfd) from a
/// hand-built interval of 2 s, view switching, start-up view and sort,
/// header lines and batch text of each view.
extension TopTableTests {
    static let esc = "\u{1b}[31m"
    static let kvm = SubscriberKey(ops: 0xA0, owner: 100, interval: false)
    static let umn = SubscriberKey(ops: 0xB0, owner: 100, interval: true)
    static let evilOps = SubscriberKey(ops: 0xC0, owner: 200, interval: false)

    /// Over 2 s: qemu (100) invalidated 60 times (unmap 40, clear 20),
    /// 30 of them by kswapd0, 10 by postcopy, 20 by itself; a process with
    /// an escape sequence in its name (200) 10 times (protection_page, by
    /// another process); postcopy (300) faulted 120 times on userfaultfd;
    /// 400 has one fault waiting and nothing else; regcache (500) used only
    /// ummunotify.
    static func stockInterval() -> Interval {
        let a = Snapshot(monotonicNs: 1_000_000_000, wallNs: 0)
        var b = Snapshot(monotonicNs: 3_000_000_000, wallNs: 2_000_000_000)
        var q = ProcessMMUNotifier()
        q.invalidations[Reason.unmap.rawValue] = 40
        q.invalidations[Reason.clear.rawValue] = 20
        q.byCause = [20, 10, 30]
        q.young = 10
        for _ in 0..<100 { q.startLatency.record(1500) }
        var e = ProcessMMUNotifier()
        e.invalidations[Reason.protectionPage.rawValue] = 10
        e.byCause = [0, 10, 0]
        e.releases = 1
        for _ in 0..<10 { e.startLatency.record(100_000) }
        var u = ProcessUserfaultfd()
        u.faults = [100, 20, 0]
        u.outcomes[UffdOutcome.resolved.rawValue] = 120
        u.ops[UffdOp.copy.rawValue] = 100
        u.ops[UffdOp.writeProtect.rawValue] = 20
        u.opBytes[UffdOp.copy.rawValue] = 100 * 4096
        u.opBytes[UffdOp.writeProtect.rawValue] = 40 * 4096
        u.opsFailed = 1
        u.waiting = 2
        for _ in 0..<120 { u.stall.record(3_000_000) }
        var w = ProcessUserfaultfd()
        w.waiting = 1
        var r = ProcessUmmunotify()
        r.invalidations[Reason.unmap.rawValue] = 10
        b.processes = [
            100: ProcessRow(pid: 100, comm: "qemu", mmuNotifier: q),
            200: ProcessRow(pid: 200, comm: esc + "evil", mmuNotifier: e),
            300: ProcessRow(pid: 300, comm: "postcopy", userfaultfd: u),
            400: ProcessRow(pid: 400, comm: "uffd-idle", userfaultfd: w),
            500: ProcessRow(pid: 500, comm: "regcache", ummunotify: r),
        ]
        var n = MMUNotifierTotals()
        n.invalidations[Reason.unmap.rawValue] = 40
        n.invalidations[Reason.clear.rawValue] = 20
        n.invalidations[Reason.protectionPage.rawValue] = 10
        n.byCause = [20, 20, 30]
        n.releases = 1
        n.young[YoungKind.clearFlush.rawValue] = 10
        n.startLatency = q.startLatency.adding(e.startLatency)
        b.mmuNotifier = n
        var t = UserfaultfdTotals()
        t.faults = u.faults
        t.ops = u.ops
        t.opBytes = u.opBytes
        t.waiting = 3
        for _ in 0..<100 { t.stall[UffdKind.missing.rawValue].record(3_000_000) }
        for _ in 0..<20 { t.stall[UffdKind.writeProtect.rawValue].record(3_000_000) }
        b.userfaultfd = t
        var ummunotify = UmmunotifyTotals()
        ummunotify.invalidations[Reason.unmap.rawValue] = 10
        b.ummunotify = ummunotify
        var kvm = SubscriberRow()
        kvm.name = "kvm"
        kvm.symbol = "kvm_mmu_notifier_ops"
        kvm.invalidations = q.invalidations
        kvm.young = 10
        var umn = SubscriberRow()
        umn.name = "ummunotify"
        umn.invalidations[Reason.unmap.rawValue] = 10
        var evil = SubscriberRow()
        evil.symbol = esc + "evil_ops"
        evil.invalidations[Reason.protectionPage.rawValue] = 10
        evil.releases = 1
        b.subscribers = [Self.kvm: kvm, Self.umn: umn, Self.evilOps: evil]
        func cause(_ owner: UInt32, _ kind: CauseKind, _ pid: UInt32, _ comm: String, _ r: Reason) -> CauseKey {
            CauseKey(owner: owner, kind: kind, causePID: pid, causeComm: comm, reason: r)
        }
        b.causes = [
            cause(100, .owner, 100, "", .unmap): CauseCounts(invalidations: 20),
            cause(100, .kernelThread, 55, "kswapd0", .unmap): CauseCounts(invalidations: 20),
            cause(100, .kernelThread, 55, "kswapd0", .clear): CauseCounts(invalidations: 10),
            cause(100, .otherProcess, 300, "postcopy", .clear): CauseCounts(invalidations: 10),
            cause(200, .otherProcess, 999, esc + "x", .protectionPage): CauseCounts(invalidations: 10),
        ]
        return Interval(from: a, to: b)
    }

    static func noEscape(_ s: String) -> Bool { !s.unicodeScalars.contains { $0.value < 0x20 } }

    @Test func mmuNotifierRowsRatesCausesAndSortOrders() {
        let iv = Self.stockInterval()
        var t = TopViewTable<TopMMUNotifierRow>()
        t.update(iv)
        #expect(t.sortKey == .invalidations)
        #expect(t.rows.map(\.pid) == [100, 200])  // postcopy and regcache have no mm rows
        let q = t.rows[0]
        #expect(q.command == "qemu" && q.invalidationsPerSec == 30)
        #expect(TopReasons.rate(q.byReasonPerSec, .unmap) == 20 && TopReasons.rate(q.byReasonPerSec, .clear) == 10)
        #expect(q.notSelfPerSec == 20)  // kswapd0's 30 and postcopy's 10 over 2 s
        #expect(q.youngPerSec == 5 && q.releases == 0)
        #expect(q.callbackP99.map { $0 >= 1024 && $0 < 2048 } == true)
        #expect(q.topCause == TopCause(text: "[kswapd0]", sharePercent: 50))
        let e = t.rows[1]
        #expect(e.command == "?[31mevil" && Self.noEscape(e.command))
        #expect(e.notSelfPerSec == 5 && e.releases == 1)
        #expect(e.topCause?.text == "?[31mx:999" && e.topCause?.sharePercent == 100)
        #expect(e.callbackP99.map { $0 >= 65536 } == true)
        func order(_ k: TopSortKey) -> [UInt32] {
            t.sort(by: k)
            return t.rows.map(\.pid)
        }
        #expect(order(.notSelf) == [100, 200])
        #expect(order(.callbackP99) == [200, 100])
        #expect(order(.releases) == [200, 100])
        #expect(order(.young) == [100, 200])
        #expect(order(.young) == [200, 100])  // again: reversed
        #expect(order(.command) == [200, 100])  // "?[31mevil" < "qemu"
        t.cycleSort(-1)
        #expect(t.sortKey == .pid && t.rows.map(\.pid) == [100, 200])
    }

    @Test func subscriberRowsPerProcessAndSubscriberWithTheTopCause() {
        let iv = Self.stockInterval()
        var t = TopViewTable<TopSubscriberRow>()
        t.update(iv)
        #expect(t.rowCount == 3 && t.processCount == 2)
        // Busiest first; the tie of pid 100's ummunotify and pid 200 at 5/s breaks on pid.
        #expect(t.rows.map(\.subscriber) == ["kvm", "ummunotify", "?[31mevil_ops"])
        let kvm = t.rows[0]
        #expect(kvm.id == Self.kvm && kvm.pid == 100 && kvm.command == "qemu")
        #expect(kvm.kind == "notifier" && kvm.invalidationsPerSec == 30 && kvm.youngPerSec == 5)
        #expect(TopReasons.rate(kvm.byReasonPerSec, .clear) == 10)
        #expect(kvm.topCause?.text == "[kswapd0]")
        #expect(t.rows[1].kind == "interval" && t.rows[1].invalidationsPerSec == 5)
        let evil = t.rows[2]
        #expect(evil.command == "?[31mevil" && Self.noEscape(evil.subscriber) && evil.releases == 1)
        t.sort(by: .subscriber)
        #expect(t.rows.map(\.subscriber) == ["?[31mevil_ops", "kvm", "ummunotify"])
        t.sort(by: .releases)
        #expect(t.rows.first?.id == Self.evilOps)
        // The selection follows the row (not the pid) across re-sorts.
        t.sort(by: .invalidations)
        t.moveSelection(2)
        #expect(t.selectedID == Self.umn && t.selectedPID == 100)
        t.sort(by: .subscriber)
        #expect(t.selectedIndex == 2 && t.selectedID == Self.umn)
        t.setFilter("evil")
        #expect(t.rows.count == 1 && t.selectedID == nil)
    }

    @Test func userfaultfdRowsFaultsStallWaitingOpsAndSortOrders() {
        let iv = Self.stockInterval()
        var t = TopViewTable<TopUserfaultfdRow>()
        t.update(iv)
        #expect(t.sortKey == .faults)
        #expect(t.rows.map(\.pid) == [300, 400])  // 400: only a fault waiting
        let p = t.rows[0]
        #expect(p.faultsPerSec == 60 && p.kindRate(.missing) == 50 && p.kindRate(.writeProtect) == 10)
        #expect(p.kindRate(.minor) == 0)
        #expect(p.stallP50.map { $0 >= 2_097_152 && $0 < 4_194_304 } == true)
        #expect(p.waiting == 2 && p.failedOps == 1)
        #expect(p.opsPerSec == 60 && p.opRate(.copy) == 50 && p.opRate(.writeProtect) == 10)
        #expect(p.pagesPerSec == 70)
        let idle = t.rows[1]
        #expect(idle.faultsPerSec == 0 && idle.stallP99 == nil && idle.waiting == 1)
        t.sort(by: .stallP99)
        #expect(t.rows.map(\.pid) == [300, 400])  // no sample sorts below any sample
        t.sort(by: .stallP99)
        #expect(t.rows.map(\.pid) == [400, 300])
        t.sort(by: .waiting)
        #expect(t.rows.map(\.pid) == [300, 400])
        t.sort(by: .ops)
        #expect(t.rows.map(\.pid) == [300, 400])
        t.reverse()
        #expect(t.reversed && t.rows.map(\.pid) == [400, 300])
    }

    @Test func eachViewShowsOnlyItsSourcesProcesses() {
        let iv = Self.stockInterval()
        var d = TopTable()
        d.update(iv)
        #expect(d.rows.map(\.pid) == [500])
        // Escaped in the drivers view too.
        var b = Snapshot(monotonicNs: 1_000_000_000)
        b.processes[7] = ProcessRow(pid: 7, comm: "a\u{7f}b\u{1b}", ummunotify: ProcessUmmunotify(), umem: {
            var m = ProcessUmem()
            m.faults = 1
            return m
        }())
        d.update(Interval(from: Snapshot(), to: b))
        #expect(d.rows.first?.command == "a?b?")
    }

    @Test func switchingViewsKeepsEachViewsSortAndTheCommonFilter() {
        let iv = Self.stockInterval()
        var v = TopViewTables(view: .drivers, sortKey: .pid)
        v.update(iv)
        #expect(v.current.view == .drivers && v.current.sortKey == .pid && v.current.rowCount == 1)
        #expect(v.mmuNotifier.rowCount == 0)  // only the shown view is computed
        v.show(.mmuNotifier)  // rows from the last interval at once
        #expect(v.current.view == .mmuNotifier && v.current.rowCount == 2 && v.current.sortKey == .invalidations)
        v.withCurrent { $0.sort(by: .callbackP99) }
        #expect(v.mmuNotifier.rows.map(\.pid) == [200, 100])
        v.show(.userfaultfd)
        #expect(v.current.sortKey == .faults && v.current.rowCount == 2)
        v.withCurrent { $0.sort(by: .invalidations) }  // not one of this view's keys
        #expect(v.current.sortKey == .faults)
        v.setFilter("post")
        #expect(v.current.rowCount == 1 && v.current.selectedPID == nil)
        v.withCurrent { $0.moveSelection(1) }
        #expect(v.current.selectedPID == 300)
        v.show(.mmuNotifier)
        #expect(v.current.sortKey == .callbackP99)  // its own sort, kept
        #expect(v.current.filter.text == "post" && v.current.rowCount == 0)  // the filter is common
        v.show(.subscribers)
        v.setFilter("")
        #expect(v.current.rowCount == 3 && v.current.processCount == 2)
        v.show(.userfaultfd)
        #expect(v.current.selectedPID == 300)  // its own selection, kept
        // The keys: digits pick views; Tab steps through them.
        #expect(TopViewKind.allCases.map(\.key) == ["1", "2", "3", "4"])
        #expect(TopViewKind.forKey("3") == .subscribers && TopViewKind.forKey("5") == nil)
        #expect(TopViewKind.userfaultfd.cycled(by: 1) == .drivers && TopViewKind.drivers.cycled(by: -1) == .userfaultfd)
        #expect(TopViewKind.parse("mmu_notifier") == .mmuNotifier && TopViewKind.parse("4") == .userfaultfd)
        #expect(TopViewKind.parse("uffd") == .userfaultfd && TopViewKind.parse("nope") == nil)
    }

    @Test func startingViewAndSortFromTheOptionsAndTheTracedSources() {
        let all = TraceSource.allCases
        func start(_ view: TopViewKind?, _ sort: String?, _ traced: [TraceSource] = all) -> (TopViewKind, TopSortKey)? {
            TopViewKind.start(view: view, sort: sort, traced: traced)
        }
        #expect(TopViewKind.starting(for: all) == .drivers)
        #expect(TopViewKind.starting(for: [.umem, .userfaultfd]) == .drivers)
        #expect(TopViewKind.starting(for: [.mmuNotifier, .userfaultfd]) == .mmuNotifier)
        #expect(TopViewKind.starting(for: [.userfaultfd]) == .userfaultfd)
        #expect(start(nil, nil).map { $0 == (.drivers, .invalidations) } == true)
        #expect(start(.userfaultfd, nil).map { $0 == (.userfaultfd, .faults) } == true)
        #expect(start(nil, "stall").map { $0 == (.drivers, .stallP99) } == true)
        #expect(start(nil, "stall", [.userfaultfd]).map { $0 == (.userfaultfd, .stallP99) } == true)
        // A key only another view has picks that view (a traced one first).
        #expect(start(nil, "young").map { $0 == (.mmuNotifier, .young) } == true)
        #expect(start(nil, "waiting").map { $0 == (.userfaultfd, .waiting) } == true)
        #expect(start(nil, "subscriber").map { $0 == (.subscribers, .subscriber) } == true)
        #expect(start(.drivers, "young") == nil)
        #expect(start(.subscribers, "b").map { $0 == (.subscribers, .subscriber) } == true)
        #expect(start(nil, "bogus") == nil)
    }

    @Test func headerHasALinePerStockSourceAndNamesTheUntraced() {
        let iv = Self.stockInterval()
        var st = TopStatus(intervalSeconds: 2)
        st.view = .mmuNotifier
        st.sortKey = .young
        var iv2 = iv
        iv2.umem = nil
        let lines = TopRender.header(iv2, status: st, processCount: 2)
        #expect(lines[0].contains("view mmu_notifier  sort young/s"))
        let mmu = lines.first { $0.hasPrefix("mmu_notifier inval/s 35 (unmap 20, clear 10, protection_page 5)") }
        #expect(mmu != nil)
        #expect(mmu.map { $0.contains("by cause/s self 10 other 10 kthread 15") && $0.contains("cb p50 1.")
            && $0.contains("release 1") && $0.contains("young/s 5") } == true)
        let uffd = lines.first { $0.hasPrefix("userfaultfd  faults/s 60 (missing 50, wp 10)") }
        #expect(uffd.map { $0.contains("waiting 3") && $0.contains("stall p50 ") && $0.contains("ms p99 ")
            && $0.contains("ops/s 60 (copy 50, writeprotect 10)") && $0.contains("pages/s 70") } == true)
        #expect(lines.contains("not traced   umem"))
        #expect(lines.last?.hasPrefix("bpf          ") == true && lines.last?.hasSuffix("procs 2") == true)
        // The filter is shown escaped.
        st.filterText = "\u{1b}x"
        #expect(Self.noEscape(TopRender.header(iv, status: st, processCount: 0)[0]))
    }

    @Test func batchTextOfEachViewHasItsColumnsAndValues() {
        let iv = Self.stockInterval()
        func batch(_ view: TopViewKind, sort: TopSortKey? = nil) -> [String] {
            var v = TopViewTables(view: view, sortKey: sort)
            v.update(iv)
            return TopRender.batch(iv, table: v.current, status: TopStatus(intervalSeconds: 2), width: 512)
                .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        }
        func table(_ lines: [String]) -> (header: [String], rows: [[String]]) {
            guard let h = lines.firstIndex(where: { $0.hasPrefix("    PID ") }) else { return ([], []) }
            let rows = lines[(h + 1)...].prefix { !$0.isEmpty }.map { $0.split(separator: " ").map(String.init) }
            return (lines[h].split(separator: " ").map(String.init), rows)
        }
        let m = batch(.mmuNotifier)
        #expect(m[0].contains("view mmu_notifier  sort inval/s"))
        let mt = table(m)
        #expect(mt.header == ["PID", "COMMAND", "INVAL/s*", "UNMAP", "CLEAR", "PROTV", "PROTP", "OTHER", "NOT-SELF/s",
                              "CB50", "CB99", "RELEASE", "YOUNG/s", "CAUSE", "CAUSE%"])
        #expect(mt.rows.count == 2)
        #expect(mt.rows.first.map { Array($0.prefix(3)) + Array($0.suffix(5)) }
            == ["100", "qemu", "30", "2.0us", "0", "5", "[kswapd0]", "50%"])  // p99 of 100 samples in [1024, 2048)
        #expect(mt.rows.last?.first == "200" && mt.rows.last?[1] == "?[31mevil")
        let s = table(batch(.subscribers, sort: .subscriber))
        #expect(s.header == ["PID", "COMMAND", "SUBSCRIBER*", "KIND", "INVAL/s", "UNMAP", "CLEAR", "PROTV", "PROTP",
                             "OTHER", "RELEASE", "YOUNG/s", "CAUSE", "CAUSE%"])
        #expect(s.rows.map { $0[2] } == ["?[31mevil_op", "kvm", "ummunotify"])  // cut to the column's 12
        #expect(s.rows[1].prefix(5) == ["100", "qemu", "kvm", "notifier", "30"])
        #expect(s.rows[2].suffix(2) == ["[kswapd0]", "50%"])
        let u = batch(.userfaultfd, sort: .waiting)
        #expect(u[0].contains("view userfaultfd  sort waiting"))
        let ut = table(u)
        #expect(ut.header == ["PID", "COMMAND", "FAULT/s", "MISSING", "WP", "MINOR", "STALL50", "STALL99", "WAITING*",
                              "OPS/s", "COPY/s", "ZERO/s", "CONT/s", "WPROT/s", "MOVE/s", "PAGES/s", "FAILED"])
        #expect(ut.rows.first.map { Array($0.prefix(6)) } == ["300", "postcopy", "60", "50", "10", "0"])
        #expect(ut.rows.first.map { Array($0.suffix(9)) } == ["2", "60", "50", "0", "0", "10", "0", "70", "1"])
        #expect(ut.rows.last?.prefix(3) == ["400", "uffd-idle", "0"])
        let d = table(batch(.drivers))
        #expect(d.rows.map { $0[0] } == ["500"] && d.header.contains("INVAL/s*"))
        // Every line of every view is free of control characters.
        for v in TopViewKind.allCases { #expect(batch(v).allSatisfy(Self.noEscape), "\(v)") }
    }

    @Test func narrowTerminalsKeepEachViewsEssentialColumns() {
        let m = TopColumn<TopMMUNotifierRow>.fitting(80).map(\.id)
        for id in ["pid", "command", "inval", "notself", "cb99"] { #expect(m.contains(id)) }
        #expect(!m.contains("other"))
        let s = TopColumn<TopSubscriberRow>.fitting(80).map(\.id)
        for id in ["pid", "command", "subscriber", "inval", "cause"] { #expect(s.contains(id)) }
        let u = TopColumn<TopUserfaultfdRow>.fitting(80).map(\.id)
        for id in ["pid", "command", "faults", "stl99", "waiting"] { #expect(u.contains(id)) }
        #expect(!u.contains("move"))
        for ids in [m, s, u] { #expect(!ids.isEmpty) }
        var v = TopViewTables(view: .userfaultfd)
        v.update(Self.stockInterval())
        #expect(v.current.headerLine(width: 80).count <= 80)
        #expect(v.current.lines(width: 80, from: 0, count: 10).allSatisfy { $0.count <= 80 })
        #expect(v.current.lines(width: 80, from: 1, count: 10).count == 1)
        #expect(v.current.lines(width: 80, from: 5, count: 10).isEmpty)
    }

    @Test func panelAndHistoryFollowTheView() {
        let iv = Self.stockInterval()
        #expect(TopRender.panelHistograms(iv, view: .mmuNotifier, pid: nil).map(\.histogram.total) == [110, 0])
        #expect(TopRender.panelHistograms(iv, view: .subscribers, pid: 200).first?.histogram.total == 10)
        let uf = TopRender.panelHistograms(iv, view: .userfaultfd, pid: nil)
        #expect(uf.count == 1 && uf.first?.histogram.total == 120)
        #expect(TopRender.panelHistograms(iv, view: .userfaultfd, pid: 100).first?.histogram.total == 0)
        #expect(TopRender.panelHistograms(iv, view: .drivers, pid: nil).count == 2)
        var h = TopHistory(capacity: 4)
        h.append(iv)
        #expect(h.series(.mmuInvalidations, pid: nil).last == 35)
        #expect(h.series(.notSelf, pid: 100).last == 20)
        #expect(h.series(.uffdFaults, pid: 300).last == 60)
        #expect(h.series(.uffdWaiting, pid: nil).last == 3)
        #expect(h.series(.invalidations, pid: 500).last == 5)
        let spark = TopRender.sparklines(h, pid: nil, width: 40, unicode: false, view: .userfaultfd)
        #expect(spark.map { String($0.prefix(10)) } == ["faults/s  ", "stall p99 ", "waiting   "])
        #expect(TopRender.sparklines(h, pid: 100, width: 40, unicode: false, view: .subscribers)[1].hasPrefix("not-self/s"))
    }

    @Test func syntheticSourceFeedsEveryView() {
        var src = SyntheticSource(processes: 30)
        let a = src.snapshot()
        let iv = Interval(from: a, to: src.snapshot(advance: 2))
        #expect(iv.mmuNotifier != nil && iv.userfaultfd != nil)
        var v = TopViewTables(view: .mmuNotifier)
        v.update(iv)
        #expect(v.current.rowCount == 30)
        #expect(v.mmuNotifier.rows.first?.invalidationsPerSec == 30)  // i % 6 == 5
        #expect(v.mmuNotifier.rows.contains { $0.topCause?.text == "[kswapd0]" })
        #expect(v.mmuNotifier.rows.contains { $0.topCause?.text == "synth-3:1003" })
        v.show(.subscribers)
        // kvm on the 15 even processes, ummunotify on the 10 multiples of 3.
        #expect(v.current.rowCount == 25 && v.current.processCount == 20)
        v.show(.userfaultfd)
        // Idle: i % 4 == 0 (no fault, and even: none waiting).
        #expect(v.current.rowCount == 22)
        #expect(v.userfaultfd.rows.first?.faultsPerSec == 45)
        #expect(iv.userfaultfd?.waiting == 15)
    }
}
