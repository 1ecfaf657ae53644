// UmmuMetrics.swift - ummu's metric families (the catalogue documented in
// docs/metrics.md; keep both in step, a test compares them) and the
// exporter state that turns interval deltas into Prometheus counters with
// bounded cardinality.
//
// Input: one UmmuMetricsInterval per interval, filled from the model (see
// the adapter at the call site): counters as deltas over the interval,
// gauges as current values, BPF run statistics as the kernel's cumulative
// values. Units as the model carries them: nanoseconds and bytes; the
// families divide nanoseconds by 1e9 into seconds.
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
    public static let bpfRunTime = "ummu_bpf_run_time_seconds_total"
    public static let bpfRunCount = "ummu_bpf_run_count_total"
    public static let eventsDropped = "ummu_events_dropped_total"
    public static let mapOverflow = "ummu_map_overflow_total"
    public static let trackedProcesses = "ummu_exporter_tracked_processes"
    public static let lastWrite = "ummu_exporter_last_write_timestamp_seconds"

    public static let all: [String] = [
        invalidations, invalidatedBytes, reports, registrations, readEvents, invalidationSpan,
        faults, pagesServed, serviceLatency, stallLatency, readOffsets, pendingRequests,
        bpfRunTime, bpfRunCount, eventsDropped, mapOverflow, trackedProcesses, lastWrite,
    ]
}

/// Label values of `reason`, indexed like enum ummu_reason (bpf/ummu_shared.h).
public let ummuReasonLabels: [String] = [
    "unmap", "clear", "protection_vma", "protection_page", "soft_dirty",
    "release", "migrate", "exclusive", "other",
]

/// The pid and comm label values of the aggregate series.
public let ummuOtherLabel = "other"

/// One interval's worth of numbers for the exporter.
public struct UmmuMetricsInterval: Sendable {
    public struct ProcessRow: Sendable {
        public var pid: UInt32
        public var comm: String
        /// ummunotify: deltas by reason index (ummuReasonLabels), any length <= 9.
        public var invalidations: [UInt64]
        public var invalidatedBytes: [UInt64]
        /// umem: deltas.
        public var faults: UInt64
        public var faultsWaited: UInt64

        public init(pid: UInt32, comm: String, invalidations: [UInt64] = [], invalidatedBytes: [UInt64] = [],
                    faults: UInt64 = 0, faultsWaited: UInt64 = 0) {
            self.pid = pid
            self.comm = comm
            self.invalidations = invalidations
            self.invalidatedBytes = invalidatedBytes
            self.faults = faults
            self.faultsWaited = faultsWaited
        }
    }

    public struct Holder: Sendable {
        public var pid: UInt32
        public var comm: String
        public var held: UInt64
        public init(pid: UInt32, comm: String, held: UInt64) {
            self.pid = pid
            self.comm = comm
            self.held = held
        }
    }

    public struct Ummunotify: Sendable {
        /// Deltas by reason index, all processes (including rows lost to overflow).
        public var invalidations: [UInt64] = []
        public var invalidatedBytes: [UInt64] = []
        public var reportsQueued: UInt64 = 0
        public var reportsMerged: UInt64 = 0
        /// Delta histograms: events returned per read(), bytes per invalidation.
        public var readEvents = PrometheusLog2Histogram()
        public var invalidationSpanBytes = PrometheusLog2Histogram()
        /// Registrations held now, per process (summed over its contexts).
        public var holders: [Holder] = []
        public init() {}
    }

    public struct Umem: Sendable {
        public var faults: UInt64 = 0
        public var faultsWaited: UInt64 = 0
        public var pagesOnDemand: UInt64 = 0
        public var pagesPushed: UInt64 = 0
        /// Delta histograms in nanoseconds / offsets per server read().
        public var serviceLatencyNs = PrometheusLog2Histogram()
        public var stallLatencyNs = PrometheusLog2Histogram()
        public var readOffsets = PrometheusLog2Histogram()
        /// Requests pending now, all areas.
        public var pendingRequests: UInt64 = 0
        public init() {}
    }

