/// The per-process table of `ummutop`: rows with rates computed from one
/// `Interval`, sort keys, a pid/command filter and the column layout that
/// fits a given width. Pure logic (no terminal), shared by the ncurses
/// screen, the batch output and the benchmark.

/// One process over one interval, in display units (per second, ns).
public struct TopRow: Sendable, Equatable {
    public var pid: UInt32
    public var command: String
    /// Invalidations per second, total and by reason (indexed by `Reason`).
    public var invalidationsPerSec: Double
    public var byReasonPerSec: [Double]
    /// Gauges.
    public var registrations: UInt64
    public var pending: UInt64
    /// umem faults per second (all faults, and those that waited).
    public var faultsPerSec: Double
    public var waitedPerSec: Double
    /// Latency percentiles in ns (nil: no sample in the interval).
    public var serviceP50: Double?
    public var serviceP99: Double?
    public var stallP50: Double?
    public var stallP99: Double?

    public init(pid: UInt32, command: String, invalidationsPerSec: Double = 0,
                byReasonPerSec: [Double] = Array(repeating: 0, count: Reason.count),
                registrations: UInt64 = 0, pending: UInt64 = 0, faultsPerSec: Double = 0,
                waitedPerSec: Double = 0, serviceP50: Double? = nil, serviceP99: Double? = nil,
                stallP50: Double? = nil, stallP99: Double? = nil) {
        self.pid = pid
        self.command = command
        self.invalidationsPerSec = invalidationsPerSec
        self.byReasonPerSec = byReasonPerSec
        self.registrations = registrations
        self.pending = pending
        self.faultsPerSec = faultsPerSec
        self.waitedPerSec = waitedPerSec
        self.serviceP50 = serviceP50
        self.serviceP99 = serviceP99
        self.stallP50 = stallP50
        self.stallP99 = stallP99
    }

    /// The row of one process of an interval.
    public init(_ p: ProcessRow, in iv: Interval) {
        let secs = iv.durationSeconds
        func rate(_ v: UInt64) -> Double { secs > 0 ? Double(v) / secs : 0 }
        pid = p.pid
        command = p.comm
        if let u = p.ummunotify {
            byReasonPerSec = u.invalidations.map(rate)
            while byReasonPerSec.count < Reason.count { byReasonPerSec.append(0) }
            invalidationsPerSec = rate(u.totalInvalidations)
            registrations = u.registrationsHeld
        } else {
            byReasonPerSec = Array(repeating: 0, count: Reason.count)
            invalidationsPerSec = 0
            registrations = 0
        }
        if let m = p.umem {
            faultsPerSec = rate(m.faults)
            waitedPerSec = rate(m.faultsWaited)
            pending = m.pendingRequests
            serviceP50 = m.serviceLatency.percentile(0.5)
            serviceP99 = m.serviceLatency.percentile(0.99)
            stallP50 = m.stallLatency.percentile(0.5)
            stallP99 = m.stallLatency.percentile(0.99)
        } else {
            faultsPerSec = 0
            waitedPerSec = 0
            pending = 0
        }
    }

    /// Invalidations/s of one reason (0 for an unknown index).
    public func reasonRate(_ r: Reason) -> Double {
        r.rawValue < byReasonPerSec.count ? byReasonPerSec[r.rawValue] : 0
    }

    /// Reasons other than the four the table shows in their own columns.
    public var otherReasonsPerSec: Double {
        Reason.allCases.filter { ![.unmap, .clear, .protectionVMA, .protectionPage].contains($0) }
            .reduce(0) { $0 + reasonRate($1) }
    }
}

/// What the table is sorted by. Numeric keys sort busiest first; pid and
/// command sort ascending. Ties break on pid.
public enum TopSortKey: String, CaseIterable, Sendable {
    case pid, command, invalidations, registrations, faults, serviceP99, stallP99, pending

