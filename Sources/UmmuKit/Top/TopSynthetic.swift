/// Synthetic snapshots of N busy processes, for the ummutop benchmark and
/// for trying the screen without the drivers (`ummutop --synthetic N`).
/// Deterministic: process i invalidates (i % 7 + 1) * 10 times a second
/// (reasons round-robin) and faults (i % 5) * 20 times a second with
/// latencies around 2^(10 + i % 12) ns.
public struct SyntheticSource: Sendable {
    public let processes: Int
    private var ticks: UInt64 = 0
    private var base: Snapshot

    public init(processes: Int) {
        self.processes = max(0, processes)
        base = Snapshot(monotonicNs: monotonicNs(), wallNs: 0, ummunotify: UmmunotifyTotals(), umem: UmemTotals())
        for i in 0..<self.processes {
            let pid = UInt32(1000 + i)
            base.processes[pid] = ProcessRow(pid: pid, comm: "synth-\(i)", ummunotify: ProcessUmmunotify(), umem: ProcessUmem())
        }
    }

    /// The next snapshot: counters as if `seconds` passed since the last one.
    public mutating func snapshot(advance seconds: Double = 1) -> Snapshot {
        ticks += 1
        let s = max(0, seconds)
        var snap = base
        snap.monotonicNs = base.monotonicNs &+ UInt64(s * 1e9)
        snap.wallNs = Int64(ticks) * 1_000_000_000
        var inval = snap.ummunotify ?? UmmunotifyTotals()
        var um = snap.umem ?? UmemTotals()
        for (pid, var row) in base.processes {
            let i = Int(pid) - 1000
            let n = UInt64((Double((i % 7 + 1) * 10) * s).rounded())
            var u = row.ummunotify ?? ProcessUmmunotify()
            let reason = Int(ticks + UInt64(i)) % 4
            u.invalidations[reason] &+= n
            u.invalidatedBytes[reason] &+= n * 4096
            u.reportsQueued &+= n
            u.registrationsHeld = UInt64(8 + i % 24)
            inval.invalidations[reason] &+= n
            inval.invalidatedBytes[reason] &+= n * 4096
            row.ummunotify = u
            let f = UInt64((Double((i % 5) * 20) * s).rounded())
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
            snap.processes[pid] = row
        }
        snap.ummunotify = inval
        snap.umem = um
        base = snap
        return snap
    }
}
