import UmmuKit

/// The drivers view: one row per process that used /dev/ummunotify or
/// /dev/umem in the interval.
package struct TopDriverRow: TopViewRow {
    package var pid: UInt32
    package var command: String
    /// Invalidations per second, total and by reason (indexed by `Reason`).
    package var invalidationsPerSec: Double
    package var byReasonPerSec: [Double]
    /// Gauges.
    package var registrations: UInt64
    package var pending: UInt64
    /// umem faults per second (all faults, and those that waited).
    package var faultsPerSec: Double
    package var waitedPerSec: Double
    /// Latency percentiles in ns (nil: no sample in the interval).
    package var serviceP50: Double?
    package var serviceP99: Double?
    package var stallP50: Double?
    package var stallP99: Double?

    package var id: UInt32 { pid }
    package static var view: TopViewKind { .drivers }

    package init(pid: UInt32, command: String, invalidationsPerSec: Double = 0,
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
    package init(_ p: ProcessRow, in iv: Interval) {
        let rate = iv.rate
        pid = p.pid
        command = Fmt.printable(p.comm)
        if let u = p.ummunotify {
            byReasonPerSec = TopReasons.perSecond(u.invalidations, rate)
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

    /// Processes with driver activity or a non-zero driver gauge.
    package static func rows(_ iv: Interval) -> [TopDriverRow] {
        iv.processes.filter { !($0.ummunotify?.isIdle ?? true) || !($0.umem?.isIdle ?? true) }
            .map { TopDriverRow($0, in: iv) }
    }

    package func sortValue(_ key: TopSortKey) -> TopSortValue {
        switch key {
        case .invalidations: return .number(invalidationsPerSec)
        case .registrations: return .number(Double(registrations))
        case .faults: return .number(faultsPerSec)
        case .serviceP99: return .number(serviceP99)
        case .stallP99: return .number(stallP99)
        case .pending: return .number(Double(pending))
        default: return .number(nil)
        }
    }

    /// Invalidations/s of one reason (0 for an unknown index).
    package func reasonRate(_ r: Reason) -> Double { TopReasons.rate(byReasonPerSec, r) }

    /// Reasons other than the four the table shows in their own columns.
    package var otherReasonsPerSec: Double { TopReasons.other(byReasonPerSec) }

    package static let columns: [TopColumn<TopDriverRow>] =
        [.pid, .command,
         TopColumn(id: "inval", header: "INVAL/s", width: 8, priority: 0, sortKey: .invalidations) { TopFormat.rate($0.invalidationsPerSec) }]
        + TopColumn.reasons(priority: 3) { $0.byReasonPerSec }
        + [
            TopColumn(id: "regs", header: "REGS", width: 6, priority: 1, sortKey: .registrations) { String($0.registrations) },
            TopColumn(id: "faults", header: "FAULT/s", width: 8, priority: 0, sortKey: .faults) { TopFormat.rate($0.faultsPerSec) },
            TopColumn(id: "svc50", header: "SVC50", width: 7, priority: 2) { TopFormat.latency($0.serviceP50) },
            TopColumn(id: "svc99", header: "SVC99", width: 7, priority: 1, sortKey: .serviceP99) { TopFormat.latency($0.serviceP99) },
            TopColumn(id: "stl50", header: "STALL50", width: 8, priority: 2) { TopFormat.latency($0.stallP50) },
            TopColumn(id: "stl99", header: "STALL99", width: 8, priority: 0, sortKey: .stallP99) { TopFormat.latency($0.stallP99) },
            TopColumn(id: "pend", header: "PEND", width: 5, priority: 1, sortKey: .pending) { String($0.pending) },
        ]
}
