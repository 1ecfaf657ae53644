import UmmuKit

/// Text of ummutop's screen parts (header, latency panel, batch snapshot),
/// independent of the terminal: the ncurses screen draws these lines, batch
/// mode prints them.

/// The tool's own BPF cost over an interval, from the kernel's run stats.
struct BPFOverhead: Sendable, Equatable {
    var side: TraceSource
    var events: UInt64
    var runTimeNs: UInt64
    /// Average run time per program invocation (nil: no run in the interval).
    var nsPerEvent: Double?
    /// Share of one CPU over the interval, in percent.
    var cpuPercent: Double

    static func of(_ iv: Interval) -> [BPFOverhead] {
        TraceSource.allCases.compactMap { side in
            guard let s = iv.bpf[side] else { return nil }
            return BPFOverhead(
                side: side, events: s.runCount, runTimeNs: s.runTimeNs,
                nsPerEvent: s.runCount == 0 ? nil : Double(s.runTimeNs) / Double(s.runCount),
                cpuPercent: iv.durationNs == 0 ? 0 : Double(s.runTimeNs) / Double(iv.durationNs) * 100)
        }
    }
}

/// Header settings the screen shows.
package struct TopStatus: Sendable {
    package var intervalSeconds: Double
    package var paused = false
    package var bpfStats = true
    package var sources: [TraceSource] = TraceSource.allCases
    package var filterText = ""
    package var view: TopViewKind = .drivers
    package var sortKey: TopSortKey = .invalidations
    package var reversed = false
    package var selectedPID: UInt32?

    package init(intervalSeconds: Double) {
        self.intervalSeconds = intervalSeconds
    }
}

