// UmmuMetrics.swift - ummu's metric families (the catalogue documented in
// docs/metrics.md; keep both in step, a test compares them) and the
// exporter state that turns interval deltas into Prometheus counters with
// bounded cardinality.
//
// Input: the model's Interval (Model.swift): counters as deltas over the
// interval, gauges as of its end. Units as the model carries them,
// nanoseconds and bytes; the families divide nanoseconds by 1e9 into
// seconds.
//
// Cardinality: per-process series exist for at most `topN` processes at a
// time; everything else (other processes, rows lost to a full BPF map) is
// counted under pid="other",comm="other". A tracked process keeps its slot
// while it is active; a slot is handed to a busier newcomer only after its
// holder has been idle for `evictAfterIdleIntervals` intervals. Counters are
// accumulated here from deltas, so every series (including `other`) only
// ever grows: a process joining the top N starts a new series at its
// interval's delta and takes nothing away from `other`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Names of the metric families, the single source in code. docs/metrics.md
/// lists the same names; the dashboard and rules may use only these.
public enum UmmuMetricName {
    public static let buildInfo = "ummu_build_info"
    public static let invalidations = "ummu_ummunotify_invalidations_total"
    public static let invalidatedBytes = "ummu_ummunotify_invalidated_bytes_total"
    public static let reports = "ummu_ummunotify_reports_total"
    public static let registrations = "ummu_ummunotify_registrations"
    public static let readEvents = "ummu_ummunotify_read_events"
    public static let invalidationSpan = "ummu_ummunotify_invalidation_span_bytes"
    public static let faults = "ummu_umem_faults_total"
    public static let pagesServed = "ummu_umem_pages_served_total"
    public static let serviceLatency = "ummu_umem_service_latency_seconds"
    public static let stallLatency = "ummu_umem_stall_latency_seconds"
    public static let readOffsets = "ummu_umem_read_offsets"
    public static let pendingRequests = "ummu_umem_pending_requests"
    public static let waitingFaults = "ummu_umem_waiting_faults"
    public static let mnInvalidations = "ummu_mmu_notifier_invalidations_total"
    public static let mnInvalidatedBytes = "ummu_mmu_notifier_invalidated_bytes_total"
    public static let mnCauses = "ummu_mmu_notifier_invalidations_by_cause_total"
    public static let mnSubscriberInvalidations = "ummu_mmu_notifier_subscriber_invalidations_total"
    public static let mnCallbacks = "ummu_mmu_notifier_callback_seconds"
    public static let mnSubscriberCallbacks = "ummu_mmu_notifier_subscriber_callback_seconds"
    public static let mnFailed = "ummu_mmu_notifier_failed_total"
    public static let mnReleases = "ummu_mmu_notifier_releases_total"
    public static let mnYoung = "ummu_mmu_notifier_young_total"
    public static let ufFaults = "ummu_userfaultfd_faults_total"
    public static let ufOutcomes = "ummu_userfaultfd_fault_outcomes_total"
    public static let ufStall = "ummu_userfaultfd_stall_seconds"
    public static let ufOps = "ummu_userfaultfd_ops_total"
    public static let ufResolvedBytes = "ummu_userfaultfd_resolved_bytes_total"
    public static let ufWaiting = "ummu_userfaultfd_waiting_faults"
    public static let bpfRunTime = "ummu_bpf_run_time_seconds_total"
    public static let bpfRunCount = "ummu_bpf_run_count_total"
    public static let mapOverflow = "ummu_map_overflow_total"
    public static let trackedProcesses = "ummu_exporter_tracked_processes"
    public static let lastWrite = "ummu_exporter_last_write_timestamp_seconds"

    public static let all: [String] = [
        buildInfo, invalidations, invalidatedBytes, reports, registrations, readEvents, invalidationSpan,
        faults, pagesServed, serviceLatency, stallLatency, readOffsets, pendingRequests, waitingFaults,
        mnInvalidations, mnInvalidatedBytes, mnCauses, mnSubscriberInvalidations, mnCallbacks,
        mnSubscriberCallbacks, mnFailed,
        mnReleases, mnYoung, ufFaults, ufOutcomes, ufStall, ufOps, ufResolvedBytes, ufWaiting,
        bpfRunTime, bpfRunCount, mapOverflow, trackedProcesses, lastWrite,
    ]
}

