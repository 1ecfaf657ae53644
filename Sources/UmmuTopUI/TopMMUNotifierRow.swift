import UmmuKit

/// The mmu_notifier view: one row per process whose mm the stock kernel's
/// MMU-notifier core invalidated (or released, or aged) in the interval.
package struct TopMMUNotifierRow: TopViewRow {
    package var pid: UInt32
    package var command: String
    /// Invalidations per second, total and by reason (indexed by `Reason`).
    package var invalidationsPerSec: Double
    package var byReasonPerSec: [Double]
    /// Invalidations per second caused by another process or a kernel thread.
    package var notSelfPerSec: Double
    /// How long the range_start callbacks held the caller, ns (nil: no sample).
    package var callbackP50: Double?
    package var callbackP99: Double?
    /// mm releases (exit) in the interval.
    package var releases: UInt64
    /// Page-aging calls (clear/test young) per second.
    package var youngPerSec: Double
    /// The busiest cause of its invalidations.
    package var topCause: TopCause?

    package var id: UInt32 { pid }
    package static var view: TopViewKind { .mmuNotifier }

    package init(pid: UInt32, command: String, invalidationsPerSec: Double = 0,
                byReasonPerSec: [Double] = Array(repeating: 0, count: Reason.count), notSelfPerSec: Double = 0,
                callbackP50: Double? = nil, callbackP99: Double? = nil, releases: UInt64 = 0,
                youngPerSec: Double = 0, topCause: TopCause? = nil) {
        self.pid = pid
        self.command = command
        self.invalidationsPerSec = invalidationsPerSec
        self.byReasonPerSec = byReasonPerSec
        self.notSelfPerSec = notSelfPerSec
        self.callbackP50 = callbackP50
        self.callbackP99 = callbackP99
        self.releases = releases
        self.youngPerSec = youngPerSec
        self.topCause = topCause
    }

    package init(pid: UInt32, comm: String, _ m: ProcessMMUNotifier, in iv: Interval, topCause: TopCause?) {
        let rate = iv.rate
        self.init(pid: pid, command: Fmt.printable(comm), invalidationsPerSec: rate(m.totalInvalidations),
                  byReasonPerSec: TopReasons.perSecond(m.invalidations, rate),
                  notSelfPerSec: rate(Self.notSelf(m.byCause)),
                  callbackP50: m.startLatency.percentile(0.5), callbackP99: m.startLatency.percentile(0.99),
                  releases: m.releases, youngPerSec: rate(m.young), topCause: topCause)
    }

    /// Invalidations by another process or a kernel thread, from counts by `CauseKind`.
    static func notSelf(_ byCause: [UInt64]) -> UInt64 {
        CauseKind.allCases.filter { $0 != .owner && $0.rawValue < byCause.count }
            .reduce(0) { $0 &+ byCause[$1.rawValue] }
    }

    package static func rows(_ iv: Interval) -> [TopMMUNotifierRow] {
        let causes = TopCause.busiest(iv.causes)
        return iv.processes.compactMap { p in
            guard let m = p.mmuNotifier, !m.isIdle else { return nil }
            return TopMMUNotifierRow(pid: p.pid, comm: p.comm, m, in: iv, topCause: causes[p.pid])
        }
    }

    package func sortValue(_ key: TopSortKey) -> TopSortValue {
        switch key {
        case .invalidations: return .number(invalidationsPerSec)
        case .notSelf: return .number(notSelfPerSec)
        case .callbackP99: return .number(callbackP99)
        case .releases: return .number(Double(releases))
        case .young: return .number(youngPerSec)
        default: return .number(nil)
        }
    }

    package static let columns: [TopColumn<TopMMUNotifierRow>] =
        [.pid, .command,
         TopColumn(id: "inval", header: "INVAL/s", width: 8, priority: 0, sortKey: .invalidations) { TopFormat.rate($0.invalidationsPerSec) }]
        + TopColumn.reasons(priority: 3) { $0.byReasonPerSec }
        + [
            TopColumn(id: "notself", header: "NOT-SELF/s", width: 11, priority: 0, sortKey: .notSelf) { TopFormat.rate($0.notSelfPerSec) },
            TopColumn(id: "cb50", header: "CB50", width: 7, priority: 2) { TopFormat.latency($0.callbackP50) },
            TopColumn(id: "cb99", header: "CB99", width: 7, priority: 0, sortKey: .callbackP99) { TopFormat.latency($0.callbackP99) },
            TopColumn(id: "release", header: "RELEASE", width: 8, priority: 1, sortKey: .releases) { String($0.releases) },
            TopColumn(id: "young", header: "YOUNG/s", width: 8, priority: 1, sortKey: .young) { TopFormat.rate($0.youngPerSec) },
            TopColumn(id: "cause", header: "CAUSE", width: 16, priority: 2, leftAligned: true) { $0.topCause?.text ?? "-" },
            TopColumn(id: "share", header: "CAUSE%", width: 6, priority: 2) { $0.topCause.map { TopFormat.share($0.sharePercent) } ?? "-" },
        ]
}
