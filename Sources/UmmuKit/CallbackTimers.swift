import UmmuBPF

/// One subscriber's own invalidate_range_start callback, timed.
public struct SubscriberCallback: Sendable, Equatable {
    /// The subscriber ("kvm") and its callback function.
    public var name: String
    public var function: String
    /// ns per call, and calls that returned non-zero (-EAGAIN).
    public var latency = Histogram()
    public var failed: UInt64 = 0

    public init(name: String, function: String, latency: Histogram = Histogram(), failed: UInt64 = 0) {
        self.name = name
        self.function = function
        self.latency = latency
        self.failed = failed
    }

    public func since(_ e: SubscriberCallback) -> SubscriberCallback {
        SubscriberCallback(name: name, function: function, latency: latency.since(e.latency),
                           failed: delta(failed, e.failed))
    }
}

/// Times each classic subscriber's invalidate_range_start where the kernel
/// allows it: one copy of bpf/mn_callback.bpf.c per callback function,
/// retargeted at it when bpf/mmu_notifier.bpf.c first reports the
/// subscriber. A function without BTF (an out-of-tree module's) is left
/// untimed, with the reason kept.
final class CallbackTimers: @unchecked Sendable {
    private struct Timer {
        let object: BPFObject
        let name: String
        let function: String
    }

    private var timers: [UInt64: Timer] = [:]
    /// Callback address -> why it is not timed ("no BTF for ...").
    private(set) var untimed: [UInt64: String] = [:]
    private let options: LoadOptions

    init(options: LoadOptions) {
        var o = options
        o.events = false  // these copies never emit: the smallest ring buffer
        self.options = o
    }

    /// Starts timing the callbacks at these addresses not seen before;
    /// each maps to its ops' module (nil: built in).
    func add(_ callbacks: [UInt64: String?], symbols: KernelSymbols) {
        let new = callbacks.keys.filter { $0 != 0 && timers[$0] == nil && untimed[$0] == nil }
        guard !new.isEmpty else { return }
        let names = symbols.resolve(new)
        for address in new {
            // Unresolved now (kallsyms hidden or a fresh module): retried
            // on a later snapshot.
            guard let sym = names[address] else { continue }
            // The walk reads a subscriber list that can be freed under it:
            // a callback outside its ops' module is garbage, not a target.
            guard sym.module == callbacks[address] ?? nil else {
                untimed[address] = "\(sym.name): not in its ops' module"
                continue
            }
            do {
                let o = try BPFObject(.mnCallback, options: options, attachTarget: sym.name)
                try o.attach()
                timers[address] = Timer(object: o, name: sym.subscriberName, function: sym.name)
            } catch let e as UmmuError {
                untimed[address] = "\(sym.subscriberName) \(sym.name): \(e.message)"
            } catch {
                untimed[address] = "\(sym.subscriberName) \(sym.name): \(error)"
            }
        }
    }

    /// Cumulative figures of every timed callback, by function.
    func read() throws -> [String: SubscriberCallback] {
        var out: [String: SubscriberCallback] = [:]
        for t in timers.values {
            let v = try t.object.totals(.cbStats, as: mn_cb.self)
            out[t.function] = SubscriberCallback(name: t.name, function: t.function,
                                                 latency: Histogram(v.start_ns), failed: v.failed)
        }
        return out
    }

    func detach() {
        for t in timers.values { t.object.detach() }
    }
}
