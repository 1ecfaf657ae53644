/// The one summary of a whole run (ummutrace without an interval).
///
/// Maintenance must run during a long run, as in the interval modes: it
/// deletes the BPF rows of processes that exited (the maps are bounded).
/// A summary from the first and last snapshots alone would then lose the
/// exited processes, so each observed snapshot's rows are remembered until
/// they leave the maps, and kept from then on: at most `maxKept` processes,
/// and as many subscriber and cause rows each (a cause row also leaves when
/// the process that caused it exits, its owner still running). The totals
/// count everything regardless; `unlisted` says how many exited processes
/// the summary could not list.
public struct RunSummary: Sendable {
    public let start: Snapshot
    public let maxKept: Int
    /// Exited processes that could not be listed (over `maxKept`, or their
    /// pid taken by a live process by the end).
    public private(set) var unlisted = 0
    private var last: Snapshot?
    /// Cumulative rows (as BPF had them) of owners that left the maps;
    /// their gauges are zero, since the process is gone.
    private var kept = Snapshot()

    public init(start: Snapshot, maxKept: Int = 4096) {
        self.start = start
        self.maxKept = maxKept
    }

    /// A snapshot taken during the run, before maintenance deletes rows.
    public mutating func observe(_ s: Snapshot) {
        if let last {
            for (pid, row) in last.processes where s.processes[pid] == nil { keep(row) }
            for (k, row) in last.subscribers where s.subscribers[k] == nil && kept.subscribers.count < maxKept {
                kept.subscribers[k] = row
            }
            for (k, c) in last.causes where s.causes[k] == nil && kept.causes.count < maxKept {
                kept.causes[k] = c
            }
        }
        last = s
    }

    private mutating func keep(_ row: ProcessRow) {
        guard kept.processes[row.pid] == nil, kept.processes.count < maxKept else {
            unlisted += 1
            return
        }
        kept.processes[row.pid] = row.exited
    }

    /// The run's interval, start to `end`, with the processes that exited
    /// on the way. Call once, at the end.
    public mutating func finish(at end: Snapshot) -> Interval {
        observe(end)
        var e = end
        var reused = Set<UInt32>()
        for (pid, row) in kept.processes {
            // A pid taken again by a live process: that one is listed.
            if e.processes[pid] == nil { e.processes[pid] = row } else { reused.insert(pid) }
        }
        unlisted += reused.count
        // Rows of an owner whose pid a live process took would be shown as
        // that process's: left out with their owner.
        for (k, row) in kept.subscribers where e.subscribers[k] == nil && !reused.contains(k.owner) {
            e.subscribers[k] = row
        }
        for (k, c) in kept.causes where e.causes[k] == nil && !reused.contains(k.owner) { e.causes[k] = c }
        return Interval(from: start, to: e)
    }
}

extension ProcessRow {
    /// The row of a process that has exited: counters kept, gauges zero.
    var exited: ProcessRow {
        var r = self
        r.ummunotify?.registrationsHeld = 0
        r.umem?.pendingRequests = 0
        r.userfaultfd?.waiting = 0
        return r
    }
}