    public struct ProgramStats: Sendable {
        public var name: String
        /// Cumulative since load, as bpf_prog_info reports them.
        public var runTimeNs: UInt64
        public var runCount: UInt64
        public init(name: String, runTimeNs: UInt64, runCount: UInt64) {
            self.name = name
            self.runTimeNs = runTimeNs
            self.runCount = runCount
        }
    }

    /// nil when that side is not loaded.
    public var ummunotify: Ummunotify?
    public var umem: Umem?
    /// Per-process deltas, both sides in one row per process.
    public var processes: [ProcessRow] = []
    public var programs: [ProgramStats] = []
    /// Deltas.
    public var eventsDropped: UInt64 = 0
    /// Deltas by BPF map name; list every bounded map (0 when nothing
    /// overflowed) so the series exist before the first overflow.
    public var mapOverflows: [(map: String, count: UInt64)] = []

    public init() {}
}

public struct UmmuMetricsConfig: Sendable {
    /// Processes with their own series; the rest go to pid="other".
    public var topN: Int
    /// Intervals a tracked process must be idle before a newcomer may take its slot.
    public var evictAfterIdleIntervals: Int

    public init(topN: Int = 10, evictAfterIdleIntervals: Int = 10) {
        self.topN = max(0, topN)
        self.evictAfterIdleIntervals = max(1, evictAfterIdleIntervals)
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
        var invalidations = [UInt64](repeating: 0, count: 9)
        var invalidatedBytes = [UInt64](repeating: 0, count: 9)
        var faultsWaited: UInt64 = 0
        var faultsNoWait: UInt64 = 0
        var lastActive = 0

        mutating func add(_ r: UmmuMetricsInterval.ProcessRow) {
            for (i, v) in r.invalidations.prefix(9).enumerated() { invalidations[i] &+= v }
            for (i, v) in r.invalidatedBytes.prefix(9).enumerated() { invalidatedBytes[i] &+= v }
            let waited = min(r.faultsWaited, r.faults)
            faultsWaited &+= waited
            faultsNoWait &+= r.faults - waited
        }
    }

    private(set) var interval = 0
    var tracked: [ProcessKey: Series] = [:]
    var other = Series()

    var unSeen = false
    var unQueued: UInt64 = 0
    var unMerged: UInt64 = 0
    var unReadEvents = PrometheusLog2Histogram()
    var unSpan = PrometheusLog2Histogram()
    var unHolders: [UmmuMetricsInterval.Holder] = []

    var umSeen = false
    var umOnDemand: UInt64 = 0
    var umPushed: UInt64 = 0
    var umService = PrometheusLog2Histogram()
    var umStall = PrometheusLog2Histogram()
    var umReadOffsets = PrometheusLog2Histogram()
    var umPending: UInt64 = 0

    var programs: [UmmuMetricsInterval.ProgramStats] = []
    var dropped: UInt64 = 0
    var overflow: [(map: String, count: UInt64)] = []

    public init(config: UmmuMetricsConfig = UmmuMetricsConfig()) {
        self.config = config
    }

    /// Number of processes with their own series now.
    public var trackedCount: Int { tracked.count }

