import UmmuKit
import UmmuTopUI

/// Where snapshots come from: the BPF maps, or synthetic processes
/// (`--synthetic N`, for the benchmark and for trying the screen).
final class Source {
    private let tracer: Tracer?
    private var synthetic: SyntheticSource?
    private var lastNs: UInt64 = 0
    let sources: [TraceSource]

    init(tracer: Tracer) {
        self.tracer = tracer
        sources = tracer.sources
    }

    init(synthetic n: Int) {
        tracer = nil
        synthetic = SyntheticSource(processes: n)
        sources = TraceSource.allCases
        lastNs = monotonicNs()
    }

    func snapshot() throws -> Snapshot {
        if let tracer { return try tracer.snapshot() }
        let now = monotonicNs()
        let secs = Double(now &- lastNs) / 1e9
        lastNs = now
        return synthetic?.snapshot(advance: secs) ?? Snapshot()
    }

    /// Drops rows of exited processes from the maps (after they were
    /// counted), at most every
    /// `maintainEveryNs`: walking every map costs about as much as a
    /// snapshot, and an exited process has no activity to show meanwhile.
    func maintain() {
        guard let tracer else { return }
        let now = monotonicNs()
        if now &- lastMaintainNs < maintainEveryNs { return }
        lastMaintainNs = now
        tracer.maintain()
    }

    var maintainEveryNs: UInt64 = 10_000_000_000
    private var lastMaintainNs: UInt64 = 0

    func detach() { tracer?.detach() }
}