    /// The key that selects it in the interactive view.
    public var key: Character {
        switch self {
        case .pid: return "n"
        case .command: return "c"
        case .invalidations: return "i"
        case .registrations: return "r"
        case .faults: return "u"
        case .serviceP99: return "v"
        case .stallP99: return "s"
        case .pending: return "w"
        }
    }

    /// Short label for the footer and the batch header.
    public var label: String {
        switch self {
        case .pid: return "pid"
        case .command: return "command"
        case .invalidations: return "inval/s"
        case .registrations: return "regs"
        case .faults: return "faults/s"
        case .serviceP99: return "svc p99"
        case .stallP99: return "stall p99"
        case .pending: return "pending"
        }
    }

    public static func forKey(_ c: Character) -> TopSortKey? {
        allCases.first { $0.key == c }
    }

    /// Parses a command-line name ("inval", "faults", "stall", ... or the key letter).
    public static func parse(_ s: String) -> TopSortKey? {
        let l = s.lowercased()
        if l.count == 1, let c = l.first, let k = forKey(c) { return k }
        switch l {
        case "pid": return .pid
        case "command", "comm", "cmd": return .command
        case "inval", "invalidations", "inval/s": return .invalidations
        case "regs", "registrations": return .registrations
        case "faults", "faults/s", "umem": return .faults
        case "service", "svc", "service_p99", "svc_p99": return .serviceP99
        case "stall", "stall_p99": return .stallP99
        case "pending", "pend": return .pending
        default: return nil
        }
    }

    var ascendingByDefault: Bool { self == .pid || self == .command }

    /// The previous/next key in footer order (the `<` and `>` keys).
    public func cycled(by step: Int) -> TopSortKey {
        let all = TopSortKey.allCases
        let i = all.firstIndex(of: self) ?? 0
        let n = all.count
        return all[((i + step) % n + n) % n]
    }
}

/// Filter by pid or command: comma- or space-separated terms, a row matches
/// when any term matches. A term of digits matches pids that start with it;
/// any term matches commands that contain it (case-insensitive).
public struct TopFilter: Sendable, Equatable {
    public let text: String
    let terms: [String]

    public init(_ text: String) {
        self.text = text
        terms = text.lowercased().split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    public var isEmpty: Bool { terms.isEmpty }

    public func matches(pid: UInt32, command: String) -> Bool {
        if terms.isEmpty { return true }
        let p = String(pid)
        let c = command.lowercased()
        for t in terms {
            if t.allSatisfy({ $0.isASCII && $0.isNumber }) && p.hasPrefix(t) { return true }
            if c.contains(t) { return true }
        }
        return false
    }
}

public enum TopSort {
    /// Sorts rows by key; `reversed` flips the key's natural direction.
    public static func sorted(_ rows: [TopRow], by key: TopSortKey, reversed: Bool = false) -> [TopRow] {
        func cmp(_ a: Double?, _ b: Double?) -> Int {
            switch (a, b) {
            case let (x?, y?): return x < y ? -1 : (x > y ? 1 : 0)
            case (nil, .some): return -1  // no sample sorts below any sample
            case (.some, nil): return 1
            case (nil, nil): return 0
            }
        }
        func order(_ a: TopRow, _ b: TopRow) -> Int {
            switch key {
            case .pid: return a.pid < b.pid ? -1 : (a.pid > b.pid ? 1 : 0)
            case .command: return a.command < b.command ? -1 : (a.command > b.command ? 1 : 0)
            case .invalidations: return cmp(a.invalidationsPerSec, b.invalidationsPerSec)
            case .registrations: return cmp(Double(a.registrations), Double(b.registrations))
            case .faults: return cmp(a.faultsPerSec, b.faultsPerSec)
            case .serviceP99: return cmp(a.serviceP99, b.serviceP99)
            case .stallP99: return cmp(a.stallP99, b.stallP99)
            case .pending: return cmp(Double(a.pending), Double(b.pending))
            }
        }
        let ascending = key.ascendingByDefault != reversed
        return rows.sorted { a, b in
            let o = order(a, b)
            if o != 0 { return ascending ? o < 0 : o > 0 }
            return a.pid < b.pid
        }
    }
}

/// A table column: header, width, priority (lower is dropped last when the
/// terminal is narrow) and how a row shows in it.
public struct TopColumn: Sendable {
    public let id: String
    public let header: String
    public let width: Int
    public let priority: Int
    public let leftAligned: Bool
    public let sortKey: TopSortKey?
    let cell: @Sendable (TopRow) -> String

