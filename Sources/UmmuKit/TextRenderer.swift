/// Plain-text renderer in the style of bcc/libbpf-tools (biolatency & co).
public struct TextRenderer: Sendable {
    public var milliseconds = false
    public var timestamps = false
    /// At most this many process rows (busiest first).
    public var maxProcesses = 20

    public init(milliseconds: Bool = false, timestamps: Bool = false, maxProcesses: Int = 20) {
        self.milliseconds = milliseconds
        self.timestamps = timestamps
        self.maxProcesses = maxProcesses
    }

    /// A log2 histogram as rows "lo -> hi : count |****|". `divisor`
    /// converts the recorded unit (ns) to the shown one; rows run from the
    /// first to the last non-empty slot.
    public static func histogram(_ h: Histogram, label: String, divisor: Double = 1) -> String {
        let b = h.buckets
        guard let first = b.first?.slot, let last = b.last?.slot else { return "" }
        let maxCount = b.map(\.count).max() ?? 1
        func bound(_ v: UInt64) -> String {
            divisor == 1 ? String(v) : Fmt.compact(Double(v) / divisor)
        }
        var rows: [(String, String, UInt64)] = []
        for s in first...last {
            let lo = Histogram.lowerBound(s)
            let hi = s == Histogram.slotCount - 1 ? "inf" : bound(Histogram.upperBound(s))
            rows.append((bound(lo), hi, h.slots[s]))
        }
        let loW = max(label.count - 4, rows.map { $0.0.count }.max() ?? 0, 10)
        let hiW = max(rows.map { $0.1.count }.max() ?? 0, 10)
        var out = Fmt.pad(label, loW + 4 + hiW, right: false) + " : count     distribution\n"
        for (lo, hi, c) in rows {
            let width = 40
            let stars = maxCount == 0 ? 0 : Int((Double(c) * Double(width) / Double(maxCount)).rounded(.down))
            let bar = String(repeating: "*", count: stars) + String(repeating: " ", count: width - stars)
            out += Fmt.pad(lo, loW) + " -> " + Fmt.pad(hi, hiW, right: true) + " : "
                + Fmt.pad(String(c), 9, right: true) + "|" + bar + "|\n"
        }
        return out
    }

    var timeUnit: String { milliseconds ? "msecs" : "usecs" }
    var timeDivisor: Double { milliseconds ? 1e6 : 1e3 }

    func latency(_ ns: Double?) -> String {
        guard let ns else { return "-" }
        return Fmt.compact(ns / timeDivisor)
    }

    func rate(_ i: Interval, _ v: UInt64) -> String { Fmt.fixed(i.rate(v), 1) }

