/// The stock-kernel sources' part of the model: the MMU-notifier core and
/// userfaultfd (bpf/mmu_notifier.bpf.c, bpf/userfaultfd.bpf.c). Same
/// conventions as Model.swift: cumulative in a Snapshot, differences in an
/// Interval; nanoseconds and bytes.

/// An enum whose cases have stable labels (JSON keys, Prometheus labels).
public protocol LabeledCase: CaseIterable {
    var name: String { get }
}

extension Reason: LabeledCase {}
extension FaultOutcome: LabeledCase {}
extension CauseKind: LabeledCase {}
extension YoungKind: LabeledCase {}
extension UffdKind: LabeledCase {}
extension UffdOutcome: LabeledCase {}
extension UffdOp: LabeledCase {}

/// Who made an invalidation happen, relative to the mm's owner.
public enum CauseKind: Int, CaseIterable, Sendable {
    case owner = 0, otherProcess, kernelThread

    public static let count = 3

    public var name: String {
        switch self {
        case .owner: return "self"
        case .otherProcess: return "other"
        case .kernelThread: return "kthread"
        }
    }
}

/// Page-aging calls (clear/test young) into the subscribers.
public enum YoungKind: Int, CaseIterable, Sendable {
    case clearFlush = 0, clear, test

    public static let count = 3

    public var name: String {
        switch self {
        case .clearFlush: return "clear_flush_young"
        case .clear: return "clear_young"
        case .test: return "test_young"
        }
    }
}

/// MMU-notifier core totals over every mm.
public struct MMUNotifierTotals: Sendable, Equatable {
    public var invalidations = [UInt64](repeating: 0, count: Reason.count)
    public var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
    public var byCause = [UInt64](repeating: 0, count: CauseKind.count)
    public var nonBlocking: UInt64 = 0
    public var failed: UInt64 = 0
    public var releases: UInt64 = 0
    public var young = [UInt64](repeating: 0, count: YoungKind.count)
    public var noSubscriber: UInt64 = 0
    public var walkTruncated: UInt64 = 0
    public var unowned: UInt64 = 0
    public var processOverflow: UInt64 = 0
    public var causeOverflow: UInt64 = 0
    public var subscriberOverflow: UInt64 = 0
    public var startLost: UInt64 = 0
    public var filtered: UInt64 = 0
    /// ns the range_start / range_end callbacks held the caller.
    public var startLatency = Histogram()
    public var endLatency = Histogram()
    public var spanBytes = Histogram()

    public init() {}

    public var totalInvalidations: UInt64 { invalidations.reduce(0, &+) }

    public func since(_ e: MMUNotifierTotals) -> MMUNotifierTotals {
        var d = self
        d.invalidations = delta(invalidations, e.invalidations)
        d.invalidatedBytes = delta(invalidatedBytes, e.invalidatedBytes)
        d.byCause = delta(byCause, e.byCause)
        d.nonBlocking = delta(nonBlocking, e.nonBlocking)
        d.failed = delta(failed, e.failed)
        d.releases = delta(releases, e.releases)
        d.young = delta(young, e.young)
        d.noSubscriber = delta(noSubscriber, e.noSubscriber)
        d.walkTruncated = delta(walkTruncated, e.walkTruncated)
        d.unowned = delta(unowned, e.unowned)
        d.processOverflow = delta(processOverflow, e.processOverflow)
        d.causeOverflow = delta(causeOverflow, e.causeOverflow)
        d.subscriberOverflow = delta(subscriberOverflow, e.subscriberOverflow)
        d.startLost = delta(startLost, e.startLost)
        d.filtered = delta(filtered, e.filtered)
        d.startLatency = startLatency.since(e.startLatency)
        d.endLatency = endLatency.since(e.endLatency)
        d.spanBytes = spanBytes.since(e.spanBytes)
        return d
    }
}

/// One process's mm as the MMU-notifier core saw it.
public struct ProcessMMUNotifier: Sendable, Equatable {
    /// The process's start time (ns since boot): with the pid, its
    /// identity. The BPF row is zeroed when another process takes the pid.
    public var startTime: UInt64 = 0
    public var invalidations = [UInt64](repeating: 0, count: Reason.count)
    public var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
    public var byCause = [UInt64](repeating: 0, count: CauseKind.count)
    public var nonBlocking: UInt64 = 0
    public var failed: UInt64 = 0
    public var releases: UInt64 = 0
    public var young: UInt64 = 0
    public var startLatency = Histogram()
    public var endLatency = Histogram()

    public init() {}

