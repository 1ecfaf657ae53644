/// The stock-kernel sources in ummutrace's text output: summaries,
/// histograms and three tables (processes, subscribers, causes).
extension TextRenderer {
    func stockSummary(_ i: Interval) -> String {
        var out = ""
        let secs = Fmt.fixed(i.durationSeconds, 2)
        if let n = i.mmuNotifier {
            let reasons = Reason.allCases.filter { n.invalidations[$0.rawValue] > 0 }
                .map { "\($0.name) \(rate(i, n.invalidations[$0.rawValue]))" }
            out += "mmu_notifier (\(secs)s): invalidations/s \(rate(i, n.totalInvalidations))"
                + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: ", ") + ")")
                + ", bytes/s \(Fmt.human(i.rate(n.invalidatedBytes.reduce(0, &+)), binary: true))\n"
            let causes = CauseKind.allCases.map { "\($0.name) \(rate(i, n.byCause[$0.rawValue]))" }
            out += "  by cause/s: " + causes.joined(separator: ", ")
                + "; non-blocking/s \(rate(i, n.nonBlocking)), failed \(n.failed),"
                + " releases \(n.releases), young/s \(rate(i, n.young.reduce(0, &+)))\n"
            out += "  callbacks: start p50 \(latency(n.startLatency.percentile(0.5)))"
                + " p99 \(latency(n.startLatency.percentile(0.99))) \(timeUnit),"
                + " end p50 \(latency(n.endLatency.percentile(0.5)))"
                + " p99 \(latency(n.endLatency.percentile(0.99))) \(timeUnit)\n"
            for c in i.callbacks {
                out += "  \(c.name) callback (\(c.function)): calls/s \(rate(i, c.latency.total)),"
                    + " p50 \(latency(c.latency.percentile(0.5))) p99 \(latency(c.latency.percentile(0.99)))"
                    + " \(timeUnit)" + (c.failed > 0 ? ", failed \(c.failed)" : "") + "\n"
            }
            let lost = n.processOverflow + n.causeOverflow + n.subscriberOverflow + n.walkTruncated
            if lost > 0 {
                out += "  overflow: \(n.processOverflow) process rows, \(n.causeOverflow) cause rows,"
                    + " \(n.subscriberOverflow) subscriber rows lost; \(n.walkTruncated) walks cut short\n"
            }
        }
        if let u = i.userfaultfd {
            let kinds = UffdKind.allCases.map { "\($0.name) \(rate(i, u.faults[$0.rawValue]))" }
            let outcomes = UffdOutcome.allCases.filter { u.outcomes[$0.rawValue] > 0 }
                .map { "\($0.name) \(u.outcomes[$0.rawValue])" }
            out += "userfaultfd (\(secs)s): faults/s \(rate(i, u.totalFaults)) (" + kinds.joined(separator: ", ")
                + "), waiting \(u.waiting)" + (outcomes.isEmpty ? "" : ", " + outcomes.joined(separator: ", ")) + "\n"
            let ops = UffdOp.allCases.filter { u.ops[$0.rawValue] > 0 }
                .map { "\($0.name) \(rate(i, u.ops[$0.rawValue]))/s \(Fmt.human(i.rate(u.opBytes[$0.rawValue]), binary: true))B/s" }
            out += "  resolved by: " + (ops.isEmpty ? "-" : ops.joined(separator: ", "))
                + (u.opsFailed > 0 ? "; \(u.opsFailed) ioctls resolved nothing" : "") + "\n"
            if u.processOverflow > 0 { out += "  overflow: \(u.processOverflow) process rows lost\n" }
        }
        return out
    }

    func stockHistograms(_ i: Interval) -> [(String, Histogram, Double)] {
        var hists: [(String, Histogram, Double)] = []
        if let n = i.mmuNotifier {
            hists.append(("\(timeUnit) (mmu_notifier start callbacks)", n.startLatency, timeDivisor))
            hists.append(("\(timeUnit) (mmu_notifier end callbacks)", n.endLatency, timeDivisor))
            for c in i.callbacks {
                hists.append(("\(timeUnit) (\(c.name) invalidate_range_start)", c.latency, timeDivisor))
            }
        }
        if let u = i.userfaultfd {
            for k in UffdKind.allCases {
                hists.append(("\(timeUnit) (userfaultfd \(k.name) stall)", u.stall[k.rawValue], timeDivisor))
            }
        }
        return hists
    }

    func stockTables(_ i: Interval) -> String {
        var out = ""
        let rows = i.processes.filter { $0.mmuNotifier != nil || $0.userfaultfd != nil }
            .sorted { a, b in
                let ka = (a.mmuNotifier?.totalInvalidations ?? 0) + (a.userfaultfd?.totalFaults ?? 0)
                let kb = (b.mmuNotifier?.totalInvalidations ?? 0) + (b.userfaultfd?.totalFaults ?? 0)
                return ka != kb ? ka > kb : a.pid < b.pid
            }.prefix(maxProcesses)
        if !rows.isEmpty {
            out += "\n" + Fmt.pad("PID", 7) + " " + Fmt.pad("COMM", 16, right: true)
                + Fmt.pad("MN INV/s", 10) + Fmt.pad("NOT SELF", 9) + Fmt.pad("CB p99", 9)
                + Fmt.pad("UFFD/s", 9) + Fmt.pad("STALL p50", 10) + Fmt.pad("STALL p99", 10)
                + Fmt.pad("WAITING", 8) + Fmt.pad("RESOLVED", 9) + "\n"
            for p in rows {
                let n = p.mmuNotifier, u = p.userfaultfd
                out += Fmt.pad(String(p.pid), 7) + " " + Fmt.pad(String(Fmt.printable(p.comm).prefix(15)), 16, right: true)
                    + Fmt.pad(n.map { rate(i, $0.totalInvalidations) } ?? "-", 10)
                    + Fmt.pad(n.map { String($0.byCause[1] + $0.byCause[2]) } ?? "-", 9)
                    + Fmt.pad(n.map { latency($0.startLatency.percentile(0.99)) } ?? "-", 9)
                    + Fmt.pad(u.map { rate(i, $0.totalFaults) } ?? "-", 9)
                    + Fmt.pad(u.map { latency($0.stall.percentile(0.5)) } ?? "-", 10)
                    + Fmt.pad(u.map { latency($0.stall.percentile(0.99)) } ?? "-", 10)
                    + Fmt.pad(u.map { String($0.waiting) } ?? "-", 8)
                    + Fmt.pad(u.map { String($0.ops.reduce(0, &+)) } ?? "-", 9) + "\n"
            }
        }
        if !i.subscribers.isEmpty {
            out += "\n" + Fmt.pad("PID", 7) + " " + Fmt.pad("SUBSCRIBER", 16, right: true)
                + Fmt.pad("KIND", 9, right: true) + Fmt.pad("INVAL/s", 10) + Fmt.pad("BYTES/s", 10)
                + Fmt.pad("RELEASE", 8) + Fmt.pad("YOUNG/s", 9) + "  REASONS\n"
            for e in i.subscribers.prefix(maxProcesses) {
                let r = e.row
                let reasons = Reason.allCases.filter { r.invalidations[$0.rawValue] > 0 }
                    .map { "\($0.name) \(r.invalidations[$0.rawValue])" }.joined(separator: ", ")
                out += Fmt.pad(String(e.key.owner), 7) + " " + Fmt.pad(String(r.name.prefix(15)), 16, right: true)
                    + Fmt.pad(e.key.interval ? "interval" : "notifier", 9, right: true)
                    + Fmt.pad(rate(i, r.totalInvalidations), 10)
                    + Fmt.pad(Fmt.human(i.rate(r.invalidatedBytes.reduce(0, &+)), binary: true), 10)
                    + Fmt.pad(String(r.releases), 8) + Fmt.pad(rate(i, r.young), 9) + "  " + reasons + "\n"
            }
        }
        if !i.causes.isEmpty {
            out += "\n" + Fmt.pad("PID", 7) + " " + Fmt.pad("CAUSED BY", 24, right: true)
                + Fmt.pad("REASON", 16, right: true) + Fmt.pad("INVAL/s", 10) + Fmt.pad("BYTES/s", 10) + "\n"
            for e in i.causes.prefix(maxProcesses) {
                let k = e.key
                let who = k.kind == .owner ? "self"
                    : "\(Fmt.printable(k.causeComm)) (\(k.kind == .kernelThread ? "kthread" : "pid \(k.causePID)"))"
                out += Fmt.pad(String(k.owner), 7) + " " + Fmt.pad(String(who.prefix(23)), 24, right: true)
                    + Fmt.pad(k.reason.name, 16, right: true) + Fmt.pad(rate(i, e.counts.invalidations), 10)
                    + Fmt.pad(Fmt.human(i.rate(e.counts.bytes), binary: true), 10) + "\n"
            }
        }
        return out
    }
}
