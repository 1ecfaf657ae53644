import UmmuBPF

/// Swift mirrors of the stock programs' C map keys (same bytes).
struct CauseMapKey: BitwiseCopyable {
    var owner: UInt32
    var causeTgid: UInt32
    var kind: UInt32
    var reason: UInt32
    var comm: (UInt64, UInt64)
}

struct SubscriberMapKey: BitwiseCopyable {
    var ops: UInt64
    var owner: UInt32
    var kind: UInt32
}

extension Tracer {
    func readMMUNotifier(_ o: BPFObject, into procs: inout [UInt32: ProcessRow],
                         subscribers: inout [SubscriberKey: SubscriberRow],
                         causes: inout [CauseKey: CauseCounts]) throws -> MMUNotifierTotals {
        var t = MMUNotifierTotals()
        do {
            let v = try o.totals(.mnTotals, as: mn_totals.self)
            t.invalidations = cArray(v.inval, count: Reason.count)
            t.invalidatedBytes = cArray(v.bytes, count: Reason.count)
            t.byCause = cArray(v.by_cause, count: CauseKind.count)
            t.nonBlocking = v.nonblock
            t.failed = v.failed
            t.releases = v.release
            t.young = cArray(v.young, count: YoungKind.count)
            t.noSubscriber = v.no_subscriber
            t.walkTruncated = v.walk_truncated
            t.unowned = v.unowned
            t.processOverflow = v.proc_overflow
            t.causeOverflow = v.cause_overflow
            t.subscriberOverflow = v.sub_overflow
            t.startLost = v.start_lost
            t.filtered = v.filtered
        }
        try o.map(.mnHists).readHistograms(into: &t, [(MN_HIST_START.rawValue, \.startLatency),
                                                        (MN_HIST_END.rawValue, \.endLatency),
                                                        (MN_HIST_SPAN.rawValue, \.spanBytes)])
        try mergeProcessRows(o, .mnProcs, as: mn_proc.self, startTime: \.start_time, comm: \.comm,
                             into: &procs) { row, v in
            var p = ProcessMMUNotifier()
            p.startTime = v.start_time
            p.invalidations = cArray(v.inval, count: Reason.count)
            p.invalidatedBytes = cArray(v.bytes, count: Reason.count)
            p.byCause = cArray(v.by_cause, count: CauseKind.count)
            p.nonBlocking = v.nonblock
            p.failed = v.failed
            p.releases = v.release
            p.young = v.young
            p.startLatency = Histogram(v.start_ns)
            p.endLatency = Histogram(v.end_ns)
            row.mmuNotifier = p
        }
        try o.map(.mnCauses).withRows(CauseMapKey.self, mn_cause_val.self) { rows in
            for (k, per) in rows {
                let v = per.value
                guard let kind = CauseKind(rawValue: Int(k.kind)) else { continue }
                let key = CauseKey(owner: k.owner, kind: kind, causePID: k.causeTgid,
                                   causeComm: cString(k.comm), reason: Reason(rawValue: Int(k.reason)) ?? .other)
                causes[key] = CauseCounts(invalidations: v.inval, bytes: v.bytes)
            }
        }
        do {
            // Named after the walk: resolving reads /proc/kallsyms.
            let rows = try o.map(.mnSubs).withRows(SubscriberMapKey.self, mn_sub.self) { rows in
                rows.map { k, per in
                    let v = per.value
                    var r = SubscriberRow()
                    r.invalidations = cArray(v.inval, count: Reason.count)
                    r.invalidatedBytes = cArray(v.bytes, count: Reason.count)
                    r.releases = v.release
                    r.young = v.young
                    r.callback = v.callback
                    return (SubscriberKey(ops: k.ops, owner: k.owner, interval: k.kind == MN_SUB_INTERVAL.rawValue), r)
                }
            }
            let names = symbols.resolve(rows.map { $0.0.ops })
            for (key, var row) in rows {
                if let s = names[key.ops] {
                    row.name = s.subscriberName
                    row.symbol = s.name
                    row.module = s.module
                } else {
                    row.name = "unknown"
                    row.symbol = "0x" + String(key.ops, radix: 16)
                }
                subscribers[key] = row
            }
        }
        return t
    }

    func readUserfaultfd(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) throws -> UserfaultfdTotals {
        var t = UserfaultfdTotals()
        do {
            let v = try o.totals(.ufTotals, as: uf_totals.self)
            t.faults = cArray(v.faults, count: UffdKind.count)
            t.outcomes = cArray(v.outcomes, count: UffdOutcome.count)
            t.ops = cArray(v.ops, count: UffdOp.count)
            t.opBytes = cArray(v.op_bytes, count: UffdOp.count)
            t.opsFailed = v.op_failed
            t.processOverflow = v.proc_overflow
            t.startLost = v.start_lost
            t.filtered = v.filtered
            t.waiting = waitingFaults(t.faults, t.outcomes)
        }
        t.stall = try o.map(.ufHists).histograms(UffdKind.allCases.map { UInt32($0.rawValue) })
        try mergeProcessRows(o, .ufProcs, as: uf_proc.self, startTime: \.start_time, comm: \.comm,
                             into: &procs) { row, v in
            var p = ProcessUserfaultfd()
            p.startTime = v.start_time
            p.faults = cArray(v.faults, count: UffdKind.count)
            p.outcomes = cArray(v.outcomes, count: UffdOutcome.count)
            p.ops = cArray(v.ops, count: UffdOp.count)
            p.opBytes = cArray(v.op_bytes, count: UffdOp.count)
            p.opsFailed = v.op_failed
            p.waiting = waitingFaults(p.faults, p.outcomes)
            p.stall = Histogram(v.stall)
            row.userfaultfd = p
        }
        return t
    }

    /// Removes the stock sources' rows of processes `gone` says to remove.
    func maintainStock(gone: (UInt32) -> Bool) -> Int {
        var removed = 0
        if let o = objects[.mmuNotifier] {
            removed += (try? o.map(.mnProcs).deleteRows(UInt32.self, mn_proc.self) { pid, _ in gone(pid) }) ?? 0
            // A cause row goes with its owner, or with the other process
            // that caused it (kernel threads are keyed by name).
            removed += (try? o.map(.mnCauses).deleteRows(CauseMapKey.self, mn_cause_val.self) { k, _ in
                gone(k.owner) || (k.kind == MN_CAUSE_OTHER.rawValue && gone(k.causeTgid))
            }) ?? 0
            removed += (try? o.map(.mnSubs).deleteRows(SubscriberMapKey.self, mn_sub.self) { k, _ in
                gone(k.owner)
            }) ?? 0
        }
        if let o = objects[.userfaultfd] {
            removed += (try? o.map(.ufProcs).deleteRows(UInt32.self, uf_proc.self) { pid, _ in gone(pid) }) ?? 0
        }
        return removed
    }
}
