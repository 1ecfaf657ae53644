import UmmuKit

/// ummutop's views (one table each, switched with the digit keys) and the
/// sort keys of each.

/// A table of ummutop: what its rows are and which source feeds them.
package enum TopViewKind: String, CaseIterable, Sendable {
    /// Per process: the two drivers (ummunotify invalidations, umem faults).
    case drivers
    /// Per process: the stock kernel's MMU-notifier invalidations.
    case mmuNotifier = "mmu_notifier"
    /// Per process and subscriber (kvm, ummunotify, ...): who was notified.
    case subscribers
    /// Per process: userfaultfd faults, their stall and the resolving ioctls.
    case userfaultfd

    /// The key that shows it.
    package var key: Character {
        switch self {
        case .drivers: return "1"
        case .mmuNotifier: return "2"
        case .subscribers: return "3"
        case .userfaultfd: return "4"
        }
    }

    package static func forKey(_ c: Character) -> TopViewKind? {
        allCases.first { $0.key == c }
    }

    /// The previous/next view (Tab and Shift-Tab), wrapping around.
    package func cycled(by step: Int) -> TopViewKind {
        let all = TopViewKind.allCases
        let n = all.count
        let i = all.firstIndex(of: self) ?? 0
        return all[((i + step) % n + n) % n]
    }

    /// A command-line name: the raw value, its key or a short alias.
    package static func parse(_ s: String) -> TopViewKind? {
        let l = s.lowercased()
        if let v = TopViewKind(rawValue: l) { return v }
        if l.count == 1, let c = l.first { return forKey(c) }
        switch l {
        case "driver", "ummunotify", "umem": return .drivers
        case "mmu", "mmu-notifier", "mmunotifier", "notifier": return .mmuNotifier
        case "subscriber", "subs": return .subscribers
        case "uffd": return .userfaultfd
        default: return nil
        }
    }

    /// The sources whose data the view shows.
    package var sources: [TraceSource] {
        switch self {
        case .drivers: return [.ummunotify, .umem]
        case .mmuNotifier, .subscribers: return [.mmuNotifier]
        case .userfaultfd: return [.userfaultfd]
        }
    }

    package func isTraced(_ traced: [TraceSource]) -> Bool {
        sources.contains { traced.contains($0) }
    }

    /// Sort keys in footer order (the order `<` and `>` step through).
    package var sortKeys: [TopSortKey] {
        switch self {
        case .drivers: return [.pid, .command, .invalidations, .registrations, .faults, .serviceP99, .stallP99, .pending]
        case .mmuNotifier: return [.pid, .command, .invalidations, .notSelf, .callbackP99, .releases, .young]
        case .subscribers: return [.pid, .command, .subscriber, .invalidations, .releases, .young]
        case .userfaultfd: return [.pid, .command, .faults, .stallP99, .waiting, .ops]
        }
    }

    package var defaultSort: TopSortKey { self == .userfaultfd ? .faults : .invalidations }

    /// The sort key of this view that `c` selects.
    package func sortKey(forKey c: Character) -> TopSortKey? {
        sortKeys.first { $0.key == c }
    }

    /// The view ummutop starts in: the drivers' when one of them is traced,
    /// else the first view whose source is traced.
    package static func starting(for traced: [TraceSource]) -> TopViewKind {
        allCases.first { $0.isTraced(traced) } ?? .drivers
    }

    /// The starting view and sort key for `--view` and `-s` (either may be
    /// absent). A sort key that only another view has picks that view when
    /// no view is given. nil: the sort key is not one of the view's.
    package static func start(view: TopViewKind?, sort: String?, traced: [TraceSource]) -> (TopViewKind, TopSortKey)? {
        guard let sort else {
            let v = view ?? starting(for: traced)
            return (v, v.defaultSort)
        }
        let preferred = view ?? starting(for: traced)
        if let k = TopSortKey.parse(sort, in: preferred) { return (preferred, k) }
        guard view == nil else { return nil }
        // Views of traced sources first, then the others, each in key order.
        let candidates = allCases.filter { $0.isTraced(traced) } + allCases.filter { !$0.isTraced(traced) }
        for v in candidates {
            if let k = TopSortKey.parse(sort, in: v) { return (v, k) }
        }
        return nil
    }

    /// "n pid, c command, ..." for messages.
    package var sortKeyList: String {
        sortKeys.map { "\($0.key) \($0.names[0])" }.joined(separator: ", ")
    }
}

