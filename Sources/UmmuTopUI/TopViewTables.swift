import UmmuKit

/// The four views' tables and which one is shown.

/// What the screen and the batch output need of whichever view's table is
/// shown, whatever its rows.
package protocol TopTableModel: Sendable {
    var view: TopViewKind { get }
    var sortKey: TopSortKey { get }
    var reversed: Bool { get }
    var filter: TopFilter { get }
    /// Rows shown (filtered).
    var rowCount: Int { get }
    /// Processes among all rows (unfiltered).
    var processCount: Int { get }
    var selectedIndex: Int? { get }
    var selectedPID: UInt32? { get }
    mutating func update(_ iv: Interval)
    mutating func sort(by key: TopSortKey)
    mutating func cycleSort(_ step: Int)
    mutating func reverse()
    mutating func setFilter(_ text: String)
    mutating func moveSelection(_ step: Int)
    mutating func clearSelection()
    /// The column header line of the columns that fit `width`.
    func headerLine(width: Int) -> String
    /// Up to `count` shown rows from `start`, as lines of the columns that fit `width`.
    func lines(width: Int, from start: Int, count: Int) -> [String]
}

extension TopViewTable: TopTableModel {
    package var view: TopViewKind { Row.view }
    package var rowCount: Int { rows.count }

    package func headerLine(width: Int) -> String {
        TopColumn<Row>.headerLine(TopColumn<Row>.fitting(width), sortedBy: sortKey)
    }

    package func lines(width: Int, from start: Int, count: Int) -> [String] {
        let cols = TopColumn<Row>.fitting(width)
        let lo = max(0, min(start, rows.count))
        let hi = max(lo, min(rows.count, lo + max(0, count)))
        return rows[lo..<hi].map { TopColumn<Row>.line(cols, $0) }
    }
}

/// Every view's table, one shown. Only the shown one is computed each
/// interval; switching computes the new one from the last interval. The
/// filter is common to all views; sort and selection are each view's.
package struct TopViewTables: Sendable {
    package private(set) var view: TopViewKind
    package private(set) var drivers = TopViewTable<TopDriverRow>()
    package private(set) var mmuNotifier = TopViewTable<TopMMUNotifierRow>()
    package private(set) var subscribers = TopViewTable<TopSubscriberRow>()
    package private(set) var userfaultfd = TopViewTable<TopUserfaultfdRow>()
    package private(set) var lastInterval: Interval?

    /// `sortKey` sorts the starting view (when it is one of its keys).
    package init(view: TopViewKind, sortKey: TopSortKey? = nil, filter: String = "") {
        self.view = view
        switch view {
        case .drivers: drivers = TopViewTable(sortKey: sortKey)
        case .mmuNotifier: mmuNotifier = TopViewTable(sortKey: sortKey)
        case .subscribers: subscribers = TopViewTable(sortKey: sortKey)
        case .userfaultfd: userfaultfd = TopViewTable(sortKey: sortKey)
        }
        setFilter(filter)
    }

    /// The shown view's table.
    package var current: any TopTableModel {
        switch view {
        case .drivers: return drivers
        case .mmuNotifier: return mmuNotifier
        case .subscribers: return subscribers
        case .userfaultfd: return userfaultfd
        }
    }

    /// Runs `body` on the shown view's table and keeps what it changed.
    @discardableResult
    package mutating func withCurrent<T>(_ body: (inout any TopTableModel) -> T) -> T {
        switch view {
        case .drivers: return Self.change(&drivers, body)
        case .mmuNotifier: return Self.change(&mmuNotifier, body)
        case .subscribers: return Self.change(&subscribers, body)
        case .userfaultfd: return Self.change(&userfaultfd, body)
        }
    }

    private static func change<Table: TopTableModel, T>(_ table: inout Table,
                                                        _ body: (inout any TopTableModel) -> T) -> T {
        var any: any TopTableModel = table
        let result = body(&any)
        if let changed = any as? Table { table = changed }
        return result
    }

    /// A new interval: the shown view's rows.
    package mutating func update(_ iv: Interval) {
        lastInterval = iv
        withCurrent { $0.update(iv) }
    }

    /// Shows `view`, its rows from the last interval.
    package mutating func show(_ view: TopViewKind) {
        self.view = view
        if let iv = lastInterval { withCurrent { $0.update(iv) } }
    }

    /// The filter of every view.
    package mutating func setFilter(_ text: String) {
        drivers.setFilter(text)
        mmuNotifier.setFilter(text)
        subscribers.setFilter(text)
        userfaultfd.setFilter(text)
    }
}