    public var totalInvalidations: UInt64 { invalidations.reduce(0, &+) }

    public func since(_ e: ProcessMMUNotifier) -> ProcessMMUNotifier {
        if e.startTime != startTime { return self }  // another process, same pid
        var d = self
        d.invalidations = delta(invalidations, e.invalidations)
        d.invalidatedBytes = delta(invalidatedBytes, e.invalidatedBytes)
        d.byCause = delta(byCause, e.byCause)
        d.nonBlocking = delta(nonBlocking, e.nonBlocking)
        d.failed = delta(failed, e.failed)
        d.releases = delta(releases, e.releases)
        d.young = delta(young, e.young)
        d.startLatency = startLatency.since(e.startLatency)
        d.endLatency = endLatency.since(e.endLatency)
        return d
    }

    package var isIdle: Bool { totalInvalidations == 0 && releases == 0 && young == 0 }
}

/// Who caused a process's invalidations, by reason.
public struct CauseKey: Hashable, Sendable {
    public var owner: UInt32
    public var kind: CauseKind
    /// The causing process (the owner for `.owner`).
    public var causePID: UInt32
    /// The causing thread's name ("" for `.owner`): kswapd0, khugepaged...
    public var causeComm: String
    public var reason: Reason

    public init(owner: UInt32, kind: CauseKind, causePID: UInt32, causeComm: String, reason: Reason) {
        self.owner = owner
        self.kind = kind
        self.causePID = causePID
        self.causeComm = causeComm
        self.reason = reason
    }
}

public struct CauseCounts: Sendable, Equatable {
    public var invalidations: UInt64 = 0
    public var bytes: UInt64 = 0

    public init(invalidations: UInt64 = 0, bytes: UInt64 = 0) {
        self.invalidations = invalidations
        self.bytes = bytes
    }

    public func since(_ e: CauseCounts) -> CauseCounts {
        CauseCounts(invalidations: delta(invalidations, e.invalidations), bytes: delta(bytes, e.bytes))
    }
}

/// One cause's share of an interval.
public struct CauseEntry: Sendable, Equatable {
    public var key: CauseKey
    public var counts: CauseCounts

    public init(key: CauseKey, counts: CauseCounts) {
        self.key = key
        self.counts = counts
    }

    /// Most invalidations first; ties in a stable order.
    static func busiestFirst(_ a: CauseEntry, _ b: CauseEntry) -> Bool {
        if a.counts.invalidations != b.counts.invalidations { return a.counts.invalidations > b.counts.invalidations }
        return (a.key.owner, a.key.reason.rawValue, a.key.kind.rawValue, a.key.causeComm, a.key.causePID)
            < (b.key.owner, b.key.reason.rawValue, b.key.kind.rawValue, b.key.causeComm, b.key.causePID)
    }
}

/// A subscriber of one process's mm, named from its ops in /proc/kallsyms.
public struct SubscriberKey: Hashable, Sendable {
    /// Kernel address of its ops (unique per subscriber kind).
    public var ops: UInt64
    public var owner: UInt32
    /// An interval notifier (named by the first interval of the mm's tree).
    public var interval: Bool

    public init(ops: UInt64, owner: UInt32, interval: Bool) {
        self.ops = ops
        self.owner = owner
        self.interval = interval
    }
}

public struct SubscriberRow: Sendable, Equatable {
    /// Module name ("kvm", "ummunotify") or, built in, the ops symbol.
    public var name: String = ""
    /// The ops symbol, e.g. kvm_mmu_notifier_ops, and its module (nil:
    /// built in, or not resolved).
    public var symbol: String = ""
    public var module: String?
    public var invalidations = [UInt64](repeating: 0, count: Reason.count)
    public var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
    public var releases: UInt64 = 0
    public var young: UInt64 = 0
    /// Address of its invalidate callback (for callback timing).
    public var callback: UInt64 = 0

    public init() {}

    public var totalInvalidations: UInt64 { invalidations.reduce(0, &+) }

    public func since(_ e: SubscriberRow) -> SubscriberRow {
        var d = self
        d.invalidations = delta(invalidations, e.invalidations)
        d.invalidatedBytes = delta(invalidatedBytes, e.invalidatedBytes)
        d.releases = delta(releases, e.releases)
        d.young = delta(young, e.young)
        return d
    }

    var isIdle: Bool { totalInvalidations == 0 && releases == 0 && young == 0 }
}

/// One subscriber's share of an interval.
public struct SubscriberEntry: Sendable, Equatable {
    public var key: SubscriberKey
    public var row: SubscriberRow