/// What a table is sorted by. Numeric keys sort busiest first; pid, command
/// and subscriber sort ascending. Ties break on pid. Which keys a view has,
/// and in what order, is the view's (`TopViewKind.sortKeys`).
package enum TopSortKey: String, CaseIterable, Sendable {
    case pid, command, invalidations, registrations, faults, serviceP99, stallP99, pending
    case notSelf, callbackP99, releases, young, subscriber, waiting, ops

    /// The key that selects it in its views (unique within each view).
    package var key: Character {
        switch self {
        case .pid: return "n"
        case .command: return "c"
        case .invalidations: return "i"
        case .registrations: return "r"
        case .faults: return "u"
        case .serviceP99: return "v"
        case .stallP99: return "s"
        case .pending, .waiting: return "w"
        case .notSelf, .ops: return "o"
        case .callbackP99: return "l"
        case .releases: return "e"
        case .young: return "y"
        case .subscriber: return "b"
        }
    }

    /// Short label for the footer and the title line.
    package var label: String {
        switch self {
        case .pid: return "pid"
        case .command: return "command"
        case .invalidations: return "inval/s"
        case .registrations: return "regs"
        case .faults: return "faults/s"
        case .serviceP99: return "svc p99"
        case .stallP99: return "stall p99"
        case .pending: return "pending"
        case .notSelf: return "not-self/s"
        case .callbackP99: return "cb p99"
        case .releases: return "release"
        case .young: return "young/s"
        case .subscriber: return "subscriber"
        case .waiting: return "waiting"
        case .ops: return "ops/s"
        }
    }

    /// Command-line names (`-s`), the first one canonical.
    package var names: [String] {
        switch self {
        case .pid: return ["pid"]
        case .command: return ["command", "comm", "cmd"]
        case .invalidations: return ["inval", "invalidations", "inval/s"]
        case .registrations: return ["regs", "registrations"]
        case .faults: return ["faults", "faults/s", "fault", "umem"]
        case .serviceP99: return ["service", "svc", "service_p99", "svc_p99"]
        case .stallP99: return ["stall", "stall_p99"]
        case .pending: return ["pending", "pend"]
        case .notSelf: return ["not-self", "notself", "not_self", "not-self/s"]
        case .callbackP99: return ["callback", "cb", "cb_p99", "callback_p99"]
        case .releases: return ["release", "releases"]
        case .young: return ["young", "young/s"]
        case .subscriber: return ["subscriber", "sub"]
        case .waiting: return ["waiting", "wait"]
        case .ops: return ["ops", "ops/s"]
        }
    }

    /// A command-line name or key letter of one of `view`'s keys.
    package static func parse(_ s: String, in view: TopViewKind) -> TopSortKey? {
        let l = s.lowercased()
        if l.count == 1, let c = l.first, let k = view.sortKey(forKey: c) { return k }
        return view.sortKeys.first { $0.names.contains(l) }
    }

    var ascendingByDefault: Bool { self == .pid || self == .command || self == .subscriber }

    /// The previous/next key of `view` (the `<` and `>` keys).
    package func cycled(by step: Int, in view: TopViewKind) -> TopSortKey {
        let all = view.sortKeys
        let n = all.count
        guard let i = all.firstIndex(of: self), n > 0 else { return view.defaultSort }
        return all[((i + step) % n + n) % n]
    }
}

/// What a row shows under a sort key, for ordering.
package enum TopSortValue: Sendable, Equatable {
    /// nil: no sample (sorts below any sample).
    case number(Double?)
    case text(String)

    /// -1, 0 or 1; a text sorts below any number (never mixed in practice).
    func compare(_ other: TopSortValue) -> Int {
        switch (self, other) {
        case let (.number(a), .number(b)):
            switch (a, b) {
            case let (x?, y?): return x < y ? -1 : (x > y ? 1 : 0)
            case (nil, .some): return -1
            case (.some, nil): return 1
            case (nil, nil): return 0
            }
        case let (.text(a), .text(b)): return a < b ? -1 : (a > b ? 1 : 0)
        case (.text, .number): return -1
        case (.number, .text): return 1
        }
    }
}
