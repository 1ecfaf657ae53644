import UmmuKit

/// Synthetic snapshots of N busy processes, for the ummutop benchmark and
/// for trying the screen without root or the drivers (`ummutop --synthetic
/// N`). Deterministic, every source at once; process i (pid 1000 + i,
/// command synth-i), per second:
/// - ummunotify: (i % 7 + 1) * 10 invalidations (reasons round-robin over
///   the refreshes), 8 + i % 24 registrations held;
/// - umem: (i % 5) * 20 faults with latencies around 2^(10 + i % 12) ns;
/// - mmu_notifier: (i % 6 + 1) * 5 invalidations, by reason i % 3 (unmap,
///   clear, protection_page), caused by the process itself (i % 3 == 0), by
///   kswapd0 (i % 3 == 1) or by the next synthetic process (i % 3 == 2);
///   range_start callbacks of 2^(8 + i % 8) ns; i % 4 young calls; the
///   subscribers kvm (even i) and ummunotify (i % 3 == 0, an interval
///   notifier) see every invalidation;
/// - userfaultfd: (i % 4) * 15 faults of kind i % 3 (missing, wp, minor),
///   each resolved by the matching ioctl (copy, writeprotect, continue) of
///   one page, stalls of 2^(12 + i % 10) ns; i % 2 faults waiting.
package struct SyntheticSource: Sendable {
    package let processes: Int
    private var ticks: UInt64 = 0
    private var base: Snapshot

    static let kvmOps: UInt64 = 0xffff_ffff_c0de_0000
    static let ummunotifyOps: UInt64 = 0xffff_ffff_c0de_1000

    package init(processes: Int) {
        self.processes = max(0, processes)
        base = Snapshot(monotonicNs: monotonicNs(), wallNs: 0, ummunotify: UmmunotifyTotals(), umem: UmemTotals(),
                        mmuNotifier: MMUNotifierTotals(), userfaultfd: UserfaultfdTotals())
        for i in 0..<self.processes {
            let pid = Self.pid(i)
            base.processes[pid] = ProcessRow(pid: pid, comm: "synth-\(i)", ummunotify: ProcessUmmunotify(), umem: ProcessUmem(),
                                             mmuNotifier: ProcessMMUNotifier(), userfaultfd: ProcessUserfaultfd())
        }
    }

    static func pid(_ i: Int) -> UInt32 { UInt32(1000 + i) }

    /// The next snapshot: counters as if `seconds` passed since the last one.
    package mutating func snapshot(advance seconds: Double = 1) -> Snapshot {
        ticks += 1
        let s = max(0, seconds)
        var snap = base
        snap.monotonicNs = base.monotonicNs &+ UInt64(s * 1e9)
        snap.wallNs = Int64(ticks) * 1_000_000_000
        func per(_ perSecond: Int) -> UInt64 { UInt64((Double(perSecond) * s).rounded()) }
        for i in 0..<processes {
            let pid = Self.pid(i)
            guard var row = snap.processes[pid] else { continue }
            drivers(i, &row, &snap, per)
            mmuNotifier(i, &row, &snap, per)
            userfaultfd(i, &row, &snap, per)
            snap.processes[pid] = row
        }
        snap.userfaultfd?.waiting = UInt64(processes / 2)  // a gauge: the odd processes' one each
        base = snap
        return snap
    }

    private func drivers(_ i: Int, _ row: inout ProcessRow, _ snap: inout Snapshot, _ per: (Int) -> UInt64) {
        var inval = snap.ummunotify ?? UmmunotifyTotals()
        var um = snap.umem ?? UmemTotals()
        let n = per((i % 7 + 1) * 10)
        var u = row.ummunotify ?? ProcessUmmunotify()
        let reason = Int(ticks + UInt64(i)) % 4
        u.invalidations[reason] &+= n
        u.invalidatedBytes[reason] &+= n * 4096
        u.reportsQueued &+= n
        u.registrationsHeld = UInt64(8 + i % 24)
        inval.invalidations[reason] &+= n
        inval.invalidatedBytes[reason] &+= n * 4096
        row.ummunotify = u
        let f = per((i % 5) * 20)
        var m = row.umem ?? ProcessUmem()
        m.faults &+= f
        m.faultsWaited &+= f
        m.pagesOnDemand &+= f
        m.pendingRequests = UInt64(i % 3)
        let lat = UInt64(1) << UInt64(10 + i % 12)
        m.stallLatency.record(lat + UInt64(ticks % 97) * 13, times: f)
        m.serviceLatency.record(lat / 2, times: f)
        um.faults &+= f
        um.stallLatency.record(lat, times: f)
        um.serviceLatency.record(lat / 2, times: f)
        row.umem = m
        snap.ummunotify = inval
        snap.umem = um
    }

    private func mmuNotifier(_ i: Int, _ row: inout ProcessRow, _ snap: inout Snapshot, _ per: (Int) -> UInt64) {
        var t = snap.mmuNotifier ?? MMUNotifierTotals()
        var p = row.mmuNotifier ?? ProcessMMUNotifier()
        let n = per((i % 6 + 1) * 5)
        let reason: Reason = [.unmap, .clear, .protectionPage][i % 3]
        let cause: CauseKind = [.owner, .kernelThread, .otherProcess][i % 3]
        let young = per(i % 4)
        let lat = UInt64(1) << UInt64(8 + i % 8)
        p.invalidations[reason.rawValue] &+= n
        p.invalidatedBytes[reason.rawValue] &+= n * 4096
        p.byCause[cause.rawValue] &+= n
        p.young &+= young
        p.startLatency.record(lat + UInt64(ticks % 31), times: n)
        p.endLatency.record(lat / 4, times: n)
        t.invalidations[reason.rawValue] &+= n
        t.invalidatedBytes[reason.rawValue] &+= n * 4096
        t.byCause[cause.rawValue] &+= n
        t.young[YoungKind.clearFlush.rawValue] &+= young
        t.startLatency.record(lat, times: n)
        t.endLatency.record(lat / 4, times: n)
        row.mmuNotifier = p
        snap.mmuNotifier = t
        let causePID = cause == .owner ? Self.pid(i) : (cause == .kernelThread ? 90 : Self.pid((i + 1) % max(1, processes)))
        let causeComm = cause == .owner ? "" : (cause == .kernelThread ? "kswapd0" : "synth-\((i + 1) % max(1, processes))")
        let key = CauseKey(owner: Self.pid(i), kind: cause, causePID: causePID, causeComm: causeComm, reason: reason)
        snap.causes[key, default: CauseCounts()].invalidations &+= n
        snap.causes[key, default: CauseCounts()].bytes &+= n * 4096
        var subs: [(UInt64, Bool, String, String)] = []
        if i % 2 == 0 { subs.append((Self.kvmOps, false, "kvm", "kvm_mmu_notifier_ops")) }
        if i % 3 == 0 { subs.append((Self.ummunotifyOps, true, "ummunotify", "ummunotify_interval_ops")) }
        for (ops, interval, name, symbol) in subs {
            let k = SubscriberKey(ops: ops, owner: Self.pid(i), interval: interval)
            var r = snap.subscribers[k] ?? SubscriberRow()
            r.name = name
            r.symbol = symbol
            r.invalidations[reason.rawValue] &+= n
            r.invalidatedBytes[reason.rawValue] &+= n * 4096
            r.young &+= young
            snap.subscribers[k] = r
        }
    }

    private func userfaultfd(_ i: Int, _ row: inout ProcessRow, _ snap: inout Snapshot, _ per: (Int) -> UInt64) {
        var t = snap.userfaultfd ?? UserfaultfdTotals()
        var p = row.userfaultfd ?? ProcessUserfaultfd()
        let f = per((i % 4) * 15)
        let kind: UffdKind = [.missing, .writeProtect, .minor][i % 3]
        let op: UffdOp = [.copy, .writeProtect, .continue][i % 3]
        let lat = UInt64(1) << UInt64(12 + i % 10)
        p.faults[kind.rawValue] &+= f
        p.outcomes[UffdOutcome.resolved.rawValue] &+= f
        p.ops[op.rawValue] &+= f
        p.opBytes[op.rawValue] &+= f * basePageSize
        p.waiting = UInt64(i % 2)
        p.stall.record(lat + UInt64(ticks % 61) * 7, times: f)
        t.faults[kind.rawValue] &+= f
        t.outcomes[UffdOutcome.resolved.rawValue] &+= f
        t.ops[op.rawValue] &+= f
        t.opBytes[op.rawValue] &+= f * basePageSize
        t.stall[kind.rawValue].record(lat, times: f)
        row.userfaultfd = p
        snap.userfaultfd = t
    }
}
