import UmmuKit

/// The table model of ummutop's views: rows with rates computed from one
/// `Interval`, sort keys, a pid/command filter and the selection. Pure
/// logic (no terminal), shared by the ncurses screen, the batch output and
/// the benchmark.

/// A row of one view, in display units (per second, ns).
package protocol TopViewRow: Identifiable, Sendable, Equatable where ID: Sendable {
    static var view: TopViewKind { get }
    /// Every column, in table order.
    static var columns: [TopColumn<Self>] { get }
    /// The view's rows of an interval.
    static func rows(_ iv: Interval) -> [Self]
    var pid: UInt32 { get }
    /// The process's name, safe for a terminal.
    var command: String { get }
    /// The value under a sort key of the view other than pid and command.
    func sortValue(_ key: TopSortKey) -> TopSortValue
}

/// Filter by pid or command: comma- or space-separated terms, a row matches
/// when any term matches. A term of digits matches pids that start with it;
/// any term matches commands that contain it (case-insensitive).
package struct TopFilter: Sendable, Equatable {
    package let text: String
    let terms: [String]

    package init(_ text: String) {
        self.text = text
        terms = text.lowercased().split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }

    package var isEmpty: Bool { terms.isEmpty }

    package func matches(pid: UInt32, command: String) -> Bool {
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

enum TopSort {
    /// Sorts rows by key; `reversed` flips the key's natural direction.
    /// Ties break on pid, then on the rows' original order.
    static func sorted<Row: TopViewRow>(_ rows: [Row], by key: TopSortKey, reversed: Bool = false) -> [Row] {
        func value(_ r: Row) -> TopSortValue {
            switch key {
            case .pid: return .number(Double(r.pid))
            case .command: return .text(r.command)
            default: return r.sortValue(key)
            }
        }
        let ascending = key.ascendingByDefault != reversed
        let keyed = rows.enumerated().map { (index: $0.offset, value: value($0.element), row: $0.element) }
        return keyed.sorted { a, b in
            let o = a.value.compare(b.value)
            if o != 0 { return ascending ? o < 0 : o > 0 }
            if a.row.pid != b.row.pid { return a.row.pid < b.row.pid }
            return a.index < b.index
        }.map(\.row)
    }
}

/// One view's table: rows of the last interval, sort, filter and selection.
package struct TopViewTable<Row: TopViewRow>: Sendable {
    package private(set) var sortKey: TopSortKey
    package private(set) var reversed = false
    package private(set) var filter = TopFilter("")
    /// The selected row (nil: "all"); follows the row across re-sorts.
    package private(set) var selectedID: Row.ID?
    /// All rows of the last interval, unfiltered and unsorted.
    package private(set) var allRows: [Row] = []
    /// Filtered and sorted.
    package private(set) var rows: [Row] = []
    /// Processes among all rows.
    package private(set) var processCount = 0

    /// `sortKey` must be one of the view's (else its default is used).
    package init(sortKey: TopSortKey? = nil) {
        let k = sortKey ?? Row.view.defaultSort
        self.sortKey = Row.view.sortKeys.contains(k) ? k : Row.view.defaultSort
    }

    package mutating func update(_ iv: Interval) {
        update(rows: Row.rows(iv))
    }

    package mutating func update(rows: [Row]) {
        allRows = rows
        var pids = Set<UInt32>()
        for r in rows { pids.insert(r.pid) }
        processCount = pids.count
        refresh()
    }

    /// Re-applies filter and sort (after a key changed either).
    mutating func refresh() {
        let kept = filter.isEmpty ? allRows : allRows.filter { filter.matches(pid: $0.pid, command: $0.command) }
        rows = TopSort.sorted(kept, by: sortKey, reversed: reversed)
        if let s = selectedID, !rows.contains(where: { $0.id == s }) { selectedID = nil }
    }

    /// Sorts by `key` (one of the view's; others are ignored); the same key
    /// again reverses the order.
    package mutating func sort(by key: TopSortKey) {
        guard Row.view.sortKeys.contains(key) else { return }
        if key == sortKey { reversed.toggle() } else { sortKey = key; reversed = false }
        refresh()
    }

    /// The previous/next sort key of the view.
    package mutating func cycleSort(_ step: Int) {
        sort(by: sortKey.cycled(by: step, in: Row.view))
    }

    package mutating func reverse() {
        reversed.toggle()
        refresh()
    }

    package mutating func setFilter(_ text: String) {
        filter = TopFilter(text)
        refresh()
    }

    package var selectedIndex: Int? {
        selectedID.flatMap { s in rows.firstIndex { $0.id == s } }
    }

    package var selectedRow: Row? { selectedIndex.map { rows[$0] } }

    package var selectedPID: UInt32? { selectedRow?.pid }

    package mutating func clearSelection() { selectedID = nil }

    /// Moves the selection by `step` rows; from "all", down selects the
    /// first row. Moving up from the first row goes back to "all".
    package mutating func moveSelection(_ step: Int) {
        guard !rows.isEmpty else { selectedID = nil; return }
        guard let i = selectedIndex else {
            if step > 0 { selectedID = rows[min(step - 1, rows.count - 1)].id }
            return
        }
        let j = i + step
        if j < 0 { selectedID = nil; return }
        selectedID = rows[min(j, rows.count - 1)].id
    }
}

/// The drivers view's table, ummutop's first (and once only) view.
package typealias TopTable = TopViewTable<TopDriverRow>
