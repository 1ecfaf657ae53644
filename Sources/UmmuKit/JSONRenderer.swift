/// NDJSON renderer: one object per interval (schema: docs/ummutrace.schema.json).
public enum JSONRenderer {
    /// Version of the NDJSON records; bump on an incompatible change.
    public static let version = 4

    struct Obj {
        var parts: [String] = []
        mutating func add(_ k: String, _ v: UInt64) { parts.append("\"\(k)\":\(v)") }
        mutating func add(_ k: String, _ v: Int64) { parts.append("\"\(k)\":\(v)") }
        mutating func add(_ k: String, _ v: Int) { parts.append("\"\(k)\":\(v)") }
        mutating func add(_ k: String, string v: String) { parts.append("\"\(k)\":\(Fmt.jsonString(v))") }
        mutating func add(_ k: String, raw v: String) { parts.append("\"\(k)\":\(v)") }
        var text: String { "{" + parts.joined(separator: ",") + "}" }
    }

    /// Histogram as {"unit","count","sum","p50","p99","buckets":[{"min","max","count"}]}.
    public static func histogram(_ h: Histogram, unit: String) -> String {
        var o = Obj()
        o.add("unit", string: unit)
        o.add("count", h.total)
        o.add("sum", h.sum)
        o.add("p50", raw: Fmt.jsonNumber(h.percentile(0.5)))
        o.add("p99", raw: Fmt.jsonNumber(h.percentile(0.99)))
        let b = h.buckets.map { "{\"min\":\($0.min),\"max\":\($0.max),\"count\":\($0.count)}" }
        o.add("buckets", raw: "[" + b.joined(separator: ",") + "]")
        return o.text
    }

    static func byReason(_ v: [UInt64]) -> String { counts(v, Reason.self) }

    static func ummunotify(_ t: UmmunotifyTotals) -> String {
        var o = Obj()
        o.add("invalidations", raw: byReason(t.invalidations))
        o.add("invalidated_bytes", raw: byReason(t.invalidatedBytes))
        o.add("reports_queued", t.reportsQueued)
        o.add("reports_merged", t.reportsMerged)
        o.add("reads", t.reads)
        o.add("events_read", t.eventsRead)
        o.add("registers", t.registers)
        o.add("unregisters", t.unregisters)
        o.add("registrations_held", t.registrationsHeld)
        o.add("reports_backlog", t.reportsBacklog)
        o.add("contexts", t.contexts)
        o.add("notify_no_hit", t.notifyNoHit)
        o.add("filtered", t.filtered)
        o.add("overflow", raw: "{\"processes\":\(t.processOverflow),\"contexts\":\(t.contextOverflow)}")
        o.add("span_bytes", raw: histogram(t.spanBytes, unit: "bytes"))
        o.add("read_batch", raw: histogram(t.readBatch, unit: "events"))
        return o.text
    }

    static func umem(_ t: UmemTotals) -> String {
        var o = Obj()
        o.add("faults", t.faults)
        o.add("faults_waited", t.faultsWaited)
        var oc = Obj()
        for c in FaultOutcome.allCases { oc.add(c.name, t.outcomes[c.rawValue]) }
        o.add("fault_outcomes", raw: oc.text)
        o.add("reads", t.reads)
        o.add("offsets_handed", t.offsetsHanded)
        o.add("pages_written", t.pagesWritten)
        o.add("pages_on_demand", t.pagesOnDemand)
        o.add("pages_pushed", t.pagesPushed)
        o.add("pending_requests", t.pendingRequests)
        o.add("waiting_faults", t.waitingFaults)
        o.add("areas", t.areas)
        o.add("filtered", t.filtered)
        o.add("overflow", raw: "{\"processes\":\(t.processOverflow),\"areas\":\(t.areaOverflow)}")
        o.add("service_latency_ns", raw: histogram(t.serviceLatency, unit: "ns"))
        o.add("stall_latency_ns", raw: histogram(t.stallLatency, unit: "ns"))
        o.add("read_batch", raw: histogram(t.readBatch, unit: "offsets"))
        return o.text
    }

    /// {"total"?, "<case name>": count...} in the enum's order.
    static func counts<E: LabeledCase>(_ v: [UInt64], _ type: E.Type, total: Bool = true) -> String {
        var o = Obj()
        if total { o.add("total", v.reduce(0, &+)) }
        for (i, c) in E.allCases.enumerated() { o.add(c.name, i < v.count ? v[i] : 0) }
        return o.text
    }

