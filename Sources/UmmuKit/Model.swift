/// The data model shared by ummutrace, ummutop and the metrics renderer.
///
/// A `Snapshot` holds cumulative counters as read from the BPF maps (what a
/// Prometheus renderer wants); `Interval` is the difference of two snapshots
/// (what rates, tables and NDJSON show). Units: nanoseconds and bytes.

/// Where events come from: our two drivers' tracepoints, or the stock
/// kernel's MMU-notifier core and userfaultfd (fentry, no module needed).
/// Each is loaded and attached independently.
public enum TraceSource: String, CaseIterable, Sendable, Codable {
    case ummunotify
    case umem
    case mmuNotifier = "mmu_notifier"
    case userfaultfd

    /// The sources picked by the tools' source flags: all when none is
    /// given (each one that is unavailable is left out), else exactly those
    /// (each must be available).
    public static func picked(_ flags: [TraceSource: Bool]) -> (sources: [TraceSource], required: Bool) {
        let on = allCases.filter { flags[$0] == true }
        return on.isEmpty ? (allCases, false) : (on, true)
    }

    var objectID: BPFObjectID {
        switch self {
        case .ummunotify: return .ummunotify
        case .umem: return .umem
        case .mmuNotifier: return .mmuNotifier
        case .userfaultfd: return .userfaultfd
        }
    }
}

/// enum mmu_notifier_event numbers as the ummunotify driver reports them.
public enum Reason: Int, CaseIterable, Sendable {
    case unmap = 0, clear, protectionVMA, protectionPage, softDirty, release, migrate, exclusive, other

    public static let count = 9

    /// Stable label used in JSON, Prometheus labels and text.
    public var name: String {
        switch self {
        case .unmap: return "unmap"
        case .clear: return "clear"
        case .protectionVMA: return "protection_vma"
        case .protectionPage: return "protection_page"
        case .softDirty: return "soft_dirty"
        case .release: return "release"
        case .migrate: return "migrate"
        case .exclusive: return "exclusive"
        case .other: return "other"
        }
    }
}

/// Outcomes of umem_fault_done (kmod/umem_trace.h); `other` counts any
/// number the driver may add later.
public enum FaultOutcome: Int, CaseIterable, Sendable {
    case served = 0, killed, error, interrupted, other

    public static let count = 5

    public var name: String {
        switch self {
        case .served: return "served"
        case .killed: return "killed"
        case .error: return "error"
        case .interrupted: return "interrupted"
        case .other: return "other"
        }
    }
}

@inline(__always)
func delta(_ now: UInt64, _ before: UInt64) -> UInt64 {
    now >= before ? now - before : now  // a reset row counts from zero
}

func delta(_ now: [UInt64], _ before: [UInt64]) -> [UInt64] {
    now.indices.map { delta(now[$0], $0 < before.count ? before[$0] : 0) }
}

/// ummunotify totals over every process (never lose a count to map bounds).
public struct UmmunotifyTotals: Sendable, Equatable {
    public var invalidations = [UInt64](repeating: 0, count: Reason.count)
    public var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
    public var notifyNoHit: UInt64 = 0
    public var reportsQueued: UInt64 = 0
    public var reportsMerged: UInt64 = 0
    public var reads: UInt64 = 0
    public var eventsRead: UInt64 = 0
    public var registers: UInt64 = 0
    public var unregisters: UInt64 = 0
    public var processOverflow: UInt64 = 0
    public var contextOverflow: UInt64 = 0
    public var filtered: UInt64 = 0
    /// Gauges: registrations held and reports queued unread, over contexts.
    public var registrationsHeld: UInt64 = 0
    public var reportsBacklog: UInt64 = 0
    public var contexts: UInt64 = 0
    public var spanBytes = Histogram()
    public var readBatch = Histogram()

    public init() {}

    public var totalInvalidations: UInt64 { invalidations.reduce(0, &+) }
    public var totalInvalidatedBytes: UInt64 { invalidatedBytes.reduce(0, &+) }