    public mutating func ingest(_ iv: UmmuMetricsInterval) {
        interval += 1

        // Rows of one process may come split; merge by (pid, comm).
        var rows: [ProcessKey: UmmuMetricsInterval.ProcessRow] = [:]
        var order: [ProcessKey] = []
        for r in iv.processes {
            let k = ProcessKey(pid: r.pid, comm: r.comm)
            if var m = rows[k] {
                m.invalidations = Self.addArrays(m.invalidations, r.invalidations)
                m.invalidatedBytes = Self.addArrays(m.invalidatedBytes, r.invalidatedBytes)
                m.faults &+= r.faults
                m.faultsWaited &+= r.faultsWaited
                rows[k] = m
            } else {
                rows[k] = r
                order.append(k)
            }
        }
        func activity(_ r: UmmuMetricsInterval.ProcessRow) -> UInt64 {
            r.invalidations.reduce(0, &+) &+ r.faults
        }

        // Admit newcomers, busiest first, into free or long-idle slots.
        let candidates = order.filter { tracked[$0] == nil && activity(rows[$0]!) > 0 }
            .sorted { a, b in
                let x = activity(rows[a]!), y = activity(rows[b]!)
                return x != y ? x > y : (a.pid != b.pid ? a.pid < b.pid : a.comm < b.comm)
            }
        for k in candidates {
            if tracked.count < config.topN {
                tracked[k] = Series()
                continue
            }
            guard config.topN > 0 else { break }
            let idle = tracked.filter { interval - $0.value.lastActive >= config.evictAfterIdleIntervals }
            guard let victim = idle.min(by: { a, b in
                a.value.lastActive != b.value.lastActive ? a.value.lastActive < b.value.lastActive
                    : (a.key.pid != b.key.pid ? a.key.pid < b.key.pid : a.key.comm < b.key.comm)
            }) else { break }
            tracked[victim.key] = nil
            tracked[k] = Series()
        }

        // Credit tracked processes; the rest of the totals goes to other.
        var trackedDelta = Series()
        for k in order {
            guard var s = tracked[k], let r = rows[k] else { continue }
            s.add(r)
            if activity(r) > 0 { s.lastActive = interval }
            tracked[k] = s
            trackedDelta.add(r)
        }

        if let un = iv.ummunotify {
            unSeen = true
            for i in 0..<9 {
                let tot = i < un.invalidations.count ? un.invalidations[i] : 0
                let bytes = i < un.invalidatedBytes.count ? un.invalidatedBytes[i] : 0
                other.invalidations[i] &+= Self.monus(tot, trackedDelta.invalidations[i])
                other.invalidatedBytes[i] &+= Self.monus(bytes, trackedDelta.invalidatedBytes[i])
            }
            unQueued &+= un.reportsQueued
            unMerged &+= un.reportsMerged
            unReadEvents.add(un.readEvents)
            unSpan.add(un.invalidationSpanBytes)
            unHolders = un.holders
        }
        if let um = iv.umem {
            umSeen = true
            let waited = min(um.faultsWaited, um.faults)
            other.faultsWaited &+= Self.monus(waited, trackedDelta.faultsWaited)
            other.faultsNoWait &+= Self.monus(um.faults - waited, trackedDelta.faultsNoWait)
            umOnDemand &+= um.pagesOnDemand
            umPushed &+= um.pagesPushed
            umService.add(um.serviceLatencyNs)
            umStall.add(um.stallLatencyNs)
            umReadOffsets.add(um.readOffsets)
            umPending = um.pendingRequests
        }
        programs = iv.programs
        dropped &+= iv.eventsDropped
        for (map, n) in iv.mapOverflows {
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
        let keys = tracked.keys.sorted { $0.pid != $1.pid ? $0.pid < $1.pid : $0.comm < $1.comm }
        var procs: [(labels: L, series: Series)] = keys.map { ([("pid", String($0.pid)), ("comm", $0.comm)], tracked[$0]!) }
        procs.append(([("pid", ummuOtherLabel), ("comm", ummuOtherLabel)], other))

        var out: [PrometheusFamily] = []
        if unSeen {
            var inv = PrometheusFamily(name: UmmuMetricName.invalidations,
                help: "Invalidations delivered to ummunotify contexts (hitting at least one registered range), by reason and process.",
                type: .counter)
            var bytes = PrometheusFamily(name: UmmuMetricName.invalidatedBytes,
                help: "Bytes covered by those invalidations (end - start), by reason and process.",
                type: .counter)
            for (labels, s) in procs {
                for i in 0..<9 where s.invalidations[i] > 0 || s.invalidatedBytes[i] > 0 {
                    let l: L = [("reason", ummuReasonLabels[i])] + labels
                    inv.samples.append(PrometheusSample(labels: l, value: Double(s.invalidations[i])))
                    bytes.samples.append(PrometheusSample(labels: l, value: Double(s.invalidatedBytes[i])))
                }
            }
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
            let holders = unHolders.sorted { $0.held != $1.held ? $0.held > $1.held : $0.pid < $1.pid }
            var rest: UInt64 = 0
            for (i, h) in holders.enumerated() {
                if i < config.topN {
                    reg.samples.append(PrometheusSample(labels: [("pid", String(h.pid)), ("comm", h.comm)], value: Double(h.held)))
                } else {
                    rest &+= h.held
                }
            }
            reg.samples.append(PrometheusSample(labels: [("pid", ummuOtherLabel), ("comm", ummuOtherLabel)], value: Double(rest)))
            out.append(reg)
            out.append(PrometheusFamily(name: UmmuMetricName.readEvents,
                help: "Events returned per read() of /dev/ummunotify.",
                type: .histogram, samples: unReadEvents.samples(divisor: 1, maxSlot: 16)))
            out.append(PrometheusFamily(name: UmmuMetricName.invalidationSpan,
                help: "Bytes per delivered invalidation (end - start).",
                type: .histogram, samples: unSpan.samples(divisor: 1, maxSlot: 40)))
        }
        if umSeen {
            var faults = PrometheusFamily(name: UmmuMetricName.faults,
                help: "Page faults on umem areas, by process; waited=\"true\" when the faulting thread had to wait for the server.",
                type: .counter)
            for (labels, s) in procs where s.faultsWaited > 0 || s.faultsNoWait > 0 || labels[0].value == ummuOtherLabel {
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
                help: "Time from the first fault on a page to the server's write of that page.",
                type: .histogram, samples: umService.samples(divisor: 1e9, maxSlot: 36)))
            out.append(PrometheusFamily(name: UmmuMetricName.stallLatency,
                help: "Time a faulting thread spent in the fault, from fault to fault done.",
                type: .histogram, samples: umStall.samples(divisor: 1e9, maxSlot: 36)))
            out.append(PrometheusFamily(name: UmmuMetricName.readOffsets,
                help: "Page offsets handed to the server per read() of a umem area.",
                type: .histogram, samples: umReadOffsets.samples(divisor: 1, maxSlot: 16)))
            out.append(PrometheusFamily(name: UmmuMetricName.pendingRequests,
                help: "Fault requests not yet handed to a server, all areas, at the end of the interval.",
                type: .gauge, samples: [PrometheusSample(value: Double(umPending))]))
        }
        out.append(PrometheusFamily(name: UmmuMetricName.bpfRunTime,
            help: "Time the kernel spent running each ummu BPF program (counted only while kernel.bpf_stats_enabled is on).",
            type: .counter, samples: programs.map { PrometheusSample(labels: [("prog", $0.name)], value: Double($0.runTimeNs) / 1e9) }))
        out.append(PrometheusFamily(name: UmmuMetricName.bpfRunCount,
            help: "Runs of each ummu BPF program (counted only while kernel.bpf_stats_enabled is on).",
            type: .counter, samples: programs.map { PrometheusSample(labels: [("prog", $0.name)], value: Double($0.runCount)) }))
        out.append(PrometheusFamily(name: UmmuMetricName.eventsDropped,
            help: "Per-event records dropped because the BPF ring buffer was full.",
            type: .counter, samples: [PrometheusSample(value: Double(dropped))]))
        out.append(PrometheusFamily(name: UmmuMetricName.mapOverflow,
            help: "Updates lost because a bounded BPF map was full, by map; those counts land in pid=\"other\".",
            type: .counter, samples: overflow.map { PrometheusSample(labels: [("map", $0.map)], value: Double($0.count)) }))
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

    static func addArrays(_ a: [UInt64], _ b: [UInt64]) -> [UInt64] {
        var r = [UInt64](repeating: 0, count: max(a.count, b.count))
        for (i, v) in a.enumerated() { r[i] &+= v }
        for (i, v) in b.enumerated() { r[i] &+= v }
        return r
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
    public mutating func update(_ iv: UmmuMetricsInterval, now: Double = UmmuMetricsExporter.wallClock()) throws {
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
