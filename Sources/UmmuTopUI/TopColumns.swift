import UmmuKit

/// Table columns of ummutop's views and the display formats of their cells.

/// A column: header, width, priority (lower is dropped last when the
/// terminal is narrow), the sort key it shows, and how a row shows in it.
package struct TopColumn<Row>: Sendable {
    package let id: String
    package let header: String
    package let width: Int
    package let priority: Int
    package let leftAligned: Bool
    package let sortKey: TopSortKey?
    let cell: @Sendable (Row) -> String

    package init(id: String, header: String, width: Int, priority: Int, leftAligned: Bool = false,
                sortKey: TopSortKey? = nil, cell: @escaping @Sendable (Row) -> String) {
        self.id = id
        self.header = header
        self.width = width
        self.priority = priority
        self.leftAligned = leftAligned
        self.sortKey = sortKey
        self.cell = cell
    }

    package func text(_ r: Row) -> String { cell(r) }

    /// The columns of `all` that fit in `width` characters (one space
    /// between columns), dropping the highest priority numbers first, in
    /// table order.
    static func fit(_ all: [TopColumn], _ width: Int) -> [TopColumn] {
        var cols = all
        func used(_ c: [TopColumn]) -> Int { c.reduce(0) { $0 + $1.width } + max(0, c.count - 1) }
        while used(cols) > width, let worst = cols.map(\.priority).max(), worst > 0 {
            // Drop the rightmost column of the worst priority.
            if let i = cols.lastIndex(where: { $0.priority == worst }) { cols.remove(at: i) }
        }
        return cols
    }

    /// The header line of these columns, the sorted one marked with `*`.
    package static func headerLine(_ cols: [TopColumn], sortedBy key: TopSortKey?) -> String {
        cols.map { c in
            let h = c.sortKey != nil && c.sortKey == key ? c.header + "*" : c.header
            return TopFormat.fit(h, c.width, left: c.leftAligned)
        }.joined(separator: " ")
    }

    package static func line(_ cols: [TopColumn], _ r: Row) -> String {
        cols.map { TopFormat.fit($0.text(r), $0.width, left: $0.leftAligned) }.joined(separator: " ")
    }
}

extension TopColumn where Row: TopViewRow {
    /// The columns of the row's view that fit in `width` characters.
    package static func fitting(_ width: Int) -> [TopColumn] { fit(Row.columns, width) }

    static var pid: TopColumn {
        TopColumn(id: "pid", header: "PID", width: 7, priority: 0, sortKey: .pid) { String($0.pid) }
    }

    static var command: TopColumn {
        TopColumn(id: "command", header: "COMMAND", width: 15, priority: 0, leftAligned: true, sortKey: .command) { $0.command }
    }

    /// UNMAP CLEAR PROTV PROTP OTHER: invalidations/s by reason, from
    /// per-reason rates indexed by `Reason`.
    static func reasons(priority: Int, _ rates: @escaping @Sendable (Row) -> [Double]) -> [TopColumn] {
        let shown: [(String, String, Reason)] = [("unmap", "UNMAP", .unmap), ("clear", "CLEAR", .clear),
                                                 ("protv", "PROTV", .protectionVMA), ("protp", "PROTP", .protectionPage)]
        return shown.enumerated().map { i, c in
            TopColumn(id: c.0, header: c.1, width: 6, priority: priority + i / 2) {
                TopFormat.rate(TopReasons.rate(rates($0), c.2))
            }
        } + [TopColumn(id: "other", header: "OTHER", width: 6, priority: priority + 2) {
            TopFormat.rate(TopReasons.other(rates($0)))
        }]
    }
}

extension TopColumn where Row == TopDriverRow {
    /// The drivers view's columns that fit (its row type need not be named:
    /// `TopColumn.fitting(w)`).
    package static func fitting(_ width: Int) -> [TopColumn<TopDriverRow>] { fit(TopDriverRow.columns, width) }
}

/// Invalidation rates by reason, indexed by `Reason` (shorter arrays read 0).
enum TopReasons {
    /// The reasons the tables show in their own columns; `other` sums the rest.
    static let ownColumns: [Reason] = [.unmap, .clear, .protectionVMA, .protectionPage]

    static func rate(_ rates: [Double], _ r: Reason) -> Double {
        r.rawValue < rates.count ? rates[r.rawValue] : 0
    }

    static func other(_ rates: [Double]) -> Double {
        Reason.allCases.filter { !ownColumns.contains($0) }.reduce(0) { $0 + rate(rates, $1) }
    }

    /// Per-second rates of counts indexed by `Reason`, always `Reason.count` long.
    static func perSecond(_ counts: [UInt64], _ rate: (UInt64) -> Double) -> [Double] {
        Reason.allCases.map { $0.rawValue < counts.count ? rate(counts[$0.rawValue]) : 0 }
    }
}

/// Display formats of the tables and the header.
enum TopFormat {
    /// Rates: "0", "3.5", "42", "1.2K".
    static func rate(_ x: Double) -> String {
        if !x.isFinite || x <= 0 { return "0" }
        if x < 10 { return trimmed(Fmt.fixed(x, 1)) }
        if x < 10_000 { return Fmt.fixed(x, 0) }
        return Fmt.human(x)
    }

    /// Latency in ns as "850ns", "12us", "1.5ms", "2.0s"; "-" without samples.
    static func latency(_ ns: Double?) -> String {
        guard let ns, ns.isFinite, ns >= 0 else { return "-" }
        if ns < 1_000 { return Fmt.fixed(ns, 0) + "ns" }
        if ns < 1_000_000 { return scaled(ns / 1e3) + "us" }
        if ns < 1_000_000_000 { return scaled(ns / 1e6) + "ms" }
        return scaled(ns / 1e9) + "s"
    }

    /// A share in percent: "100%", "83%", "0.5%".
    static func share(_ x: Double) -> String {
        if !x.isFinite || x <= 0 { return "0%" }
        return (x < 10 ? trimmed(Fmt.fixed(x, 1)) : Fmt.fixed(x, 0)) + "%"
    }

    static func scaled(_ v: Double) -> String { v < 10 ? Fmt.fixed(v, 1) : Fmt.fixed(v, 0) }

    static func trimmed(_ s: String) -> String { s.hasSuffix(".0") ? String(s.dropLast(2)) : s }

    /// Pads or truncates to exactly `width` characters.
    static func fit(_ s: String, _ width: Int, left: Bool = false) -> String {
        if width <= 0 { return "" }
        let n = s.count
        if n > width { return String(s.prefix(width)) }
        let fill = String(repeating: " ", count: width - n)
        return left ? s + fill : fill + s
    }
}
