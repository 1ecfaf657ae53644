/// Every map the embedded BPF objects declare (bpf/*.bpf.c and
/// bpf/ummu_helpers.bpf.h), named once for Swift: the library, the tools,
/// the benches and the tests pass these to BPFObject.map(_:) and
/// LoadOptions.mapSizes, never a string. The raw value is the map's name in
/// its object. BPFMapNameTests checks this list and BPFObjectID.mapNames
/// against the embedded objects both ways, so a map renamed or added on
/// one side only fails `swift test`.
public enum BPFMapName: String, Sendable, CaseIterable {
    // bpf/ummu_helpers.bpf.h: in every object that includes it.
    /// Per-event records (ring buffer).
    case events
    /// Per-event records the ring buffer had no room for.
    case drops

    // bpf/ummunotify.bpf.c
    case unTotals = "un_totals"
    case unHists = "un_hists"
    case unProcs = "un_procs"
    case unCtxs = "un_ctxs"

    // bpf/umem.bpf.c
    case umTotals = "um_totals"
    case umHists = "um_hists"
    case umProcs = "um_procs"
    case umAreas = "um_areas"

    // bpf/mmu_notifier.bpf.c
    case mnTotals = "mn_totals"
    case mnHists = "mn_hists"
    case mnProcs = "mn_procs"
    case mnCauses = "mn_causes"
    case mnSubs = "mn_subs"
    case mnTasks = "mn_tasks"

    // bpf/userfaultfd.bpf.c
    case ufTotals = "uf_totals"
    case ufHists = "uf_hists"
    case ufProcs = "uf_procs"
    case ufTasks = "uf_tasks"

    // bpf/mn_callback.bpf.c
    case cbStats = "cb_stats"
    case cbTasks = "cb_tasks"

    // bpf/bench_minimal.bpf.c and bpf/bench_minimal_fentry.bpf.c
    case count
    case opTasks = "op_tasks"
    case opHash4 = "op_hash4"
    case opHash32 = "op_hash32"
}

extension BPFMapName: CustomStringConvertible {
    /// The name in the object ("un_procs"), as messages and labels show it.
    public var description: String { rawValue }
}

extension BPFObjectID {
    /// The maps this object declares, besides libbpf's own for its global
    /// variables (.rodata, .bss, .data, .kconfig).
    public var mapNames: [BPFMapName] {
        switch self {
        case .ummunotify: [.unTotals, .unHists, .unProcs, .unCtxs, .events, .drops]
        case .umem: [.umTotals, .umHists, .umProcs, .umAreas, .events, .drops]
        case .mmuNotifier: [.mnTotals, .mnHists, .mnProcs, .mnCauses, .mnSubs, .mnTasks, .events, .drops]
        case .userfaultfd: [.ufTotals, .ufHists, .ufProcs, .ufTasks, .events, .drops]
        case .mnCallback: [.cbStats, .cbTasks, .events, .drops]
        case .benchMinimal: [.count]
        case .benchMinimalFentry: [.count, .opTasks, .opHash4, .opHash32]
        }
    }
}
