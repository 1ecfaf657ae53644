/// Short rate histories (one sample per refresh) and sparklines for them.

/// A fixed-capacity series, oldest first.
public struct RateSeries: Sendable, Equatable {
    public let capacity: Int
    public private(set) var values: [Double] = []

    public init(capacity: Int) {
        self.capacity = Swift.max(1, capacity)
        values.reserveCapacity(self.capacity)
    }

    public mutating func append(_ v: Double) {
        if values.count == capacity { values.removeFirst() }
        values.append(v.isFinite ? v : 0)
    }

    public var last: Double? { values.last }
    public var peak: Double { values.max() ?? 0 }
}

/// The metrics the history keeps, for all processes and for each one.
public enum HistoryMetric: Int, CaseIterable, Sendable {
    case invalidations, faults, stallP99

    public var label: String {
        switch self {
        case .invalidations: return "inval/s"
        case .faults: return "faults/s"
        case .stallP99: return "stall p99"
        }
    }
}

/// Per-process and overall histories of the last `capacity` refreshes.
/// Processes not seen for `capacity` refreshes are forgotten, so memory is
/// bounded by the processes of the window.
public struct TopHistory: Sendable {
    public let capacity: Int
    public private(set) var all: [RateSeries]
    public private(set) var perProcess: [UInt32: [RateSeries]] = [:]
    private var lastSeen: [UInt32: Int] = [:]
    private var tick = 0

    public init(capacity: Int = 60) {
        self.capacity = max(1, capacity)
        all = HistoryMetric.allCases.map { _ in RateSeries(capacity: max(1, capacity)) }
    }

    /// Adds one refresh: the totals and the table's rows (unfiltered).
    public mutating func append(invalidationsPerSec: Double, faultsPerSec: Double, stallP99: Double?, rows: [TopRow]) {
        tick += 1
        all[HistoryMetric.invalidations.rawValue].append(invalidationsPerSec)
        all[HistoryMetric.faults.rawValue].append(faultsPerSec)
        all[HistoryMetric.stallP99.rawValue].append(stallP99 ?? 0)
        var seen = Set<UInt32>()
        for r in rows {
            seen.insert(r.pid)
            var s = perProcess[r.pid] ?? HistoryMetric.allCases.map { _ in RateSeries(capacity: capacity) }
            s[HistoryMetric.invalidations.rawValue].append(r.invalidationsPerSec)
            s[HistoryMetric.faults.rawValue].append(r.faultsPerSec)
            s[HistoryMetric.stallP99.rawValue].append(r.stallP99 ?? 0)
            perProcess[r.pid] = s
            lastSeen[r.pid] = tick
        }
        // A process with no row this time had no activity: record zeros,
        // and forget it once its whole window is zeros.
        for (pid, var s) in perProcess where !seen.contains(pid) {
            if tick - (lastSeen[pid] ?? 0) >= capacity {
                perProcess[pid] = nil
                lastSeen[pid] = nil
                continue
            }
            for m in HistoryMetric.allCases { s[m.rawValue].append(0) }
            perProcess[pid] = s
        }
    }

    /// The series of one metric for a process (nil pid: all).
    public func series(_ m: HistoryMetric, pid: UInt32?) -> RateSeries {
        if let pid { return perProcess[pid]?[m.rawValue] ?? RateSeries(capacity: capacity) }
        return all[m.rawValue]
    }
}

public enum Sparkline {
    static let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    static let ascii: [Character] = ["_", ".", "-", "~", "=", "+", "*", "#"]

    /// The last `width` values as one character each, scaled to the largest
    /// of them (0 shows as a space, any non-zero value as at least the
    /// lowest block, the largest as the full block). Right-aligned: the newest sample is the last character.
    public static func render(_ values: [Double], width: Int, unicode: Bool = true) -> String {
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
