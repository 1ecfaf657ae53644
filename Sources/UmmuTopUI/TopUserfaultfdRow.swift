import UmmuKit

/// The userfaultfd view: one row per process that faulted on a userfaultfd
/// range, resolved faults with its ioctls, or has a fault waiting.
package struct TopUserfaultfdRow: TopViewRow {
    package var pid: UInt32
    package var command: String
    /// Faults per second, total and by kind (indexed by `UffdKind`).
    package var faultsPerSec: Double
    package var byKindPerSec: [Double]
    /// Stall (fault entered -> returned) percentiles, ns (nil: no sample).
    package var stallP50: Double?
    package var stallP99: Double?
    /// Gauge: faults entered and not yet returned.
    package var waiting: UInt64
    /// Resolving ioctls per second, total and by op (indexed by `UffdOp`).
    package var opsPerSec: Double
    package var byOpPerSec: [Double]
    /// Pages the ioctls resolved per second (bytes / 4 KiB).
    package var pagesPerSec: Double
    /// Ioctls that resolved nothing, in the interval.
    package var failedOps: UInt64

    package var id: UInt32 { pid }
    package static var view: TopViewKind { .userfaultfd }

    package init(pid: UInt32, command: String, faultsPerSec: Double = 0,
                byKindPerSec: [Double] = Array(repeating: 0, count: UffdKind.count),
                stallP50: Double? = nil, stallP99: Double? = nil, waiting: UInt64 = 0, opsPerSec: Double = 0,
                byOpPerSec: [Double] = Array(repeating: 0, count: UffdOp.count), pagesPerSec: Double = 0,
                failedOps: UInt64 = 0) {
        self.pid = pid
        self.command = command
        self.faultsPerSec = faultsPerSec
        self.byKindPerSec = byKindPerSec
        self.stallP50 = stallP50
        self.stallP99 = stallP99
        self.waiting = waiting
        self.opsPerSec = opsPerSec
        self.byOpPerSec = byOpPerSec
        self.pagesPerSec = pagesPerSec
        self.failedOps = failedOps
    }

    package init(pid: UInt32, comm: String, _ u: ProcessUserfaultfd, in iv: Interval) {
        let rate = iv.rate
        self.init(pid: pid, command: Fmt.printable(comm), faultsPerSec: rate(u.totalFaults),
                  byKindPerSec: UffdKind.allCases.map { rate(Self.at(u.faults, $0.rawValue)) },
                  stallP50: u.stall.percentile(0.5), stallP99: u.stall.percentile(0.99), waiting: u.waiting,
                  opsPerSec: rate(u.ops.reduce(0, &+)),
                  byOpPerSec: UffdOp.allCases.map { rate(Self.at(u.ops, $0.rawValue)) },
                  pagesPerSec: rate(u.opBytes.reduce(0, &+) / basePageSize), failedOps: u.opsFailed)
    }

    static func at(_ a: [UInt64], _ i: Int) -> UInt64 { i < a.count ? a[i] : 0 }
    static func at(_ a: [Double], _ i: Int) -> Double { i < a.count ? a[i] : 0 }

    package func kindRate(_ k: UffdKind) -> Double { Self.at(byKindPerSec, k.rawValue) }
    package func opRate(_ o: UffdOp) -> Double { Self.at(byOpPerSec, o.rawValue) }

    package static func rows(_ iv: Interval) -> [TopUserfaultfdRow] {
        iv.processes.compactMap { p in
            guard let u = p.userfaultfd, !u.isIdle else { return nil }
            return TopUserfaultfdRow(pid: p.pid, comm: p.comm, u, in: iv)
        }
    }

    package func sortValue(_ key: TopSortKey) -> TopSortValue {
        switch key {
        case .faults: return .number(faultsPerSec)
        case .stallP99: return .number(stallP99)
        case .waiting: return .number(Double(waiting))
        case .ops: return .number(opsPerSec)
        default: return .number(nil)
        }
    }

    package static let columns: [TopColumn<TopUserfaultfdRow>] = [
        .pid, .command,
        TopColumn(id: "faults", header: "FAULT/s", width: 8, priority: 0, sortKey: .faults) { TopFormat.rate($0.faultsPerSec) },
        TopColumn(id: "missing", header: "MISSING", width: 7, priority: 3) { TopFormat.rate($0.kindRate(.missing)) },
        TopColumn(id: "wp", header: "WP", width: 6, priority: 3) { TopFormat.rate($0.kindRate(.writeProtect)) },
        TopColumn(id: "minor", header: "MINOR", width: 6, priority: 3) { TopFormat.rate($0.kindRate(.minor)) },
        TopColumn(id: "stl50", header: "STALL50", width: 8, priority: 2) { TopFormat.latency($0.stallP50) },
        TopColumn(id: "stl99", header: "STALL99", width: 8, priority: 0, sortKey: .stallP99) { TopFormat.latency($0.stallP99) },
        TopColumn(id: "waiting", header: "WAITING", width: 8, priority: 0, sortKey: .waiting) { String($0.waiting) },
        TopColumn(id: "ops", header: "OPS/s", width: 7, priority: 1, sortKey: .ops) { TopFormat.rate($0.opsPerSec) },
        TopColumn(id: "copy", header: "COPY/s", width: 7, priority: 4) { TopFormat.rate($0.opRate(.copy)) },
        TopColumn(id: "zero", header: "ZERO/s", width: 7, priority: 4) { TopFormat.rate($0.opRate(.zeropage)) },
        TopColumn(id: "cont", header: "CONT/s", width: 7, priority: 4) { TopFormat.rate($0.opRate(.continue)) },
        TopColumn(id: "wprot", header: "WPROT/s", width: 8, priority: 5) { TopFormat.rate($0.opRate(.writeProtect)) },
        TopColumn(id: "move", header: "MOVE/s", width: 7, priority: 5) { TopFormat.rate($0.opRate(.move)) },
        TopColumn(id: "pages", header: "PAGES/s", width: 8, priority: 2) { TopFormat.rate($0.pagesPerSec) },
        TopColumn(id: "failed", header: "FAILED", width: 6, priority: 2) { String($0.failedOps) },
    ]
}