/// The pid and comm label values of the aggregate series.
public let ummuOtherLabel = "other"

/// Names of the bounded BPF maps in `ummu_map_overflow_total{map}`.
public enum UmmuMapName {
    public static let ummunotify = [BPFMapName.unProcs, .unCtxs].map(\.rawValue)
    public static let umem = [BPFMapName.umProcs, .umAreas].map(\.rawValue)
    public static let mmuNotifier = [BPFMapName.mnProcs, .mnCauses, .mnSubs].map(\.rawValue)
    public static let userfaultfd = [BPFMapName.ufProcs].map(\.rawValue)
}

public struct UmmuMetricsConfig: Sendable {
    /// Processes with their own series; the rest go to pid="other".
    public var topN: Int
    /// Intervals a tracked process must be idle before a newcomer may take its slot.
    public var evictAfterIdleIntervals: Int
    /// The kernel's BPF statistics are on (ummutrace --bpf-stats): write
    /// ummu_bpf_run_*. Without them the families are absent, not zero.
    public var bpfStats: Bool
    /// Per-process series carry a `pid` label. Without it a series is a
    /// command name (`comm`): the processes of one name share it, and a
    /// restarted process continues its series instead of starting one.
    public var pidLabel: Bool

    public init(topN: Int = 10, evictAfterIdleIntervals: Int = 10, bpfStats: Bool = false, pidLabel: Bool = true) {
        self.topN = max(0, topN)
        self.evictAfterIdleIntervals = max(1, evictAfterIdleIntervals)
        self.bpfStats = bpfStats
        self.pidLabel = pidLabel
    }
}

/// Cumulative counters built from interval deltas; renders the families.
public struct UmmuMetricsState: Sendable {
    public let config: UmmuMetricsConfig

    struct ProcessKey: Hashable, Sendable {
        var pid: UInt32
        var comm: String
    }

    struct Series: Sendable {
        var invalidations = [UInt64](repeating: 0, count: Reason.count)
        var invalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
        var faultsWaited: UInt64 = 0
        var faultsNoWait: UInt64 = 0
        var mnInvalidations = [UInt64](repeating: 0, count: Reason.count)
        var mnInvalidatedBytes = [UInt64](repeating: 0, count: Reason.count)
        var mnByCause = [UInt64](repeating: 0, count: CauseKind.count)
        var ufFaults = [UInt64](repeating: 0, count: UffdKind.count)
        /// Latencies by process, so that the dashboard's process choice
        /// applies to the histograms too.
        var serviceLatency = Histogram()
        var stallLatency = Histogram()
        var callbackStart = Histogram()
        var callbackEnd = Histogram()
        var lastActive = 0

        mutating func add(_ r: ProcessRow) {
            if let u = r.ummunotify {
                for (i, v) in u.invalidations.prefix(Reason.count).enumerated() { invalidations[i] &+= v }
                for (i, v) in u.invalidatedBytes.prefix(Reason.count).enumerated() { invalidatedBytes[i] &+= v }
            }
            if let u = r.umem {
                let waited = min(u.faultsWaited, u.faults)
                faultsWaited &+= waited
                faultsNoWait &+= u.faults - waited
                serviceLatency = serviceLatency.adding(u.serviceLatency)
                stallLatency = stallLatency.adding(u.stallLatency)
            }
            if let n = r.mmuNotifier {
                for i in 0..<Reason.count {
                    mnInvalidations[i] &+= n.invalidations[i]
                    mnInvalidatedBytes[i] &+= n.invalidatedBytes[i]
                }
                for i in 0..<CauseKind.count { mnByCause[i] &+= n.byCause[i] }
                callbackStart = callbackStart.adding(n.startLatency)
                callbackEnd = callbackEnd.adding(n.endLatency)
            }
            if let u = r.userfaultfd {
                for i in 0..<UffdKind.count { ufFaults[i] &+= u.faults[i] }
            }
        }