    /// Counters since `e`; gauges as of self.
    public func since(_ e: UmmunotifyTotals) -> UmmunotifyTotals {
        var d = self
        d.invalidations = delta(invalidations, e.invalidations)
        d.invalidatedBytes = delta(invalidatedBytes, e.invalidatedBytes)
        d.notifyNoHit = delta(notifyNoHit, e.notifyNoHit)
        d.reportsQueued = delta(reportsQueued, e.reportsQueued)
        d.reportsMerged = delta(reportsMerged, e.reportsMerged)
        d.reads = delta(reads, e.reads)
        d.eventsRead = delta(eventsRead, e.eventsRead)
        d.registers = delta(registers, e.registers)
        d.unregisters = delta(unregisters, e.unregisters)
        d.processOverflow = delta(processOverflow, e.processOverflow)
        d.contextOverflow = delta(contextOverflow, e.contextOverflow)
        d.filtered = delta(filtered, e.filtered)
        d.spanBytes = spanBytes.since(e.spanBytes)
        d.readBatch = readBatch.since(e.readBatch)
        return d
    }
}

/// umem totals over every process.
public struct UmemTotals: Sendable, Equatable {
    public var faults: UInt64 = 0
    public var faultsWaited: UInt64 = 0
    public var outcomes = [UInt64](repeating: 0, count: FaultOutcome.count)
    public var reads: UInt64 = 0
    public var offsetsHanded: UInt64 = 0
    public var pagesWritten: UInt64 = 0
    public var pagesOnDemand: UInt64 = 0
    public var pagesPushed: UInt64 = 0
    public var processOverflow: UInt64 = 0
    public var areaOverflow: UInt64 = 0
    public var filtered: UInt64 = 0
    /// Gauges: pending requests after each area's last read; areas seen;
    /// faults waiting for a server now (those that had to wait, minus
    /// those whose wait or at-once failure ended).
    public var pendingRequests: UInt64 = 0
    public var waitingFaults: UInt64 = 0
    public var areas: UInt64 = 0
    public var serviceLatency = Histogram()
    public var stallLatency = Histogram()
    public var readBatch = Histogram()

    public init() {}

    public func since(_ e: UmemTotals) -> UmemTotals {
        var d = self
        d.faults = delta(faults, e.faults)
        d.faultsWaited = delta(faultsWaited, e.faultsWaited)
        d.outcomes = delta(outcomes, e.outcomes)
        d.reads = delta(reads, e.reads)
        d.offsetsHanded = delta(offsetsHanded, e.offsetsHanded)
        d.pagesWritten = delta(pagesWritten, e.pagesWritten)
        d.pagesOnDemand = delta(pagesOnDemand, e.pagesOnDemand)
        d.pagesPushed = delta(pagesPushed, e.pagesPushed)
        d.processOverflow = delta(processOverflow, e.processOverflow)
        d.areaOverflow = delta(areaOverflow, e.areaOverflow)
        d.filtered = delta(filtered, e.filtered)
        d.serviceLatency = serviceLatency.since(e.serviceLatency)
        d.stallLatency = stallLatency.since(e.stallLatency)
        d.readBatch = readBatch.since(e.readBatch)
        return d
    }
}

/// Two start times of one pid name two processes (the pid was reused);
/// 0 is unknown (no row that carries it was seen).
func sameProcess(_ a: UInt64, _ b: UInt64) -> Bool { a == b || a == 0 || b == 0 }

public struct ProcessUmmunotify: Sendable, Equatable {
    /// The process's start time (CLOCK_MONOTONIC ns, from the driver): with the
    /// pid, its identity; 0 when only its live contexts were seen.
    public var startTime: UInt64 = 0
    public var invalidations = [UInt64](repeating: 0, count: Reason.count)
    public var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
    public var reportsQueued: UInt64 = 0
    public var reportsMerged: UInt64 = 0
    public var reads: UInt64 = 0
    public var eventsRead: UInt64 = 0
    /// Gauge.
    public var registrationsHeld: UInt64 = 0

    public init() {}

    public var totalInvalidations: UInt64 { invalidations.reduce(0, &+) }
    public var totalInvalidatedBytes: UInt64 { invalidatedBytes.reduce(0, &+) }

    public func since(_ e: ProcessUmmunotify) -> ProcessUmmunotify {
        if !sameProcess(e.startTime, startTime) { return self }  // another process, same pid
        var d = self
        d.invalidations = delta(invalidations, e.invalidations)
        d.invalidatedBytes = delta(invalidatedBytes, e.invalidatedBytes)
        d.reportsQueued = delta(reportsQueued, e.reportsQueued)
        d.reportsMerged = delta(reportsMerged, e.reportsMerged)
        d.reads = delta(reads, e.reads)
        d.eventsRead = delta(eventsRead, e.eventsRead)
        return d
    }