package enum TopRender {
    static func pct(_ x: Double) -> String { Fmt.fixed(x, x < 10 ? 2 : 1) + "%" }

    /// The source label of a header line, padded so the figures align.
    static func label(_ s: String) -> String { TopFormat.fit(s, 12, left: true) + " " }

    /// Header lines: title, one line per traced source (and one naming the
    /// sources not traced), BPF overhead and drops.
    package static func header(_ iv: Interval, status: TopStatus, processCount: Int) -> [String] {
        var title = "ummutop - " + Fmt.clock(iv.endWallNs) + "  every " + Fmt.compact(status.intervalSeconds) + "s"
            + "  view " + status.view.rawValue + "  sort " + status.sortKey.label + (status.reversed ? " (rev)" : "")
        if !status.filterText.isEmpty { title += "  filter \"" + Fmt.printable(status.filterText) + "\"" }
        if status.paused { title += "  [PAUSED]" }
        var lines = [title]
        let sourceLines: [(TraceSource, String?)] = [
            (.ummunotify, iv.ummunotify.map { ummunotifyLine($0, iv) }),
            (.umem, iv.umem.map { umemLine($0, iv) }),
            (.mmuNotifier, iv.mmuNotifier.map { mmuNotifierLine($0, iv) }),
            (.userfaultfd, iv.userfaultfd.map { userfaultfdLine($0, iv) }),
        ]
        lines += sourceLines.compactMap(\.1)
        let untraced = sourceLines.filter { $0.1 == nil }.map(\.0.rawValue)
        if !untraced.isEmpty { lines.append(label("not traced") + untraced.joined(separator: ", ")) }
        lines.append(bpfLine(iv, status: status, processCount: processCount))
        return lines
    }

    static func ummunotifyLine(_ u: UmmunotifyTotals, _ iv: Interval) -> String {
        func r(_ v: UInt64) -> String { TopFormat.rate(iv.rate(v)) }
        return label("ummunotify") + "inval/s " + r(u.totalInvalidations) + byName(Reason.allCases, u.invalidations, iv)
            + "  bytes/s " + Fmt.human(iv.rate(u.totalInvalidatedBytes), binary: true)
            + "  reports/s " + r(u.reportsQueued) + " merged " + r(u.reportsMerged)
            + "  regs " + String(u.registrationsHeld) + "  backlog " + String(u.reportsBacklog)
            + "  ctx " + String(u.contexts)
    }

    static func umemLine(_ m: UmemTotals, _ iv: Interval) -> String {
        func r(_ v: UInt64) -> String { TopFormat.rate(iv.rate(v)) }
        return label("umem") + "faults/s " + r(m.faults) + " (waited " + r(m.faultsWaited) + ")"
            + "  demand/s " + r(m.pagesOnDemand) + "  pushed/s " + r(m.pagesPushed)
            + "  pending " + String(m.pendingRequests)
            + "  svc " + percentiles(m.serviceLatency) + "  stall " + percentiles(m.stallLatency)
    }

    static func mmuNotifierLine(_ n: MMUNotifierTotals, _ iv: Interval) -> String {
        func r(_ v: UInt64) -> String { TopFormat.rate(iv.rate(v)) }
        let causes = CauseKind.allCases.map { $0.name + " " + r($0.rawValue < n.byCause.count ? n.byCause[$0.rawValue] : 0) }
        return label("mmu_notifier") + "inval/s " + r(n.totalInvalidations) + byName(Reason.allCases, n.invalidations, iv)
            + "  bytes/s " + Fmt.human(iv.rate(n.invalidatedBytes.reduce(0, &+)), binary: true)
            + "  by cause/s " + causes.joined(separator: " ")
            + "  cb " + percentiles(n.startLatency)
            + "  release " + String(n.releases) + "  young/s " + r(n.young.reduce(0, &+))
    }

    static func userfaultfdLine(_ u: UserfaultfdTotals, _ iv: Interval) -> String {
        func r(_ v: UInt64) -> String { TopFormat.rate(iv.rate(v)) }
        let stall = u.stall.reduce(Histogram()) { $0.adding($1) }
        return label("userfaultfd") + "faults/s " + r(u.totalFaults) + byName(UffdKind.allCases, u.faults, iv)
            + "  waiting " + String(u.waiting) + "  stall " + percentiles(stall)
            + "  ops/s " + r(u.ops.reduce(0, &+)) + byName(UffdOp.allCases, u.ops, iv)
            + "  pages/s " + r(u.opBytes.reduce(0, &+) / basePageSize)
    }

    static func bpfLine(_ iv: Interval, status: TopStatus, processCount: Int) -> String {
        var bpf = label("bpf")
        if status.bpfStats {
            let o = BPFOverhead.of(iv)
            bpf += o.isEmpty ? "-" : o.map { $0.side.rawValue + " "
                + ($0.nsPerEvent.map { Fmt.fixed($0, 0) + "ns/ev" } ?? "-") + " " + pct($0.cpuPercent) + " cpu" }
                .joined(separator: "  ")
        } else {
            bpf += "run stats unavailable"
        }
        return bpf + "  dropped " + String(iv.droppedEvents) + "  overflow " + String(overflow(iv))
            + "  procs " + String(processCount)
    }

    /// Rows lost to the maps' bounds over every source.
    static func overflow(_ iv: Interval) -> UInt64 {
        (iv.ummunotify.map { $0.processOverflow &+ $0.contextOverflow } ?? 0)
            &+ (iv.umem.map { $0.processOverflow &+ $0.areaOverflow } ?? 0)
            &+ (iv.mmuNotifier.map { $0.processOverflow &+ $0.causeOverflow &+ $0.subscriberOverflow } ?? 0)
            &+ (iv.userfaultfd.map { $0.processOverflow } ?? 0)
    }

    /// " (unmap 36, clear 25)": the non-zero rates by name; "" when none.
    static func byName<C: LabeledCase>(_ cases: [C], _ counts: [UInt64], _ iv: Interval) -> String
        where C: RawRepresentable, C.RawValue == Int {
        let named = cases.filter { $0.rawValue < counts.count && counts[$0.rawValue] > 0 }
            .map { $0.name + " " + TopFormat.rate(iv.rate(counts[$0.rawValue])) }
        return named.isEmpty ? "" : " (" + named.joined(separator: ", ") + ")"
    }

    /// "p50 2.8ms p99 15ms".
    static func percentiles(_ h: Histogram) -> String {
        "p50 " + TopFormat.latency(h.percentile(0.5)) + " p99 " + TopFormat.latency(h.percentile(0.99))
    }

    /// A compact log2 histogram of latencies (ns): one row per slot from
    /// the first to the last non-empty one, at most `height` rows (the
    /// lowest slots merge into the first row when there are more).
    package static func histogram(_ h: Histogram, title: String, width: Int, height: Int, unicode: Bool = false) -> [String] {
        var lines = [TopFormat.fit(title + "  n=" + String(h.total)
            + "  p50 " + TopFormat.latency(h.percentile(0.5)) + " p99 " + TopFormat.latency(h.percentile(0.99)),
            width, left: true)]
        guard height > 1 else { return lines }
        let b = h.buckets
        guard var first = b.first?.slot, let last = b.last?.slot else {
            lines.append(TopFormat.fit("  (no samples)", width, left: true))
            return lines
        }
        var merged: UInt64 = 0
        while last - first + 1 > height - 1 {
            merged += h.slots[first]
            first += 1
        }
        let counts = (first...last).map { $0 == first ? h.slots[$0] + merged : h.slots[$0] }
        let top = counts.max() ?? 1
        let labelW = 15
        let countW = 7
        let barW = max(1, width - labelW - countW - 3)
        for (k, s) in (first...last).enumerated() {
            let lo = (k == 0 && merged > 0) ? "<" : TopFormat.latency(Double(Histogram.lowerBound(s)))
            let hi = s == Histogram.slotCount - 1 ? "inf" : TopFormat.latency(Double(Histogram.upperBound(s)) + 1)
            let c = counts[k]
            let n = top == 0 ? 0 : Int((Double(c) / Double(top) * Double(barW)).rounded(.up))
            let bar = String(repeating: unicode ? "█" : "#", count: min(barW, n))
            lines.append(TopFormat.fit(lo + "-" + hi, labelW) + " " + TopFormat.fit(String(c), countW) + " |"
                + TopFormat.fit(bar, barW, left: true))
        }
        return lines
    }

    /// Sparkline rows of a view's metrics for a process (nil: all).
    package static func sparklines(_ history: TopHistory, pid: UInt32?, width: Int, unicode: Bool,
                                  view: TopViewKind = .drivers) -> [String] {
        HistoryMetric.shown(in: view).map { m in
            let s = history.series(m, pid: pid)
            let now = m.isLatency ? TopFormat.latency(s.last) : TopFormat.rate(s.last ?? 0)
            let peak = m.isLatency ? TopFormat.latency(s.peak) : TopFormat.rate(s.peak)
            let label = TopFormat.fit(m.label, 10, left: true) + TopFormat.fit(now, 7) + " "
            let tail = " max " + peak
            let w = max(0, width - label.count - tail.count)
            return label + Sparkline.render(s.values, width: w, unicode: unicode) + tail
        }
    }

    /// The latency histograms of a view's panel, for a process (nil: all),
    /// each with its title: umem stall and service; the MMU-notifier
    /// callbacks' range_start and range_end; userfaultfd stall.
    package static func panelHistograms(_ iv: Interval, view: TopViewKind, pid: UInt32?) -> [(title: String, histogram: Histogram)] {
        let p = pid.flatMap { pid in iv.processes.first { $0.pid == pid } }
        switch view {
        case .drivers:
            let m = pid == nil ? iv.umem.map { ($0.stallLatency, $0.serviceLatency) }
                               : p?.umem.map { ($0.stallLatency, $0.serviceLatency) }
            return [("stall (fault -> done)", m?.0 ?? Histogram()),
                    ("service (fault -> page written)", m?.1 ?? Histogram())]
        case .mmuNotifier, .subscribers:
            let m = pid == nil ? iv.mmuNotifier.map { ($0.startLatency, $0.endLatency) }
                               : p?.mmuNotifier.map { ($0.startLatency, $0.endLatency) }
            return [("callbacks (invalidate_range_start)", m?.0 ?? Histogram()),
                    ("callbacks (invalidate_range_end)", m?.1 ?? Histogram())]
        case .userfaultfd:
            let stall = pid == nil ? iv.userfaultfd.map { $0.stall.reduce(Histogram()) { $0.adding($1) } }
                                   : p?.userfaultfd?.stall
            return [("stall (fault -> resolved)", stall ?? Histogram())]
        }
    }

    /// One batch snapshot (like `top -b`): header, the view's table of
    /// every row that passes the filter, a blank line.
    package static func batch(_ iv: Interval, table: some TopTableModel, status: TopStatus, width: Int = 200) -> String {
        var st = status
        st.view = table.view
        st.sortKey = table.sortKey
        st.reversed = table.reversed
        var out = header(iv, status: st, processCount: table.processCount).joined(separator: "\n")
        out += "\n\n" + table.headerLine(width: width) + "\n"
        for l in table.lines(width: width, from: 0, count: table.rowCount) {
            out += l + "\n"
        }
        return out + "\n"
    }
}