    public func text(_ r: TopRow) -> String { cell(r) }

    public static let all: [TopColumn] = [
        TopColumn(id: "pid", header: "PID", width: 7, priority: 0, leftAligned: false, sortKey: .pid) { String($0.pid) },
        TopColumn(id: "command", header: "COMMAND", width: 15, priority: 0, leftAligned: true, sortKey: .command) { $0.command },
        TopColumn(id: "inval", header: "INVAL/s", width: 8, priority: 0, leftAligned: false, sortKey: .invalidations) { TopFormat.rate($0.invalidationsPerSec) },
        TopColumn(id: "unmap", header: "UNMAP", width: 6, priority: 3, leftAligned: false, sortKey: nil) { TopFormat.rate($0.reasonRate(.unmap)) },
        TopColumn(id: "clear", header: "CLEAR", width: 6, priority: 3, leftAligned: false, sortKey: nil) { TopFormat.rate($0.reasonRate(.clear)) },
        TopColumn(id: "protv", header: "PROTV", width: 6, priority: 4, leftAligned: false, sortKey: nil) { TopFormat.rate($0.reasonRate(.protectionVMA)) },
        TopColumn(id: "protp", header: "PROTP", width: 6, priority: 4, leftAligned: false, sortKey: nil) { TopFormat.rate($0.reasonRate(.protectionPage)) },
        TopColumn(id: "other", header: "OTHER", width: 6, priority: 5, leftAligned: false, sortKey: nil) { TopFormat.rate($0.otherReasonsPerSec) },
        TopColumn(id: "regs", header: "REGS", width: 6, priority: 1, leftAligned: false, sortKey: .registrations) { String($0.registrations) },
        TopColumn(id: "faults", header: "FAULT/s", width: 8, priority: 0, leftAligned: false, sortKey: .faults) { TopFormat.rate($0.faultsPerSec) },
        TopColumn(id: "svc50", header: "SVC50", width: 7, priority: 2, leftAligned: false, sortKey: nil) { TopFormat.latency($0.serviceP50) },
        TopColumn(id: "svc99", header: "SVC99", width: 7, priority: 1, leftAligned: false, sortKey: .serviceP99) { TopFormat.latency($0.serviceP99) },
        TopColumn(id: "stl50", header: "STALL50", width: 8, priority: 2, leftAligned: false, sortKey: nil) { TopFormat.latency($0.stallP50) },
        TopColumn(id: "stl99", header: "STALL99", width: 8, priority: 0, leftAligned: false, sortKey: .stallP99) { TopFormat.latency($0.stallP99) },
        TopColumn(id: "pend", header: "PEND", width: 5, priority: 1, leftAligned: false, sortKey: .pending) { String($0.pending) },
    ]

    /// The columns that fit in `width` characters (one space between
    /// columns), dropping the highest priority numbers first, in table order.
    public static func fitting(_ width: Int) -> [TopColumn] {
        var cols = all
        func used(_ c: [TopColumn]) -> Int { c.reduce(0) { $0 + $1.width } + max(0, c.count - 1) }
        while used(cols) > width, let worst = cols.map(\.priority).max(), worst > 0 {
            // Drop the rightmost column of the worst priority.
            if let i = cols.lastIndex(where: { $0.priority == worst }) { cols.remove(at: i) }
        }
        return cols
    }

    /// The header line of these columns, the sorted one marked.
    public static func headerLine(_ cols: [TopColumn], sortedBy key: TopSortKey?) -> String {
        cols.map { c in
            let h = c.sortKey != nil && c.sortKey == key ? c.header + "*" : c.header
            return TopFormat.fit(h, c.width, left: c.leftAligned)
        }.joined(separator: " ")
    }