    /// One interval: header, per-side rates, histograms and a process table.
    public func render(_ i: Interval) -> String {
        var out = ""
        if timestamps { out += Fmt.clock(i.endWallNs) + "\n" }
        let secs = Fmt.fixed(i.durationSeconds, 2)
        if let u = i.ummunotify {
            let reasons = Reason.allCases.filter { u.invalidations[$0.rawValue] > 0 }
                .map { "\($0.name) \(rate(i, u.invalidations[$0.rawValue]))" }
            out += "ummunotify (\(secs)s): invalidations/s \(rate(i, u.totalInvalidations))"
                + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: ", ") + ")")
                + ", bytes/s \(Fmt.human(i.rate(u.totalInvalidatedBytes), binary: true))\n"
            out += "  reports queued/s \(rate(i, u.reportsQueued)), merged/s \(rate(i, u.reportsMerged)),"
                + " reads/s \(rate(i, u.reads)), events/s \(rate(i, u.eventsRead)),"
                + " registrations held \(u.registrationsHeld), backlog \(u.reportsBacklog)\n"
            if u.processOverflow + u.contextOverflow > 0 {
                out += "  overflow: \(u.processOverflow) process rows, \(u.contextOverflow) context rows lost\n"
            }
        }
        if let m = i.umem {
            out += "umem (\(secs)s): faults/s \(rate(i, m.faults)) (waited \(rate(i, m.faultsWaited))),"
                + " pages on demand/s \(rate(i, m.pagesOnDemand)), pushed/s \(rate(i, m.pagesPushed)),"
                + " reads/s \(rate(i, m.reads)), pending \(m.pendingRequests), waiting \(m.waitingFaults)\n"
            out += "  service p50 \(latency(m.serviceLatency.percentile(0.5))) p99 \(latency(m.serviceLatency.percentile(0.99)))"
                + " \(timeUnit), stall p50 \(latency(m.stallLatency.percentile(0.5)))"
                + " p99 \(latency(m.stallLatency.percentile(0.99))) \(timeUnit)\n"
            if m.processOverflow + m.areaOverflow > 0 {
                out += "  overflow: \(m.processOverflow) process rows, \(m.areaOverflow) area rows lost\n"
            }
        }
        out += stockSummary(i)
        if i.droppedEvents > 0 { out += "dropped events: \(i.droppedEvents)\n" }

        var hists: [(String, Histogram, Double)] = []
        if let u = i.ummunotify {
            hists.append(("bytes (invalidated span)", u.spanBytes, 1))
            hists.append(("events (per read)", u.readBatch, 1))
        }
        if let m = i.umem {
            hists.append(("\(timeUnit) (umem service)", m.serviceLatency, timeDivisor))
            hists.append(("\(timeUnit) (umem stall)", m.stallLatency, timeDivisor))
            hists.append(("offsets (per umem read)", m.readBatch, 1))
        }
        hists += stockHistograms(i)
        for (label, h, div) in hists where !h.isEmpty {
            out += "\n" + TextRenderer.histogram(h, label: label, divisor: div)
        }
        if i.processes.contains(where: { $0.ummunotify != nil || $0.umem != nil }) {
            out += "\n" + processTable(i)
        }
        out += stockTables(i)
        return out
    }

    func processTable(_ i: Interval) -> String {
        let drivers = i.processes.filter { $0.ummunotify != nil || $0.umem != nil }
        let rows = drivers.sorted { a, b in
            let ka = (a.ummunotify?.totalInvalidations ?? 0) + (a.umem?.faults ?? 0)
            let kb = (b.ummunotify?.totalInvalidations ?? 0) + (b.umem?.faults ?? 0)
            return ka != kb ? ka > kb : a.pid < b.pid
        }.prefix(maxProcesses)
        var out = Fmt.pad("PID", 7) + " " + Fmt.pad("COMM", 16, right: true)
            + Fmt.pad("INVAL/s", 10) + Fmt.pad("BYTES/s", 10) + Fmt.pad("HELD", 8)
            + Fmt.pad("FAULTS/s", 10) + Fmt.pad("SVC p50", 10) + Fmt.pad("SVC p99", 10)
            + Fmt.pad("STALL p99", 10) + Fmt.pad("PENDING", 8) + "\n"
        for p in rows {
            let u = p.ummunotify
            let m = p.umem
            out += Fmt.pad(String(p.pid), 7) + " " + Fmt.pad(String(Fmt.printable(p.comm).prefix(15)), 16, right: true)
                + Fmt.pad(u.map { rate(i, $0.totalInvalidations) } ?? "-", 10)
                + Fmt.pad(u.map { Fmt.human(i.rate($0.totalInvalidatedBytes), binary: true) } ?? "-", 10)
                + Fmt.pad(u.map { String($0.registrationsHeld) } ?? "-", 8)
                + Fmt.pad(m.map { rate(i, $0.faults) } ?? "-", 10)
                + Fmt.pad(m.map { latency($0.serviceLatency.percentile(0.5)) } ?? "-", 10)
                + Fmt.pad(m.map { latency($0.serviceLatency.percentile(0.99)) } ?? "-", 10)
                + Fmt.pad(m.map { latency($0.stallLatency.percentile(0.99)) } ?? "-", 10)
                + Fmt.pad(m.map { String($0.pendingRequests) } ?? "-", 8) + "\n"
        }
        if drivers.count > rows.count {
            out += "(\(drivers.count - rows.count) more processes)\n"
        }
        return out
    }
}