    static func byCause(_ v: [UInt64]) -> String {
        counts(v, CauseKind.self, total: false)
    }

    static func uffdOps(_ ops: [UInt64], _ bytes: [UInt64]) -> String {
        var o = Obj()
        for op in UffdOp.allCases {
            let b = bytes[op.rawValue]
            o.add(op.name, raw: "{\"count\":\(ops[op.rawValue]),\"bytes\":\(b),\"pages\":\(b / basePageSize)}")
        }
        return o.text
    }

    static func mmuNotifier(_ t: MMUNotifierTotals) -> String {
        var o = Obj()
        o.add("invalidations", raw: byReason(t.invalidations))
        o.add("invalidated_bytes", raw: byReason(t.invalidatedBytes))
        o.add("by_cause", raw: byCause(t.byCause))
        o.add("non_blocking", t.nonBlocking)
        o.add("failed", t.failed)
        o.add("releases", t.releases)
        o.add("young", raw: counts(t.young, YoungKind.self, total: false))
        o.add("no_subscriber", t.noSubscriber)
        o.add("unowned", t.unowned)
        o.add("start_lost", t.startLost)
        o.add("filtered", t.filtered)
        o.add("overflow", raw: "{\"processes\":\(t.processOverflow),\"causes\":\(t.causeOverflow),"
            + "\"subscribers\":\(t.subscriberOverflow),\"walk\":\(t.walkTruncated)}")
        o.add("start_latency_ns", raw: histogram(t.startLatency, unit: "ns"))
        o.add("end_latency_ns", raw: histogram(t.endLatency, unit: "ns"))
        o.add("span_bytes", raw: histogram(t.spanBytes, unit: "bytes"))
        return o.text
    }

    static func userfaultfd(_ t: UserfaultfdTotals) -> String {
        var o = Obj()
        o.add("faults", raw: counts(t.faults, UffdKind.self))
        o.add("outcomes", raw: counts(t.outcomes, UffdOutcome.self, total: false))
        o.add("ops", raw: uffdOps(t.ops, t.opBytes))
        o.add("ops_failed", t.opsFailed)
        o.add("waiting", t.waiting)
        o.add("start_lost", t.startLost)
        o.add("filtered", t.filtered)
        o.add("overflow", raw: "{\"processes\":\(t.processOverflow)}")
        var st = Obj()
        for k in UffdKind.allCases { st.add(k.name, raw: histogram(t.stall[k.rawValue], unit: "ns")) }
        o.add("stall_ns", raw: st.text)
        return o.text
    }

    static func subscriber(_ e: SubscriberEntry) -> String {
        var o = Obj()
        o.add("pid", UInt64(e.key.owner))
        o.add("name", string: e.row.name)
        o.add("symbol", string: e.row.symbol)
        o.add("kind", string: e.key.interval ? "interval" : "notifier")
        o.add("invalidations", raw: byReason(e.row.invalidations))
        o.add("invalidated_bytes", raw: byReason(e.row.invalidatedBytes))
        o.add("releases", e.row.releases)
        o.add("young", e.row.young)
        return o.text
    }

    static func cause(_ e: CauseEntry) -> String {
        var o = Obj()
        o.add("pid", UInt64(e.key.owner))
        o.add("cause", string: e.key.kind.name)
        o.add("cause_pid", UInt64(e.key.causePID))
        o.add("cause_comm", string: e.key.causeComm)
        o.add("reason", string: e.key.reason.name)
        o.add("invalidations", e.counts.invalidations)
        o.add("bytes", e.counts.bytes)
        return o.text
    }

    static func callback(_ c: SubscriberCallback) -> String {
        var o = Obj()
        o.add("name", string: c.name)
        o.add("function", string: c.function)
        o.add("failed", c.failed)
        o.add("latency_ns", raw: histogram(c.latency, unit: "ns"))
        return o.text
    }

