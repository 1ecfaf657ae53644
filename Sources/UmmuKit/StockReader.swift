import UmmuBPF

/// Swift mirrors of the stock programs' C map keys (same bytes), Hashable
/// so the map walks can use them.
struct CauseMapKey: Hashable, BitwiseCopyable {
    var owner: UInt32
    var causeTgid: UInt32
    var kind: UInt32
    var reason: UInt32
    var comm: (UInt64, UInt64)

    static func == (a: CauseMapKey, b: CauseMapKey) -> Bool {
        a.owner == b.owner && a.causeTgid == b.causeTgid && a.kind == b.kind && a.reason == b.reason
            && a.comm.0 == b.comm.0 && a.comm.1 == b.comm.1
    }

    func hash(into h: inout Hasher) {
        h.combine(owner)
        h.combine(causeTgid)
        h.combine(kind)
        h.combine(reason)
        h.combine(comm.0)
        h.combine(comm.1)
    }
}

struct SubscriberMapKey: Hashable, BitwiseCopyable {
    var ops: UInt64
    var owner: UInt32
    var kind: UInt32
}

extension Tracer {
    func readMMUNotifier(_ o: BPFObject, into procs: inout [UInt32: ProcessRow],
                         subscribers: inout [SubscriberKey: SubscriberRow],
                         causes: inout [CauseKey: CauseCounts]) -> MMUNotifierTotals {
        var t = MMUNotifierTotals()
        if let v = o.totals("mn_totals", as: mn_totals.self) {
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
        if let m = try? o.map("mn_hists") {
            t.startLatency = m.histogram(at: UInt32(MN_HIST_START.rawValue))
            t.endLatency = m.histogram(at: UInt32(MN_HIST_END.rawValue))
            t.spanBytes = m.histogram(at: UInt32(MN_HIST_SPAN.rawValue))
        }
        if let m = try? o.map("mn_procs"), (try? m.check(UInt32.self, mn_proc.self)) != nil {
            for pid in m.keys(as: UInt32.self) {
                guard let v = m.lookup(pid, as: mn_proc.self)?.first else { continue }
                var p = ProcessMMUNotifier()
                p.invalidations = cArray(v.inval, count: Reason.count)
                p.invalidatedBytes = cArray(v.bytes, count: Reason.count)
                p.byCause = cArray(v.by_cause, count: CauseKind.count)
                p.nonBlocking = v.nonblock
                p.failed = v.failed
                p.releases = v.release
                p.young = v.young
                p.startLatency = Histogram(v.start_ns)
                p.endLatency = Histogram(v.end_ns)
                var row = procs[pid] ?? ProcessRow(pid: pid)
                row.mmuNotifier = p
                if row.comm.isEmpty { row.comm = cString(v.comm) }
                procs[pid] = row
            }
        }
        if let m = try? o.map("mn_causes"), (try? m.check(CauseMapKey.self, mn_cause_val.self)) != nil {
            for k in m.keys(as: CauseMapKey.self) {
                guard let v = m.lookup(k, as: mn_cause_val.self)?.first,
                      let kind = CauseKind(rawValue: Int(k.kind)) else { continue }
                let key = CauseKey(owner: k.owner, kind: kind, causePID: k.causeTgid,
                                   causeComm: cString(k.comm), reason: Reason(rawValue: Int(k.reason)) ?? .other)
                causes[key] = CauseCounts(invalidations: v.inval, bytes: v.bytes)
            }
        }
        if let m = try? o.map("mn_subs"), (try? m.check(SubscriberMapKey.self, mn_sub.self)) != nil {
            var rows: [(SubscriberKey, SubscriberRow)] = []
            for k in m.keys(as: SubscriberMapKey.self) {
                guard let v = m.lookup(k, as: mn_sub.self)?.first else { continue }
                var r = SubscriberRow()
                r.invalidations = cArray(v.inval, count: Reason.count)
                r.invalidatedBytes = cArray(v.bytes, count: Reason.count)
                r.releases = v.release
                r.young = v.young
                r.callback = v.callback
                rows.append((SubscriberKey(ops: k.ops, owner: k.owner, interval: k.kind == MN_SUB_INTERVAL.rawValue), r))
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

    func readUserfaultfd(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) -> UserfaultfdTotals {
        var t = UserfaultfdTotals()
        if let v = o.totals("uf_totals", as: uf_totals.self) {
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
        if let m = try? o.map("uf_hists") {
            t.stall = UffdKind.allCases.map { m.histogram(at: UInt32($0.rawValue)) }
        }
        if let m = try? o.map("uf_procs"), (try? m.check(UInt32.self, uf_proc.self)) != nil {
            for pid in m.keys(as: UInt32.self) {
                guard let v = m.lookup(pid, as: uf_proc.self)?.first else { continue }
                var p = ProcessUserfaultfd()
                p.faults = cArray(v.faults, count: UffdKind.count)
                p.outcomes = cArray(v.outcomes, count: UffdOutcome.count)
                p.ops = cArray(v.ops, count: UffdOp.count)
                p.opBytes = cArray(v.op_bytes, count: UffdOp.count)
                p.opsFailed = v.op_failed
                p.waiting = waitingFaults(p.faults, p.outcomes)
                p.stall = Histogram(v.stall)
                var row = procs[pid] ?? ProcessRow(pid: pid)
                row.userfaultfd = p
                if row.comm.isEmpty { row.comm = cString(v.comm) }
                procs[pid] = row
            }
        }
        return t
    }

    /// Removes the stock sources' rows of processes `gone` says to remove.
    func maintainStock(gone: (UInt32) -> Bool) -> Int {
        var removed = 0
        if let o = objects[.mmuNotifier] {
            if let m = try? o.map("mn_procs") {
                for pid in m.keys(as: UInt32.self) where gone(pid) { if m.delete(pid) { removed += 1 } }
            }
            if let m = try? o.map("mn_causes") {
                // A cause row goes with its owner, or with the other
                // process that caused it (kernel threads are keyed by name).
                for k in m.keys(as: CauseMapKey.self)
                where gone(k.owner) || (k.kind == MN_CAUSE_OTHER.rawValue && gone(k.causeTgid)) {
                    if m.delete(k) { removed += 1 }
                }
            }
            if let m = try? o.map("mn_subs") {
                for k in m.keys(as: SubscriberMapKey.self) where gone(k.owner) { if m.delete(k) { removed += 1 } }
            }
        }
        if let o = objects[.userfaultfd], let m = try? o.map("uf_procs") {
            for pid in m.keys(as: UInt32.self) where gone(pid) { if m.delete(pid) { removed += 1 } }
        }
        return removed
    }
}