        /// Adds what `total` has beyond `tracked` (the other processes).
        mutating func addRest(of total: [UInt64], beyond tracked: [UInt64], into keyPath: WritableKeyPath<Series, [UInt64]>) {
            for i in self[keyPath: keyPath].indices where i < total.count {
                self[keyPath: keyPath][i] &+= UmmuMetricsState.monus(total[i], tracked[i])
            }
        }
    }

    private(set) var interval = 0
    var tracked: [ProcessKey: Series] = [:]
    var other = Series()

    var unSeen = false
    var unQueued: UInt64 = 0
    var unMerged: UInt64 = 0
    var unReadEvents = Histogram()
    var unSpan = Histogram()
    var unHolders: [(pid: UInt32, comm: String, held: UInt64)] = []
    var unHeldTotal: UInt64 = 0

    var umSeen = false
    var umOnDemand: UInt64 = 0
    var umPushed: UInt64 = 0
    var umReadOffsets = Histogram()
    var umPending: UInt64 = 0
    var umWaiting: UInt64 = 0

    var mnSeen = false
    var mnSubscribers: [String: [UInt64]] = [:]  // subscriber name -> invalidations by reason
    var mnSubscriberCallbacks: [String: Histogram] = [:]  // subscriber name -> callback ns
    var mnFailed: UInt64 = 0
    var mnReleases: UInt64 = 0
    var mnYoung = [UInt64](repeating: 0, count: YoungKind.count)

    var ufSeen = false
    var ufOutcomes = [UInt64](repeating: 0, count: UffdOutcome.count)
    var ufStall = [Histogram](repeating: Histogram(), count: UffdKind.count)
    var ufOps = [UInt64](repeating: 0, count: UffdOp.count)
    var ufOpBytes = [UInt64](repeating: 0, count: UffdOp.count)
    var ufWaiting: UInt64 = 0

    var programs: [(name: String, stats: BPFRunStats)] = []
    var overflow: [(map: BPFMapName, count: UInt64)] = []

    public init(config: UmmuMetricsConfig = UmmuMetricsConfig()) {
        self.config = config
    }

    /// Number of processes with their own series now.
    public var trackedCount: Int { tracked.count }

    /// A process counts as active while it has events, or holds ummunotify
    /// registrations (so that its registrations series keeps its slot).
    static func activity(_ r: ProcessRow) -> UInt64 {
        (r.ummunotify?.totalInvalidations ?? 0) &+ (r.ummunotify?.registrationsHeld ?? 0) &+ (r.umem?.faults ?? 0)
            &+ (r.mmuNotifier?.totalInvalidations ?? 0) &+ (r.userfaultfd?.totalFaults ?? 0)
    }

    /// The series a process row goes to: its pid and comm, or its comm
    /// alone without the pid label.
    func key(_ r: ProcessRow) -> ProcessKey {
        guard !config.pidLabel else { return ProcessKey(pid: r.pid, comm: r.comm) }
        // Without pids a process named "other" (prctl lets anyone) would
        // write the aggregate's very labels: a duplicate series, which
        // node_exporter drops without an error.
        return ProcessKey(pid: 0, comm: r.comm == ummuOtherLabel ? ummuOtherLabel + " (a process)" : r.comm)
    }

    /// A series' process labels.
    func labels(_ k: ProcessKey) -> [(name: String, value: String)] {
        config.pidLabel ? [("pid", String(k.pid)), ("comm", k.comm)] : [("comm", k.comm)]
    }

    /// The aggregate series' process labels.
    var otherLabels: [(name: String, value: String)] {
        config.pidLabel ? [("pid", ummuOtherLabel), ("comm", ummuOtherLabel)] : [("comm", ummuOtherLabel)]
    }