    static func process(_ p: ProcessRow) -> String {
        var o = Obj()
        o.add("pid", UInt64(p.pid))
        o.add("comm", string: p.comm)
        if let u = p.ummunotify {
            var x = Obj()
            x.add("invalidations", raw: byReason(u.invalidations))
            x.add("invalidated_bytes", raw: byReason(u.invalidatedBytes))
            x.add("reports_queued", u.reportsQueued)
            x.add("reports_merged", u.reportsMerged)
            x.add("reads", u.reads)
            x.add("events_read", u.eventsRead)
            x.add("registrations_held", u.registrationsHeld)
            o.add("ummunotify", raw: x.text)
        }
        if let u = p.umem {
            var x = Obj()
            x.add("faults", u.faults)
            x.add("faults_waited", u.faultsWaited)
            x.add("pages_on_demand", u.pagesOnDemand)
            x.add("pending_requests", u.pendingRequests)
            x.add("service_latency_ns", raw: histogram(u.serviceLatency, unit: "ns"))
            x.add("stall_latency_ns", raw: histogram(u.stallLatency, unit: "ns"))
            o.add("umem", raw: x.text)
        }
        if let u = p.mmuNotifier {
            var x = Obj()
            x.add("invalidations", raw: byReason(u.invalidations))
            x.add("invalidated_bytes", raw: byReason(u.invalidatedBytes))
            x.add("by_cause", raw: byCause(u.byCause))
            x.add("non_blocking", u.nonBlocking)
            x.add("failed", u.failed)
            x.add("releases", u.releases)
            x.add("young", u.young)
            x.add("start_latency_ns", raw: histogram(u.startLatency, unit: "ns"))
            x.add("end_latency_ns", raw: histogram(u.endLatency, unit: "ns"))
            o.add("mmu_notifier", raw: x.text)
        }
        if let u = p.userfaultfd {
            var x = Obj()
            x.add("faults", raw: counts(u.faults, UffdKind.self))
            x.add("outcomes", raw: counts(u.outcomes, UffdOutcome.self, total: false))
            x.add("ops", raw: uffdOps(u.ops, u.opBytes))
            x.add("ops_failed", u.opsFailed)
            x.add("waiting", u.waiting)
            x.add("stall_ns", raw: histogram(u.stall, unit: "ns"))
            o.add("userfaultfd", raw: x.text)
        }
        return o.text
    }

    /// One interval as a single line (no trailing newline).
    public static func interval(_ i: Interval, includeBPFStats: Bool = false) -> String {
        var o = Obj()
        o.add("version", version)
        o.add("type", string: "interval")
        o.add("start", string: Fmt.rfc3339(i.startWallNs))
        o.add("end", string: Fmt.rfc3339(i.endWallNs))
        o.add("start_ns", i.startWallNs)
        o.add("end_ns", i.endWallNs)
        o.add("duration_ns", i.durationNs)
        o.add("dropped_events", i.droppedEvents)
        if let u = i.ummunotify { o.add("ummunotify", raw: ummunotify(u)) }
        if let u = i.umem { o.add("umem", raw: umem(u)) }
        if let u = i.mmuNotifier { o.add("mmu_notifier", raw: mmuNotifier(u)) }
        if let u = i.userfaultfd { o.add("userfaultfd", raw: userfaultfd(u)) }
        o.add("processes", raw: "[" + i.processes.map(process).joined(separator: ",") + "]")
        if i.mmuNotifier != nil {
            o.add("subscribers", raw: "[" + i.subscribers.map(subscriber).joined(separator: ",") + "]")
            o.add("causes", raw: "[" + i.causes.map(cause).joined(separator: ",") + "]")
            o.add("subscriber_callbacks", raw: "[" + i.callbacks.map(callback).joined(separator: ",") + "]")
        }
        if includeBPFStats {
            var b = Obj()
            for side in TraceSource.allCases {
                if let s = i.bpf[side] {
                    b.add(side.rawValue, raw: "{\"run_time_ns\":\(s.runTimeNs),\"run_count\":\(s.runCount)}")
                }
            }
            o.add("bpf", raw: b.text)
        }
        return o.text
    }

    /// Per-interval record of the --events stream.
    public static func drops(endWallNs: Int64, dropped: UInt64, delivered: UInt64) -> String {
        var o = Obj()
        o.add("version", version)
        o.add("type", string: "drops")
        o.add("end", string: Fmt.rfc3339(endWallNs))
        o.add("dropped_events", dropped)
        o.add("delivered_events", delivered)
        return o.text
    }
}