    package var isIdle: Bool {
        totalInvalidations == 0 && reads == 0 && registrationsHeld == 0 && reportsQueued == 0
    }
}

public struct ProcessUmem: Sendable, Equatable {
    /// As in ProcessUmmunotify.
    public var startTime: UInt64 = 0
    public var faults: UInt64 = 0
    public var faultsWaited: UInt64 = 0
    public var pagesOnDemand: UInt64 = 0
    /// Gauge: pending requests of the areas this process faults on.
    public var pendingRequests: UInt64 = 0
    public var serviceLatency = Histogram()
    public var stallLatency = Histogram()

    public init() {}

    public func since(_ e: ProcessUmem) -> ProcessUmem {
        if !sameProcess(e.startTime, startTime) { return self }  // another process, same pid
        var d = self
        d.faults = delta(faults, e.faults)
        d.faultsWaited = delta(faultsWaited, e.faultsWaited)
        d.pagesOnDemand = delta(pagesOnDemand, e.pagesOnDemand)
        d.serviceLatency = serviceLatency.since(e.serviceLatency)
        d.stallLatency = stallLatency.since(e.stallLatency)
        return d
    }

    package var isIdle: Bool {
        faults == 0 && pagesOnDemand == 0 && pendingRequests == 0 && stallLatency.isEmpty
            && serviceLatency.isEmpty
    }
}

/// One process (tgid) as seen by either side.
public struct ProcessRow: Sendable, Equatable {
    public var pid: UInt32
    public var comm: String
    public var ummunotify: ProcessUmmunotify?
    public var umem: ProcessUmem?
    public var mmuNotifier: ProcessMMUNotifier?
    public var userfaultfd: ProcessUserfaultfd?

    public init(pid: UInt32, comm: String = "", ummunotify: ProcessUmmunotify? = nil, umem: ProcessUmem? = nil,
                mmuNotifier: ProcessMMUNotifier? = nil, userfaultfd: ProcessUserfaultfd? = nil) {
        self.pid = pid
        self.comm = comm
        self.ummunotify = ummunotify
        self.umem = umem
        self.mmuNotifier = mmuNotifier
        self.userfaultfd = userfaultfd
    }

    public func since(_ e: ProcessRow?) -> ProcessRow {
        guard let e else { return self }
        var d = self
        if let u = ummunotify { d.ummunotify = e.ummunotify.map { u.since($0) } ?? u }
        if let u = umem { d.umem = e.umem.map { u.since($0) } ?? u }
        if let u = mmuNotifier { d.mmuNotifier = e.mmuNotifier.map { u.since($0) } ?? u }
        if let u = userfaultfd { d.userfaultfd = e.userfaultfd.map { u.since($0) } ?? u }
        if d.comm.isEmpty { d.comm = e.comm }
        return d
    }

    public var isIdle: Bool {
        (ummunotify?.isIdle ?? true) && (umem?.isIdle ?? true) && (mmuNotifier?.isIdle ?? true)
            && (userfaultfd?.isIdle ?? true)
    }
}

/// BPF run-time statistics of one side's programs (kernel counters; they
/// only advance while statistics are enabled).
public struct BPFRunStats: Sendable, Equatable {
    public var runTimeNs: UInt64 = 0
    public var runCount: UInt64 = 0

    public init(runTimeNs: UInt64 = 0, runCount: UInt64 = 0) {
        self.runTimeNs = runTimeNs
        self.runCount = runCount
    }

    public func since(_ e: BPFRunStats) -> BPFRunStats {
        BPFRunStats(runTimeNs: delta(runTimeNs, e.runTimeNs), runCount: delta(runCount, e.runCount))
    }
}

/// Cumulative state read from the maps at one moment.
public struct Snapshot: Sendable, Equatable {
    /// CLOCK_MONOTONIC (same clock as the BPF timestamps) and wall clock, ns.
    public var monotonicNs: UInt64
    public var wallNs: Int64
    public var ummunotify: UmmunotifyTotals?
    public var umem: UmemTotals?
    public var mmuNotifier: MMUNotifierTotals?
    public var userfaultfd: UserfaultfdTotals?
    public var processes: [UInt32: ProcessRow]
    public var subscribers: [SubscriberKey: SubscriberRow]
    public var causes: [CauseKey: CauseCounts]
    /// Timed subscriber callbacks, by function.
    public var callbacks: [String: SubscriberCallback] = [:]
    public var droppedEvents: UInt64
    public var bpf: [TraceSource: BPFRunStats]

