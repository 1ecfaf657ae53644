import UmmuKit

/// Short rate histories (one sample per refresh) and sparklines for them.

/// A fixed-capacity series, oldest first.
package struct RateSeries: Sendable, Equatable {
    package let capacity: Int
    package private(set) var values: [Double] = []

    package init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
        values.reserveCapacity(self.capacity)
    }

    package mutating func append(_ v: Double) {
        if values.count == capacity { values.removeFirst() }
        values.append(v.isFinite ? v : 0)
    }

    package var last: Double? { values.last }
    package var peak: Double { values.max() ?? 0 }
}

/// The metrics the history keeps, for all processes and for each one.
package enum HistoryMetric: Int, CaseIterable, Sendable {
    case invalidations, faults, stallP99
    case mmuInvalidations, notSelf, callbackP99
    case uffdFaults, uffdStallP99, uffdWaiting

    package var label: String {
        switch self {
        case .invalidations, .mmuInvalidations: return "inval/s"
        case .faults, .uffdFaults: return "faults/s"
        case .stallP99, .uffdStallP99: return "stall p99"
        case .notSelf: return "not-self/s"
        case .callbackP99: return "cb p99"
        case .uffdWaiting: return "waiting"
        }
    }

    /// Nanoseconds (shown as a latency) rather than a rate or a count.
    package var isLatency: Bool { self == .stallP99 || self == .callbackP99 || self == .uffdStallP99 }

    /// The sparklines of a view's panel.
    package static func shown(in view: TopViewKind) -> [HistoryMetric] {
        switch view {
        case .drivers: return [.invalidations, .faults, .stallP99]
        case .mmuNotifier, .subscribers: return [.mmuInvalidations, .notSelf, .callbackP99]
        case .userfaultfd: return [.uffdFaults, .uffdStallP99, .uffdWaiting]
        }
    }

    /// The metrics of all processes over an interval, by `rawValue`.
    static func totals(_ iv: Interval) -> [Double] {
        let uffdStall = iv.userfaultfd.map { $0.stall.reduce(Histogram()) { $0.adding($1) } }
        return [
            iv.rate(iv.ummunotify?.totalInvalidations ?? 0),
            iv.rate(iv.umem?.faults ?? 0),
            iv.umem?.stallLatency.percentile(0.99) ?? 0,
            iv.rate(iv.mmuNotifier?.totalInvalidations ?? 0),
            iv.rate(iv.mmuNotifier.map { TopMMUNotifierRow.notSelf($0.byCause) } ?? 0),
            iv.mmuNotifier?.startLatency.percentile(0.99) ?? 0,
            iv.rate(iv.userfaultfd?.totalFaults ?? 0),
            uffdStall?.percentile(0.99) ?? 0,
            Double(iv.userfaultfd?.waiting ?? 0),
        ]
    }

    /// The metrics of one process over an interval, by `rawValue`.
    static func of(_ p: ProcessRow, in iv: Interval) -> [Double] {
        [
            iv.rate(p.ummunotify?.totalInvalidations ?? 0),
            iv.rate(p.umem?.faults ?? 0),
            p.umem?.stallLatency.percentile(0.99) ?? 0,
            iv.rate(p.mmuNotifier?.totalInvalidations ?? 0),
            iv.rate(p.mmuNotifier.map { TopMMUNotifierRow.notSelf($0.byCause) } ?? 0),
            p.mmuNotifier?.startLatency.percentile(0.99) ?? 0,
            iv.rate(p.userfaultfd?.totalFaults ?? 0),
            p.userfaultfd?.stall.percentile(0.99) ?? 0,
            Double(p.userfaultfd?.waiting ?? 0),
        ]
    }
}

