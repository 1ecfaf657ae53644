// StockMetrics.swift - the families of the stock-kernel sources (MMU-notifier
// core, userfaultfd); docs/metrics.md lists them with the driver families.
// Per-process series share the driver families' top-N bound; subscriber
// series are per subscriber name (kvm, amdgpu...: few), never per process.

extension UmmuMetricsState {
    typealias Labels = [(name: String, value: String)]

    func mmuNotifierFamilies(_ procs: [(labels: Labels, series: Series)]) -> [PrometheusFamily] {
        var inv = PrometheusFamily(name: UmmuMetricName.mnInvalidations,
            help: "Invalidations through the kernel's MMU-notifier core, by reason and owning process.",
            type: .counter)
        var bytes = PrometheusFamily(name: UmmuMetricName.mnInvalidatedBytes,
            help: "Bytes covered by those invalidations, by reason and owning process.",
            type: .counter)
        var cause = PrometheusFamily(name: UmmuMetricName.mnCauses,
            help: "Invalidations by who caused them: cause=\"self\" the owning process, \"other\" another process, \"kthread\" a kernel thread.",
            type: .counter)
        Self.addByReason(procs, \.mnInvalidations, \.mnInvalidatedBytes, to: &inv, &bytes)
        for (labels, s) in procs {
            for c in CauseKind.allCases where s.mnByCause[c.rawValue] > 0 {
                cause.samples.append(PrometheusSample(labels: [("cause", c.name)] + labels,
                                                      value: Double(s.mnByCause[c.rawValue])))
            }
        }
        var subs = PrometheusFamily(name: UmmuMetricName.mnSubscriberInvalidations,
            help: "Invalidations reaching each subscriber (kvm, ummunotify, amdgpu...), by reason, all processes.",
            type: .counter)
        for (name, v) in mnSubscribers.sorted(by: { $0.key < $1.key }) {
            for r in Reason.allCases where v[r.rawValue] > 0 {
                subs.samples.append(PrometheusSample(labels: [("subscriber", name), ("reason", r.name)],
                                                     value: Double(v[r.rawValue])))
            }
        }
        var callbacks = PrometheusFamily(name: UmmuMetricName.mnCallbacks,
            help: "Time the subscribers' callbacks held an invalidating thread: side=\"start\" (invalidate_range_start) or \"end\", by owning process.",
            type: .histogram)
        callbacks.samples = histogramSamples(procs, \.callbackStart, labels: [("side", "start")])
            + histogramSamples(procs, \.callbackEnd, labels: [("side", "end")])
        var subCallbacks = PrometheusFamily(name: UmmuMetricName.mnSubscriberCallbacks,
            help: "Time each subscriber's own invalidate_range_start callback took (subscribers whose function has BTF).",
            type: .histogram)
        for (name, h) in mnSubscriberCallbacks.sorted(by: { $0.key < $1.key }) {
            subCallbacks.samples += h.prometheusSamples(divisor: 1e9, maxSlot: 36, labels: [("subscriber", name)])
        }
        return [
            inv, bytes, cause, subs, callbacks, subCallbacks,
            PrometheusFamily(name: UmmuMetricName.mnFailed,
                help: "invalidate_range_start calls a subscriber failed (-EAGAIN on a non-blocking range).",
                type: .counter, samples: [PrometheusSample(value: Double(mnFailed))]),
            PrometheusFamily(name: UmmuMetricName.mnReleases,
                help: "MMU-notifier releases (an mm with subscribers torn down).",
                type: .counter, samples: [PrometheusSample(value: Double(mnReleases))]),
            PrometheusFamily(name: UmmuMetricName.mnYoung,
                help: "Page-aging calls into the subscribers, by kind.",
                type: .counter, samples: YoungKind.allCases.map {
                    PrometheusSample(labels: [("kind", $0.name)], value: Double(mnYoung[$0.rawValue]))
                }),
        ]
    }

    func userfaultfdFamilies(_ procs: [(labels: Labels, series: Series)]) -> [PrometheusFamily] {
        var faults = PrometheusFamily(name: UmmuMetricName.ufFaults,
            help: "userfaultfd faults, by kind (missing, wp, minor) and faulting process.",
            type: .counter)
        for (labels, s) in procs {
            for k in UffdKind.allCases where s.ufFaults[k.rawValue] > 0 || isOther(labels) {
                faults.samples.append(PrometheusSample(labels: [("kind", k.name)] + labels,
                                                       value: Double(s.ufFaults[k.rawValue])))
            }
        }
        var stall = PrometheusFamily(name: UmmuMetricName.ufStall,
            help: "Time a thread spent in a userfaultfd fault, from entry to return, by kind.",
            type: .histogram)
        for k in UffdKind.allCases {
            stall.samples += ufStall[k.rawValue].prometheusSamples(divisor: 1e9, maxSlot: 36, labels: [("kind", k.name)])
        }
        return [
            faults,
            PrometheusFamily(name: UmmuMetricName.ufOutcomes,
                help: "How userfaultfd faults returned: resolved, retried (could not wait), sigbus, signal.",
                type: .counter, samples: UffdOutcome.allCases.map {
                    PrometheusSample(labels: [("outcome", $0.name)], value: Double(ufOutcomes[$0.rawValue]))
                }),
            stall,
            PrometheusFamily(name: UmmuMetricName.ufOps,
                help: "Resolving ioctls of userfaultfd handlers, by operation.",
                type: .counter, samples: UffdOp.allCases.map {
                    PrometheusSample(labels: [("op", $0.name)], value: Double(ufOps[$0.rawValue]))
                }),
            PrometheusFamily(name: UmmuMetricName.ufResolvedBytes,
                help: "Bytes those ioctls resolved (copied, zeroed, mapped, protected, moved), by operation.",
                type: .counter, samples: UffdOp.allCases.map {
                    PrometheusSample(labels: [("op", $0.name)], value: Double(ufOpBytes[$0.rawValue]))
                }),
            PrometheusFamily(name: UmmuMetricName.ufWaiting,
                help: "userfaultfd faults entered and not yet returned, at the end of the interval.",
                type: .gauge, samples: [PrometheusSample(value: Double(ufWaiting))]),
        ]
    }
}
