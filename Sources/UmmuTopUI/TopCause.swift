import UmmuKit

/// The busiest cause of a process's MMU-notifier invalidations, for the
/// CAUSE column: the process itself, another process or a kernel thread.
package struct TopCause: Sendable, Equatable {
    /// "self", "[kswapd0]" (a kernel thread), "qemu:4711" (another process).
    package var text: String
    /// Its share of the process's invalidations, percent.
    package var sharePercent: Double

    package init(text: String, sharePercent: Double) {
        self.text = text
        self.sharePercent = sharePercent
    }

    /// How a cause shows: kernel threads in brackets as ps shows them.
    package static func text(kind: CauseKind, pid: UInt32, comm: String) -> String {
        switch kind {
        case .owner: return "self"
        case .kernelThread: return "[" + Fmt.printable(comm) + "]"
        case .otherProcess: return Fmt.printable(comm) + ":" + String(pid)
        }
    }

    /// Each process's busiest cause over all reasons. Ties go to the
    /// process itself, then to other processes, then by name.
    package static func busiest(_ causes: [CauseEntry]) -> [UInt32: TopCause] {
        struct Who: Hashable {
            var kind: CauseKind
            var pid: UInt32
            var comm: String
        }
        var counts: [UInt32: [Who: UInt64]] = [:]
        var totals: [UInt32: UInt64] = [:]
        for e in causes where e.counts.invalidations > 0 {
            let k = e.key
            let who = Who(kind: k.kind, pid: k.kind == .owner ? k.owner : k.causePID,
                          comm: k.kind == .owner ? "" : k.causeComm)
            counts[k.owner, default: [:]][who, default: 0] &+= e.counts.invalidations
            totals[k.owner, default: 0] &+= e.counts.invalidations
        }
        var out: [UInt32: TopCause] = [:]
        for (owner, byWho) in counts {
            let top = byWho.max { a, b in
                if a.value != b.value { return a.value < b.value }
                return (a.key.kind.rawValue, a.key.comm, a.key.pid) > (b.key.kind.rawValue, b.key.comm, b.key.pid)
            }
            guard let top, let total = totals[owner], total > 0 else { continue }
            out[owner] = TopCause(text: text(kind: top.key.kind, pid: top.key.pid, comm: top.key.comm),
                                  sharePercent: Double(top.value) / Double(total) * 100)
        }
        return out
    }
}