/// Per-process and overall histories of the last `capacity` refreshes.
/// Processes not seen for `capacity` refreshes are forgotten, so memory is
/// bounded by the processes of the window.
package struct TopHistory: Sendable {
    package let capacity: Int
    package private(set) var all: [RateSeries]
    package private(set) var perProcess: [UInt32: [RateSeries]] = [:]
    private var lastSeen: [UInt32: Int] = [:]
    private var tick = 0

    package init(capacity: Int = 60) {
        self.capacity = max(1, capacity)
        all = HistoryMetric.allCases.map { _ in RateSeries(capacity: max(1, capacity)) }
    }

    /// Adds one refresh: every metric, of all processes and of each.
    package mutating func append(_ iv: Interval) {
        record(totals: HistoryMetric.totals(iv), processes: iv.processes.map { ($0.pid, HistoryMetric.of($0, in: iv)) })
    }

    /// Adds one refresh of the drivers' metrics only (the others record 0):
    /// the totals and the drivers view's rows (unfiltered).
    package mutating func append(invalidationsPerSec: Double, faultsPerSec: Double, stallP99: Double?, rows: [TopDriverRow]) {
        func metrics(_ inval: Double, _ faults: Double, _ stall: Double?) -> [Double] {
            var m = [Double](repeating: 0, count: HistoryMetric.allCases.count)
            m[HistoryMetric.invalidations.rawValue] = inval
            m[HistoryMetric.faults.rawValue] = faults
            m[HistoryMetric.stallP99.rawValue] = stall ?? 0
            return m
        }
        record(totals: metrics(invalidationsPerSec, faultsPerSec, stallP99),
               processes: rows.map { ($0.pid, metrics($0.invalidationsPerSec, $0.faultsPerSec, $0.stallP99)) })
    }

    /// Values indexed by `HistoryMetric.rawValue` (missing ones record 0).
    mutating func record(totals: [Double], processes: [(pid: UInt32, values: [Double])]) {
        func value(_ v: [Double], _ m: HistoryMetric) -> Double { m.rawValue < v.count ? v[m.rawValue] : 0 }
        tick += 1
        for m in HistoryMetric.allCases { all[m.rawValue].append(value(totals, m)) }
        var seen = Set<UInt32>()
        let fresh = HistoryMetric.allCases.map { _ in RateSeries(capacity: capacity) }
        for (pid, values) in processes {
            seen.insert(pid)
            // In place: no copy of the series.
            for m in HistoryMetric.allCases { perProcess[pid, default: fresh][m.rawValue].append(value(values, m)) }
            lastSeen[pid] = tick
        }
        // A process with no row this time had no activity: record zeros,
        // and forget it once its whole window is zeros.
        let idle = perProcess.keys.filter { !seen.contains($0) }
        for pid in idle {
            if tick - (lastSeen[pid] ?? 0) >= capacity {
                perProcess[pid] = nil
                lastSeen[pid] = nil
                continue
            }
            for m in HistoryMetric.allCases { perProcess[pid]?[m.rawValue].append(0) }
        }
    }

    /// The series of one metric for a process (nil pid: all).
    package func series(_ m: HistoryMetric, pid: UInt32?) -> RateSeries {
        if let pid { return perProcess[pid]?[m.rawValue] ?? RateSeries(capacity: capacity) }
        return all[m.rawValue]
    }
}

enum Sparkline {
    static let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let ascii: [Character] = ["_", ".", "-", "~", "=", "+", "*", "#"]

    /// The last `width` values as one character each, scaled to the largest
    /// of them (0 shows as a space, any non-zero value as at least the
    /// lowest block, the largest as the full block). Right-aligned: the newest sample is the last character.
    static func render(_ values: [Double], width: Int, unicode: Bool = true) -> String {
        guard width > 0 else { return "" }
        let tail = values.suffix(width)
        let top = tail.max() ?? 0
        let glyphs = unicode ? blocks : ascii
        var out = String(repeating: " ", count: width - tail.count)
        for v in tail {
            if !(v > 0) || !(top > 0) {
                out.append(" ")
                continue
            }
            // Eight equal bands of (0, top]: band k shows glyph k.
            let level = Int((v / top * Double(glyphs.count)).rounded(.up)) - 1
            out.append(glyphs[Swift.max(0, Swift.min(glyphs.count - 1, level))])
        }
        return out
    }
}