    public static func line(_ cols: [TopColumn], _ r: TopRow) -> String {
        cols.map { TopFormat.fit($0.text(r), $0.width, left: $0.leftAligned) }.joined(separator: " ")
    }
}

/// Display formats of the table and header.
public enum TopFormat {
    /// Rates: "0", "3.5", "42", "1.2K".
    public static func rate(_ x: Double) -> String {
        if !x.isFinite || x <= 0 { return "0" }
        if x < 10 { return trimmed(Fmt.fixed(x, 1)) }
        if x < 10_000 { return Fmt.fixed(x, 0) }
        return Fmt.human(x)
    }

    /// Latency in ns as "850ns", "12us", "1.5ms", "2.0s"; "-" without samples.
    public static func latency(_ ns: Double?) -> String {
        guard let ns, ns.isFinite, ns >= 0 else { return "-" }
        if ns < 1_000 { return Fmt.fixed(ns, 0) + "ns" }
        if ns < 1_000_000 { return scaled(ns / 1e3) + "us" }
        if ns < 1_000_000_000 { return scaled(ns / 1e6) + "ms" }
        return scaled(ns / 1e9) + "s"
    }

    static func scaled(_ v: Double) -> String { v < 10 ? Fmt.fixed(v, 1) : Fmt.fixed(v, 0) }

    static func trimmed(_ s: String) -> String { s.hasSuffix(".0") ? String(s.dropLast(2)) : s }

    /// Pads or truncates to exactly `width` characters.
    public static func fit(_ s: String, _ width: Int, left: Bool = false) -> String {
        if width <= 0 { return "" }
        let n = s.count
        if n > width { return String(s.prefix(width)) }
        let fill = String(repeating: " ", count: width - n)
        return left ? s + fill : fill + s
    }
}

/// The table model: rows of the last interval, sort, filter and selection.
public struct TopTable: Sendable {
    public var sortKey: TopSortKey
    public var reversed = false
    public var filter = TopFilter("")
    /// The selected process (nil: "all"); follows the pid across re-sorts.
    public var selectedPID: UInt32?
    /// All rows of the last interval, unfiltered and unsorted.
    public private(set) var allRows: [TopRow] = []
    /// Filtered and sorted.
    public private(set) var rows: [TopRow] = []

    public init(sortKey: TopSortKey = .invalidations) {
        self.sortKey = sortKey
    }

    public mutating func update(_ iv: Interval) {
        allRows = iv.processes.map { TopRow($0, in: iv) }
        refresh()
    }

    public mutating func update(rows: [TopRow]) {
        allRows = rows
        refresh()
    }

    /// Re-applies filter and sort (after a key changed either).
    public mutating func refresh() {
        let kept = filter.isEmpty ? allRows : allRows.filter { filter.matches(pid: $0.pid, command: $0.command) }
        rows = TopSort.sorted(kept, by: sortKey, reversed: reversed)
        if let s = selectedPID, !rows.contains(where: { $0.pid == s }) { selectedPID = nil }
    }

    public mutating func sort(by key: TopSortKey) {
        if key == sortKey { reversed.toggle() } else { sortKey = key; reversed = false }
        refresh()
    }

    public mutating func setFilter(_ text: String) {
        filter = TopFilter(text)
        refresh()
    }

    public var selectedIndex: Int? {
        selectedPID.flatMap { s in rows.firstIndex { $0.pid == s } }
    }

    /// Moves the selection by `step` rows; from "all", down selects the
    /// first row. Moving up from the first row goes back to "all".
    public mutating func moveSelection(_ step: Int) {
        guard !rows.isEmpty else { selectedPID = nil; return }
        guard let i = selectedIndex else {
            if step > 0 { selectedPID = rows[min(step - 1, rows.count - 1)].pid }
            return
        }
        let j = i + step
        if j < 0 { selectedPID = nil; return }
        selectedPID = rows[min(j, rows.count - 1)].pid
    }
}
