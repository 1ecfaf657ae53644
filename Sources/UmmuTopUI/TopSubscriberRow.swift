import UmmuKit

/// The subscribers view: one row per process and MMU-notifier subscriber
/// of its mm (kvm, ummunotify, ...) that was called in the interval.
package struct TopSubscriberRow: TopViewRow {
    package var id: SubscriberKey
    package var pid: UInt32 { id.owner }
    package var command: String
    /// Module name ("kvm") or, built in, the ops symbol; safe for a terminal.
    package var subscriber: String
    /// "notifier" (mmu_notifier_register) or "interval" (an interval notifier).
    package var kind: String
    package var invalidationsPerSec: Double
    package var byReasonPerSec: [Double]
    package var releases: UInt64
    package var youngPerSec: Double
    /// The busiest cause of the process's invalidations (all subscribers see them).
    package var topCause: TopCause?

    package static var view: TopViewKind { .subscribers }

    package init(id: SubscriberKey, command: String, subscriber: String, invalidationsPerSec: Double = 0,
                byReasonPerSec: [Double] = Array(repeating: 0, count: Reason.count), releases: UInt64 = 0,
                youngPerSec: Double = 0, topCause: TopCause? = nil) {
        self.id = id
        self.command = command
        self.subscriber = subscriber
        kind = id.interval ? "interval" : "notifier"
        self.invalidationsPerSec = invalidationsPerSec
        self.byReasonPerSec = byReasonPerSec
        self.releases = releases
        self.youngPerSec = youngPerSec
        self.topCause = topCause
    }

    package init(_ e: SubscriberEntry, comm: String, in iv: Interval, topCause: TopCause?) {
        let rate = iv.rate
        let r = e.row
        self.init(id: e.key, command: Fmt.printable(comm),
                  subscriber: Fmt.printable(r.name.isEmpty ? (r.symbol.isEmpty ? "?" : r.symbol) : r.name),
                  invalidationsPerSec: rate(r.totalInvalidations),
                  byReasonPerSec: TopReasons.perSecond(r.invalidations, rate),
                  releases: r.releases, youngPerSec: rate(r.young), topCause: topCause)
    }

    package static func rows(_ iv: Interval) -> [TopSubscriberRow] {
        var comms: [UInt32: String] = [:]
        for p in iv.processes { comms[p.pid] = p.comm }
        let causes = TopCause.busiest(iv.causes)
        return iv.subscribers.map {
            TopSubscriberRow($0, comm: comms[$0.key.owner] ?? "", in: iv, topCause: causes[$0.key.owner])
        }
    }

    package func sortValue(_ key: TopSortKey) -> TopSortValue {
        switch key {
        case .subscriber: return .text(subscriber)
        case .invalidations: return .number(invalidationsPerSec)
        case .releases: return .number(Double(releases))
        case .young: return .number(youngPerSec)
        default: return .number(nil)
        }
    }

    package static let columns: [TopColumn<TopSubscriberRow>] =
        [.pid, .command,
         TopColumn(id: "subscriber", header: "SUBSCRIBER", width: 12, priority: 0, leftAligned: true, sortKey: .subscriber) { $0.subscriber },
         TopColumn(id: "kind", header: "KIND", width: 8, priority: 1, leftAligned: true) { $0.kind },
         TopColumn(id: "inval", header: "INVAL/s", width: 8, priority: 0, sortKey: .invalidations) { TopFormat.rate($0.invalidationsPerSec) }]
        + TopColumn.reasons(priority: 3) { $0.byReasonPerSec }
        + [
            TopColumn(id: "release", header: "RELEASE", width: 8, priority: 1, sortKey: .releases) { String($0.releases) },
            TopColumn(id: "young", header: "YOUNG/s", width: 8, priority: 1, sortKey: .young) { TopFormat.rate($0.youngPerSec) },
            TopColumn(id: "cause", header: "CAUSE", width: 16, priority: 0, leftAligned: true) { $0.topCause?.text ?? "-" },
            TopColumn(id: "share", header: "CAUSE%", width: 6, priority: 2) { $0.topCause.map { TopFormat.share($0.sharePercent) } ?? "-" },
        ]
}