    public init(key: SubscriberKey, row: SubscriberRow) {
        self.key = key
        self.row = row
    }
}

/// userfaultfd fault kinds (handle_userfault's reason).
public enum UffdKind: Int, CaseIterable, Sendable {
    case missing = 0, writeProtect, minor

    public static let count = 3

    public var name: String {
        switch self {
        case .missing: return "missing"
        case .writeProtect: return "wp"
        case .minor: return "minor"
        }
    }
}

/// How handle_userfault returned.
public enum UffdOutcome: Int, CaseIterable, Sendable {
    case resolved = 0, retried, sigbus, signal

    public static let count = 4

    public var name: String {
        switch self {
        case .resolved: return "resolved"
        case .retried: return "retried"
        case .sigbus: return "sigbus"
        case .signal: return "signal"
        }
    }
}

/// The handler's resolving ioctls.
public enum UffdOp: Int, CaseIterable, Sendable {
    case copy = 0, zeropage, `continue`, writeProtect, move, poison

    public static let count = 6

    public var name: String {
        switch self {
        case .copy: return "copy"
        case .zeropage: return "zeropage"
        case .continue: return "continue"
        case .writeProtect: return "writeprotect"
        case .move: return "move"
        case .poison: return "poison"
        }
    }
}

/// Bytes per page for the pages columns (the ops report bytes).
public let basePageSize: UInt64 = 4096

public struct UserfaultfdTotals: Sendable, Equatable {
    public var faults = [UInt64](repeating: 0, count: UffdKind.count)
    public var outcomes = [UInt64](repeating: 0, count: UffdOutcome.count)
    public var ops = [UInt64](repeating: 0, count: UffdOp.count)
    public var opBytes = [UInt64](repeating: 0, count: UffdOp.count)
    public var opsFailed: UInt64 = 0
    public var processOverflow: UInt64 = 0
    public var startLost: UInt64 = 0
    public var filtered: UInt64 = 0
    /// Gauge: faults entered and not yet returned.
    public var waiting: UInt64 = 0
    /// Stall (ns) per fault kind.
    public var stall = [Histogram](repeating: Histogram(), count: UffdKind.count)

    public init() {}

    public var totalFaults: UInt64 { faults.reduce(0, &+) }

    public func since(_ e: UserfaultfdTotals) -> UserfaultfdTotals {
        var d = self
        d.faults = delta(faults, e.faults)
        d.outcomes = delta(outcomes, e.outcomes)
        d.ops = delta(ops, e.ops)
        d.opBytes = delta(opBytes, e.opBytes)
        d.opsFailed = delta(opsFailed, e.opsFailed)
        d.processOverflow = delta(processOverflow, e.processOverflow)
        d.startLost = delta(startLost, e.startLost)
        d.filtered = delta(filtered, e.filtered)
        d.stall = stall.indices.map { stall[$0].since($0 < e.stall.count ? e.stall[$0] : Histogram()) }
        return d
    }
}

public struct ProcessUserfaultfd: Sendable, Equatable {
    /// As in ProcessMMUNotifier.
    public var startTime: UInt64 = 0
    public var faults = [UInt64](repeating: 0, count: UffdKind.count)
    public var outcomes = [UInt64](repeating: 0, count: UffdOutcome.count)
    public var ops = [UInt64](repeating: 0, count: UffdOp.count)
    public var opBytes = [UInt64](repeating: 0, count: UffdOp.count)
    public var opsFailed: UInt64 = 0
    /// Gauge: faults entered and not yet returned.
    public var waiting: UInt64 = 0
    public var stall = Histogram()

    public init() {}

    public var totalFaults: UInt64 { faults.reduce(0, &+) }

    public func since(_ e: ProcessUserfaultfd) -> ProcessUserfaultfd {
        if e.startTime != startTime { return self }  // another process, same pid
        var d = self
        d.faults = delta(faults, e.faults)
        d.outcomes = delta(outcomes, e.outcomes)
        d.ops = delta(ops, e.ops)
        d.opBytes = delta(opBytes, e.opBytes)
        d.opsFailed = delta(opsFailed, e.opsFailed)
        d.stall = stall.since(e.stall)
        return d
    }

    package var isIdle: Bool { totalFaults == 0 && ops.reduce(0, &+) == 0 && waiting == 0 }
}

/// Entries minus returns, never negative (a fault that entered before the
/// programs attached returns without an entry).
func waitingFaults(_ entered: [UInt64], _ returned: [UInt64]) -> UInt64 {
    let e = entered.reduce(0, &+), r = returned.reduce(0, &+)
    return e > r ? e - r : 0
}