    /// Are these the aggregate's labels (not those of a process named "other")?
    func isOther(_ labels: [(name: String, value: String)]) -> Bool {
        labels.count == otherLabels.count
            && zip(labels, otherLabels).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public mutating func ingest(_ iv: Interval) {
        interval += 1
        let rows = iv.processes

        // Admit newcomers, busiest first, into free or long-idle slots.
        let candidates = rows.filter { tracked[key($0)] == nil && Self.activity($0) > 0 }
            .sorted { a, b in
                let x = Self.activity(a), y = Self.activity(b)
                return x != y ? x > y : (a.pid != b.pid ? a.pid < b.pid : a.comm < b.comm)
            }
        for r in candidates {
            let k = key(r)
            if tracked[k] != nil { continue }  // another process of its name, without pid labels
            // Admitted now counts as active now: a quieter candidate of the
            // same interval must not evict it as idle.
            var admitted = Series()
            admitted.lastActive = interval
            if tracked.count < config.topN {
                tracked[k] = admitted
                continue
            }
            guard config.topN > 0 else { break }
            let idle = tracked.filter { interval - $0.value.lastActive >= config.evictAfterIdleIntervals }
            guard let victim = idle.min(by: { a, b in
                a.value.lastActive != b.value.lastActive ? a.value.lastActive < b.value.lastActive
                    : (a.key.pid != b.key.pid ? a.key.pid < b.key.pid : a.key.comm < b.key.comm)
            }) else { break }
            tracked[victim.key] = nil
            tracked[k] = admitted
        }

        // Credit tracked processes; the rest of the totals goes to other.
        var trackedDelta = Series()
        for r in rows {
            let k = key(r)
            guard var s = tracked[k] else { continue }
            s.add(r)
            if Self.activity(r) > 0 { s.lastActive = interval }
            tracked[k] = s
            trackedDelta.add(r)
        }

        var maps: [(BPFMapName, UInt64)] = []
        if let un = iv.ummunotify {
            unSeen = true
            for i in 0..<Reason.count {
                let tot = i < un.invalidations.count ? un.invalidations[i] : 0
                let bytes = i < un.invalidatedBytes.count ? un.invalidatedBytes[i] : 0
                other.invalidations[i] &+= Self.monus(tot, trackedDelta.invalidations[i])
                other.invalidatedBytes[i] &+= Self.monus(bytes, trackedDelta.invalidatedBytes[i])
            }
            unQueued &+= un.reportsQueued
            unMerged &+= un.reportsMerged
            unReadEvents = unReadEvents.adding(un.readBatch)
            unSpan = unSpan.adding(un.spanBytes)
            // Holders with their own series: the tracked processes (slots
            // change hands only after 10 idle intervals, and holding counts
            // as activity), so the series do not churn with the ranking.
            var held: [ProcessKey: UInt64] = [:]
            var allHeld: UInt64 = 0
            for r in rows {
                guard let h = r.ummunotify?.registrationsHeld, h > 0 else { continue }
                allHeld &+= h
                if tracked[key(r)] != nil { held[key(r), default: 0] &+= h }
            }
            unHolders = held.map { ($0.key.pid, $0.key.comm, $0.value) }
            unHeldTotal = max(un.registrationsHeld, allHeld)
            maps += [(.unProcs, un.processOverflow), (.unCtxs, un.contextOverflow)]
        }
        if let um = iv.umem {
            umSeen = true
            let waited = min(um.faultsWaited, um.faults)
            other.faultsWaited &+= Self.monus(waited, trackedDelta.faultsWaited)
            other.faultsNoWait &+= Self.monus(um.faults - waited, trackedDelta.faultsNoWait)
            umOnDemand &+= um.pagesOnDemand
            umPushed &+= um.pagesPushed
            other.serviceLatency = other.serviceLatency.adding(Self.monus(um.serviceLatency, trackedDelta.serviceLatency))
            other.stallLatency = other.stallLatency.adding(Self.monus(um.stallLatency, trackedDelta.stallLatency))
            umReadOffsets = umReadOffsets.adding(um.readBatch)
            umPending = um.pendingRequests
            umWaiting = um.waitingFaults
            maps += [(.umProcs, um.processOverflow), (.umAreas, um.areaOverflow)]
        }
        if let mn = iv.mmuNotifier {
            mnSeen = true
            other.addRest(of: mn.invalidations, beyond: trackedDelta.mnInvalidations, into: \.mnInvalidations)
            other.addRest(of: mn.invalidatedBytes, beyond: trackedDelta.mnInvalidatedBytes, into: \.mnInvalidatedBytes)
            other.addRest(of: mn.byCause, beyond: trackedDelta.mnByCause, into: \.mnByCause)
            for e in iv.subscribers {
                var v = mnSubscribers[e.row.name] ?? [UInt64](repeating: 0, count: Reason.count)
                for i in 0..<Reason.count { v[i] &+= e.row.invalidations[i] }
                mnSubscribers[e.row.name] = v
            }
            for c in iv.callbacks {
                mnSubscriberCallbacks[c.name] = (mnSubscriberCallbacks[c.name] ?? Histogram()).adding(c.latency)
            }
            other.callbackStart = other.callbackStart.adding(Self.monus(mn.startLatency, trackedDelta.callbackStart))
            other.callbackEnd = other.callbackEnd.adding(Self.monus(mn.endLatency, trackedDelta.callbackEnd))
            mnFailed &+= mn.failed
            mnReleases &+= mn.releases
            for i in 0..<YoungKind.count { mnYoung[i] &+= mn.young[i] }
            maps += [(.mnProcs, mn.processOverflow), (.mnCauses, mn.causeOverflow),
                     (.mnSubs, mn.subscriberOverflow)]
        }
        if let uf = iv.userfaultfd {
            ufSeen = true
            other.addRest(of: uf.faults, beyond: trackedDelta.ufFaults, into: \.ufFaults)
            for i in 0..<UffdOutcome.count { ufOutcomes[i] &+= uf.outcomes[i] }
            for i in 0..<UffdKind.count { ufStall[i] = ufStall[i].adding(uf.stall[i]) }
            for i in 0..<UffdOp.count {
                ufOps[i] &+= uf.ops[i]
                ufOpBytes[i] &+= uf.opBytes[i]
            }
            ufWaiting = uf.waiting
            maps += [(.ufProcs, uf.processOverflow)]
        }
        for side in TraceSource.allCases {
            guard let d = iv.bpf[side] else { continue }
            if let i = programs.firstIndex(where: { $0.name == side.rawValue }) {
                programs[i].stats.runTimeNs &+= d.runTimeNs
                programs[i].stats.runCount &+= d.runCount
            } else {
                programs.append((side.rawValue, d))
            }
        }
        for (map, n) in maps {
            if let i = overflow.firstIndex(where: { $0.map == map }) {
                overflow[i].count &+= n
            } else {
                overflow.append((map, n))
            }
        }
    }

    /// Every family, in catalogue order. `now`: seconds since the epoch of
    /// this write (the value of ummu_exporter_last_write_timestamp_seconds).
    public func families(now: Double) -> [PrometheusFamily] {
        typealias L = [(name: String, value: String)]
        // Tracked processes in a stable order (pid, comm), then other.
        let rows = tracked.sorted { $0.key.pid != $1.key.pid ? $0.key.pid < $1.key.pid : $0.key.comm < $1.key.comm }
        var procs: [(labels: L, series: Series)] = rows.map { (labels($0.key), $0.value) }
        procs.append((otherLabels, other))

        // As node_exporter's node_exporter_build_info: 1, labeled by version.
        var out = [PrometheusFamily(name: UmmuMetricName.buildInfo,
            help: "A metric with a constant '1' value labeled by the version of ummutrace that writes this file.",
            type: .gauge, samples: [PrometheusSample(labels: [("version", UmmuVersion.string)], value: 1)])]
        if unSeen {
            var inv = PrometheusFamily(name: UmmuMetricName.invalidations,
                help: "Invalidations delivered to ummunotify contexts (hitting at least one registered range), by reason and process.",
                type: .counter)
            var bytes = PrometheusFamily(name: UmmuMetricName.invalidatedBytes,
                help: "Bytes covered by those invalidations (end - start), by reason and process.",
                type: .counter)
            Self.addByReason(procs, \.invalidations, \.invalidatedBytes, to: &inv, &bytes)
            out.append(inv)
            out.append(bytes)
            out.append(PrometheusFamily(name: UmmuMetricName.reports,
                help: "Invalidation reports: kind=queued for new reports, kind=merged for hits merged into a report already queued.",
                type: .counter, samples: [
                    PrometheusSample(labels: [("kind", "queued")], value: Double(unQueued)),
                    PrometheusSample(labels: [("kind", "merged")], value: Double(unMerged)),
                ]))
            var reg = PrometheusFamily(name: UmmuMetricName.registrations,
                help: "Ranges registered with ummunotify and held now, by process (top N, the rest under pid=\"other\").",
                type: .gauge)
            let holders = unHolders.sorted { $0.pid != $1.pid ? $0.pid < $1.pid : $0.comm < $1.comm }
            var shown: UInt64 = 0
            for h in holders {
                reg.samples.append(PrometheusSample(labels: labels(ProcessKey(pid: h.pid, comm: h.comm)),
                                                    value: Double(h.held)))
                shown &+= h.held
            }
            // Everyone else, including holders the BPF maps could not keep a row for.
            let rest = Self.monus(unHeldTotal, shown)
            reg.samples.append(PrometheusSample(labels: otherLabels, value: Double(rest)))
            out.append(reg)
            out.append(PrometheusFamily(name: UmmuMetricName.readEvents,
                help: "Events returned per read() of /dev/ummunotify.",
                type: .histogram, samples: unReadEvents.prometheusSamples(divisor: 1, maxSlot: 16)))
            out.append(PrometheusFamily(name: UmmuMetricName.invalidationSpan,
                help: "Bytes per delivered invalidation (end - start).",
                type: .histogram, samples: unSpan.prometheusSamples(divisor: 1, maxSlot: 40)))
        }
        if umSeen {
            var faults = PrometheusFamily(name: UmmuMetricName.faults,
                help: "Page faults on umem areas, by process; waited=\"true\" when the faulting thread had to wait for the server.",
                type: .counter)
            for (labels, s) in procs where s.faultsWaited > 0 || s.faultsNoWait > 0 || isOther(labels) {
                faults.samples.append(PrometheusSample(labels: labels + [("waited", "true")], value: Double(s.faultsWaited)))
                faults.samples.append(PrometheusSample(labels: labels + [("waited", "false")], value: Double(s.faultsNoWait)))
            }
            out.append(faults)
            out.append(PrometheusFamily(name: UmmuMetricName.pagesServed,
                help: "Pages written into umem areas by servers: how=\"on_demand\" answered a fault, how=\"pushed\" was written ahead of any fault.",
                type: .counter, samples: [
                    PrometheusSample(labels: [("how", "on_demand")], value: Double(umOnDemand)),
                    PrometheusSample(labels: [("how", "pushed")], value: Double(umPushed)),
                ]))
            out.append(PrometheusFamily(name: UmmuMetricName.serviceLatency,
                help: "Time from a page's request (its first fault) to the server's write of that page, as the driver measures it, by faulting process.",
                type: .histogram, samples: histogramSamples(procs, \.serviceLatency)))
            out.append(PrometheusFamily(name: UmmuMetricName.stallLatency,
                help: "Time a faulting thread waited for the server, as the driver measures it (faults that waited), by process.",
                type: .histogram, samples: histogramSamples(procs, \.stallLatency)))
            out.append(PrometheusFamily(name: UmmuMetricName.readOffsets,
                help: "Page offsets handed to the server per read() of a umem area.",
                type: .histogram, samples: umReadOffsets.prometheusSamples(divisor: 1, maxSlot: 16)))
            out.append(PrometheusFamily(name: UmmuMetricName.pendingRequests,
                help: "Fault requests not yet handed to a server, all areas, as of each area's last server read.",
                type: .gauge, samples: [PrometheusSample(value: Double(umPending))]))
            out.append(PrometheusFamily(name: UmmuMetricName.waitingFaults,
                help: "Faults waiting for a umem server now, all areas (a hung server leaves them waiting).",
                type: .gauge, samples: [PrometheusSample(value: Double(umWaiting))]))
        }
        if mnSeen { out += mmuNotifierFamilies(procs) }
        if ufSeen { out += userfaultfdFamilies(procs) }
        if config.bpfStats {
            out.append(PrometheusFamily(name: UmmuMetricName.bpfRunTime,
                help: "Time the kernel spent running each ummu BPF program (ummutrace --bpf-stats).",
                type: .counter, samples: programs.map { PrometheusSample(labels: [("prog", $0.name)], value: Double($0.stats.runTimeNs) / 1e9) }))
            out.append(PrometheusFamily(name: UmmuMetricName.bpfRunCount,
                help: "Runs of each ummu BPF program (ummutrace --bpf-stats).",
                type: .counter, samples: programs.map { PrometheusSample(labels: [("prog", $0.name)], value: Double($0.stats.runCount)) }))
        }
        out.append(PrometheusFamily(name: UmmuMetricName.mapOverflow,
            help: "Updates lost because a bounded BPF map was full, by map; those counts land in pid=\"other\".",
            type: .counter, samples: overflow.map { PrometheusSample(labels: [("map", $0.map.rawValue)], value: Double($0.count)) }))
        out.append(PrometheusFamily(name: UmmuMetricName.trackedProcesses,
            help: "Processes with their own pid/comm series now (at most the configured top N).",
            type: .gauge, samples: [PrometheusSample(value: Double(tracked.count))]))
        out.append(PrometheusFamily(name: UmmuMetricName.lastWrite,
            help: "Time of the exporter's last successful write of this file, in seconds since the epoch.",
            type: .gauge, samples: [PrometheusSample(value: now)]))
        return out
    }

    /// The text for this state, written at `now`.
    public func render(now: Double) throws -> String {
        try PrometheusText.encode(families(now: now))
    }

    static func monus(_ a: UInt64, _ b: UInt64) -> UInt64 { a > b ? a - b : 0 }

    /// What `total` has beyond `tracked`, slot by slot (the other processes').
    static func monus(_ total: Histogram, _ tracked: Histogram) -> Histogram {
        Histogram(slots: zip(total.slots, tracked.slots).map { monus($0, $1) },
                  count: monus(total.count, tracked.count), sum: monus(total.sum, tracked.sum))
    }

    /// A per-process histogram family's samples (seconds from ns): the
    /// processes with samples, and `other` always.
    func histogramSamples(_ procs: [(labels: [(name: String, value: String)], series: Series)],
                                 _ h: KeyPath<Series, Histogram>,
                                 labels extra: [(name: String, value: String)] = []) -> [PrometheusSample] {
        procs.flatMap { labels, s in
            s[keyPath: h].total > 0 || isOther(labels)
                ? s[keyPath: h].prometheusSamples(divisor: 1e9, maxSlot: 36, labels: extra + labels) : []
        }
    }

    /// Per-process samples by reason of a count family and its bytes
    /// family, for the reasons a process had.
    static func addByReason(_ procs: [(labels: [(name: String, value: String)], series: Series)],
                            _ counts: KeyPath<Series, [UInt64]>, _ bytes: KeyPath<Series, [UInt64]>,
                            to countFamily: inout PrometheusFamily, _ bytesFamily: inout PrometheusFamily) {
        for (labels, s) in procs {
            let c = s[keyPath: counts], b = s[keyPath: bytes]
            for i in 0..<Reason.count where c[i] > 0 || b[i] > 0 {
                let l = [("reason", Reason(rawValue: i)?.name ?? "other")] + labels
                countFamily.samples.append(PrometheusSample(labels: l, value: Double(c[i])))
                bytesFamily.samples.append(PrometheusSample(labels: l, value: Double(b[i])))
            }
        }
    }

}

/// Exporter mode: ingest an interval, write the file atomically.
public struct UmmuMetricsExporter: Sendable {
    public private(set) var state: UmmuMetricsState
    public let writer: MetricsFileWriter
    /// Time of the last successful write (seconds since the epoch), 0 before.
    public private(set) var lastWrite: Double = 0

    /// Fails at once (one clear line) if the file's directory is missing or
    /// not writable.
    public init(path: String, config: UmmuMetricsConfig = UmmuMetricsConfig()) throws {
        self.writer = try MetricsFileWriter(path: path)
        self.state = UmmuMetricsState(config: config)
    }

    /// Adds the interval and rewrites the file. On a write error the old
    /// file stays (and goes stale: the ExporterStale alert sees it); the
    /// caller reports the error and carries on with the next interval.
    public mutating func update(_ iv: Interval, now: Double = UmmuMetricsExporter.wallClock()) throws {
        state.ingest(iv)
        try writer.write(try state.render(now: now))
        lastWrite = now
    }

    /// CLOCK_REALTIME in seconds, millisecond resolution.
    public static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Double(ts.tv_sec) + Double(ts.tv_nsec / 1_000_000) / 1000)
    }
}
