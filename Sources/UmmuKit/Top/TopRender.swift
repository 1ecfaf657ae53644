/// Text of ummutop's screen parts (header, latency panel, batch snapshot),
/// independent of the terminal: the ncurses screen draws these lines, batch
/// mode prints them.

/// The tool's own BPF cost over an interval, from the kernel's run stats.
public struct BPFOverhead: Sendable, Equatable {
    public var side: Side
    public var events: UInt64
    public var runTimeNs: UInt64
    /// Average run time per program invocation (nil: no run in the interval).
    public var nsPerEvent: Double?
    /// Share of one CPU over the interval, in percent.
    public var cpuPercent: Double

    public static func of(_ iv: Interval) -> [BPFOverhead] {
        Side.allCases.compactMap { side in
            guard let s = iv.bpf[side] else { return nil }
            return BPFOverhead(
                side: side, events: s.runCount, runTimeNs: s.runTimeNs,
                nsPerEvent: s.runCount == 0 ? nil : Double(s.runTimeNs) / Double(s.runCount),
                cpuPercent: iv.durationNs == 0 ? 0 : Double(s.runTimeNs) / Double(iv.durationNs) * 100)
        }
    }
}

/// Header settings the screen shows.
public struct TopStatus: Sendable {
    public var intervalSeconds: Double
    public var paused = false
    public var bpfStats = true
    public var sides: [Side] = Side.allCases
    public var filterText = ""
    public var sortKey: TopSortKey = .invalidations
    public var reversed = false
    public var selectedPID: UInt32?

    public init(intervalSeconds: Double) {
        self.intervalSeconds = intervalSeconds
    }
}

public enum TopRender {
    static func pct(_ x: Double) -> String { Fmt.fixed(x, x < 10 ? 2 : 1) + "%" }

    /// Header lines: title, one line per driver, BPF overhead and drops.
    public static func header(_ iv: Interval, status: TopStatus, processCount: Int) -> [String] {
        var title = "ummutop - " + Fmt.clock(iv.endWallNs) + "  every " + Fmt.compact(status.intervalSeconds) + "s"
            + "  sort " + status.sortKey.label + (status.reversed ? " (rev)" : "")
        if !status.filterText.isEmpty { title += "  filter \"" + status.filterText + "\"" }
        if status.paused { title += "  [PAUSED]" }
        var lines = [title]
        func r(_ v: UInt64) -> String { TopFormat.rate(iv.rate(v)) }
        if let u = iv.ummunotify {
            let reasons = Reason.allCases.filter { u.invalidations[$0.rawValue] > 0 }
                .map { $0.name + " " + r(u.invalidations[$0.rawValue]) }
            lines.append("ummunotify  inval/s " + r(u.totalInvalidations)
                + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: ", ") + ")")
                + "  bytes/s " + Fmt.human(iv.rate(u.totalInvalidatedBytes), binary: true)
                + "  reports/s " + r(u.reportsQueued) + " merged " + r(u.reportsMerged)
                + "  regs " + String(u.registrationsHeld) + "  backlog " + String(u.reportsBacklog)
                + "  ctx " + String(u.contexts))
        } else {
            lines.append("ummunotify  not traced")
        }
        if let m = iv.umem {
            lines.append("umem        faults/s " + r(m.faults) + " (waited " + r(m.faultsWaited) + ")"
                + "  demand/s " + r(m.pagesOnDemand) + "  pushed/s " + r(m.pagesPushed)
                + "  pending " + String(m.pendingRequests)
                + "  svc p50 " + TopFormat.latency(m.serviceLatency.percentile(0.5))
                + " p99 " + TopFormat.latency(m.serviceLatency.percentile(0.99))
                + "  stall p50 " + TopFormat.latency(m.stallLatency.percentile(0.5))
                + " p99 " + TopFormat.latency(m.stallLatency.percentile(0.99)))
        } else {
            lines.append("umem        not traced")
        }
        var bpf = "bpf        "
        if status.bpfStats {
            let o = BPFOverhead.of(iv)
            bpf += o.isEmpty ? " -" : o.map { " " + $0.side.rawValue + " "
                + ($0.nsPerEvent.map { Fmt.fixed($0, 0) + "ns/ev" } ?? "-") + " " + pct($0.cpuPercent) + " cpu" }
                .joined(separator: " ")
        } else {
            bpf += " run stats unavailable"
        }
        let overflow = (iv.ummunotify.map { $0.processOverflow + $0.contextOverflow } ?? 0)
            + (iv.umem.map { $0.processOverflow + $0.areaOverflow + $0.pageOverflow + $0.stallOverflow } ?? 0)
        bpf += "  dropped " + String(iv.droppedEvents) + "  overflow " + String(overflow)
            + "  procs " + String(processCount)
        lines.append(bpf)
        return lines
    }

    /// A compact log2 histogram of latencies (ns): one row per slot from
    /// the first to the last non-empty one, at most `height` rows (the
    /// lowest slots merge into the first row when there are more).
    public static func histogram(_ h: Histogram, title: String, width: Int, height: Int, unicode: Bool = false) -> [String] {
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

    /// Sparkline rows for the history of a process (nil: all).
    public static func sparklines(_ history: TopHistory, pid: UInt32?, width: Int, unicode: Bool) -> [String] {
        HistoryMetric.allCases.map { m in
            let s = history.series(m, pid: pid)
            let now = m == .stallP99 ? TopFormat.latency(s.last) : TopFormat.rate(s.last ?? 0)
            let peak = m == .stallP99 ? TopFormat.latency(s.peak) : TopFormat.rate(s.peak)
            let label = TopFormat.fit(m.label, 10, left: true) + TopFormat.fit(now, 7) + " "
            let tail = " max " + peak
            let w = max(0, width - label.count - tail.count)
            return label + Sparkline.render(s.values, width: w, unicode: unicode) + tail
        }
    }

    /// One batch snapshot (like `top -b`): header, table of every row that
    /// passes the filter, a blank line.
    public static func batch(_ iv: Interval, table: TopTable, status: TopStatus, width: Int = 200) -> String {
        var out = header(iv, status: status, processCount: table.allRows.count).joined(separator: "\n")
        let cols = TopColumn.fitting(width)
        out += "\n\n" + TopColumn.headerLine(cols, sortedBy: table.sortKey) + "\n"
        for r in table.rows {
            out += TopColumn.line(cols, r) + "\n"
        }
        return out + "\n"
    }
}