    public init(monotonicNs: UInt64 = 0, wallNs: Int64 = 0, ummunotify: UmmunotifyTotals? = nil,
                umem: UmemTotals? = nil, mmuNotifier: MMUNotifierTotals? = nil,
                userfaultfd: UserfaultfdTotals? = nil, processes: [UInt32: ProcessRow] = [:],
                subscribers: [SubscriberKey: SubscriberRow] = [:], causes: [CauseKey: CauseCounts] = [:],
                droppedEvents: UInt64 = 0, bpf: [TraceSource: BPFRunStats] = [:]) {
        self.monotonicNs = monotonicNs
        self.wallNs = wallNs
        self.ummunotify = ummunotify
        self.umem = umem
        self.mmuNotifier = mmuNotifier
        self.userfaultfd = userfaultfd
        self.processes = processes
        self.subscribers = subscribers
        self.causes = causes
        self.droppedEvents = droppedEvents
        self.bpf = bpf
    }
}

/// What happened between two snapshots.
public struct Interval: Sendable, Equatable {
    public var startWallNs: Int64
    public var endWallNs: Int64
    public var durationNs: UInt64
    public var ummunotify: UmmunotifyTotals?
    public var umem: UmemTotals?
    public var mmuNotifier: MMUNotifierTotals?
    public var userfaultfd: UserfaultfdTotals?
    /// Processes with activity in the interval or a non-zero gauge, by pid.
    public var processes: [ProcessRow]
    /// Subscribers with activity in the interval, by process then name.
    public var subscribers: [SubscriberEntry]
    /// Causes of the interval's invalidations, busiest first.
    public var causes: [CauseEntry]
    /// Timed subscriber callbacks with calls in the interval, by name.
    public var callbacks: [SubscriberCallback]
    public var droppedEvents: UInt64
    public var bpf: [TraceSource: BPFRunStats]

    public init(from a: Snapshot, to b: Snapshot) {
        startWallNs = a.wallNs
        endWallNs = b.wallNs
        durationNs = delta(b.monotonicNs, a.monotonicNs)
        ummunotify = b.ummunotify.map { now in a.ummunotify.map { now.since($0) } ?? now }
        umem = b.umem.map { now in a.umem.map { now.since($0) } ?? now }
        mmuNotifier = b.mmuNotifier.map { now in a.mmuNotifier.map { now.since($0) } ?? now }
        userfaultfd = b.userfaultfd.map { now in a.userfaultfd.map { now.since($0) } ?? now }
        subscribers = b.subscribers
            .map { SubscriberEntry(key: $0.key, row: a.subscribers[$0.key].map($0.value.since) ?? $0.value) }
            .filter { !$0.row.isIdle }
            .sorted { ($0.key.owner, $0.row.name, $0.key.ops) < ($1.key.owner, $1.row.name, $1.key.ops) }
        causes = b.causes
            .map { CauseEntry(key: $0.key, counts: a.causes[$0.key].map($0.value.since) ?? $0.value) }
            .filter { $0.counts.invalidations > 0 }
            .sorted(by: CauseEntry.busiestFirst)
        callbacks = b.callbacks.values
            .map { c in a.callbacks[c.function].map { c.since($0) } ?? c }
            .filter { $0.latency.total > 0 || $0.failed > 0 }
            .sorted { ($0.name, $0.function) < ($1.name, $1.function) }
        processes = b.processes.values
            .map { $0.since(a.processes[$0.pid]) }
            .filter { !$0.isIdle }
            .sorted { $0.pid < $1.pid }
        droppedEvents = delta(b.droppedEvents, a.droppedEvents)
        bpf = b.bpf.reduce(into: [:]) { acc, kv in
            acc[kv.key] = a.bpf[kv.key].map { kv.value.since($0) } ?? kv.value
        }
    }

    public var durationSeconds: Double { Double(durationNs) / 1e9 }

    /// Events per second over the interval (0 for an empty interval).
    public func rate(_ count: UInt64) -> Double {
        durationNs == 0 ? 0 : Double(count) / durationSeconds
    }
}
