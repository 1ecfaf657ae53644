import ArgumentParser
import Glibc
import UmmuCLI
import UmmuKit
import UmmuTopUI

@main
struct UmmuTop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ummutop",
        abstract: "Live per-process view of MMU-notifier invalidations, userfaultfd and the ummunotify/umem drivers.",
        discussion: """
            Views (keys 1-4; Tab: the next one):
              1 drivers       ummunotify invalidations, umem faults, per process
              2 mmu_notifier  the stock kernel's MMU-notifier invalidations, per process
              3 subscribers   per process and subscriber of its mm (kvm, ummunotify, ...)
              4 userfaultfd   faults, their stall and the resolving ioctls, per process
            Keys: q quit, p pause, +/- interval, / or f filter, h help, up/down select,
            < > previous/next sort column, R reverse. Sort keys (again: reverse):
              drivers       n pid, c command, i inval/s, r regs, u faults/s,
                            v service p99, s stall p99, w pending
              mmu_notifier  n pid, c command, i inval/s, o not-self/s,
                            l callback p99, e release, y young/s
              subscribers   n pid, c command, b subscriber, i inval/s, e release,
                            y young/s
              userfaultfd   n pid, c command, u faults/s, s stall p99, w waiting,
                            o ops/s
            Examples:
              ummutop                 # full screen, refreshed every second
              ummutop -d 2 -s stall   # every 2 s, slowest stalls first
              ummutop -b -n 5         # five plain-text snapshots (also without a tty)
              ummutop --view userfaultfd -s waiting    # the userfaultfd view first
              ummutop -s young        # -s of one view only: starts in it (mmu_notifier)
              ummutop -f regcache     # only processes whose command contains "regcache"
            Needs root (or CAP_BPF+CAP_PERFMON); the drivers' view needs their modules.
            """,
        version: UmmuVersion.string
    )

    @Option(name: .customShort("d"), help: ArgumentHelp("Refresh interval in seconds.", valueName: "SECONDS"))
    var delay: Double = 1

    @Option(name: .customShort("n"), help: ArgumentHelp("Exit after this many refreshes.", valueName: "COUNT"))
    var count: Int?

    @Flag(name: .customShort("b"), help: "Batch mode: plain-text snapshots on stdout (the default when stdout is not a terminal).")
    var batch = false

    @Option(name: .customShort("s"), help: ArgumentHelp("Sort by a key of the starting view (a name, e.g. inval, stall, young, or a key letter above); a key only another view has starts in that view.", valueName: "KEY"))
    var sort: String?

    @Option(help: ArgumentHelp("Starting view: drivers, mmu_notifier, subscribers or userfaultfd (default: drivers when a driver is traced, else the first traced).", valueName: "VIEW"))
    var view: String?

    @Option(name: .customShort("f"), help: ArgumentHelp("Show only processes whose pid starts with, or command contains, one of these comma-separated terms.", valueName: "TEXT"))
    var filter: String = ""

    @OptionGroup var sources: SourceOptions

    @Option(name: .customShort("w"), help: ArgumentHelp("Batch mode line width (columns that do not fit are left out).", valueName: "COLS"))
    var width: Int = 512

    @Flag(help: "Do not enable the kernel's BPF run-time statistics (no overhead figures).")
    var noBpfStats = false

    @Option(help: ArgumentHelp("Synthetic processes instead of the drivers (benchmark, demo without root).", visibility: .hidden))
    var synthetic: Int?

    func validate() throws {
        if !(delay >= 0.1 && delay <= 3600) { throw ValidationError("-d must be between 0.1 and 3600 seconds") }
        if let count, count <= 0 { throw ValidationError("-n must be positive") }
        var startView: TopViewKind?
        if let view {
            guard let v = TopViewKind.parse(view) else {
                throw ValidationError("--view: unknown view '\(view)' (drivers, mmu_notifier, subscribers, userfaultfd)")
            }
            startView = v
        }
        if let sort {
            let views = startView.map { [$0] } ?? TopViewKind.allCases
            if !views.contains(where: { TopSortKey.parse(sort, in: $0) != nil }) {
                throw ValidationError("-s: unknown sort key '\(sort)'; "
                    + views.map { "\($0.rawValue): \($0.sortKeyList)" }.joined(separator: "; "))
            }
        }
        if width < 20 || width > 4096 { throw ValidationError("-w must be between 20 and 4096") }
        if let synthetic, synthetic < 0 || synthetic > 1_000_000 { throw ValidationError("--synthetic must be 0...1000000") }
    }

    func run() throws {
        try reportingErrors(tool: "ummutop", top)
    }

    func top() throws {
        signal(SIGPIPE, SIG_IGN)
        let interactive = !batch && isatty(1) != 0 && isatty(0) != 0
        var status = TopStatus(intervalSeconds: delay)
        let source: Source
        var stats: BPFStatsGuard?
        if let synthetic {
            source = Source(synthetic: synthetic)
            status.bpfStats = false
        } else {
            try sources.check()
            // Run-time statistics cost a little on every BPF program, so
            // they are on only while ummutop runs (the guard's fd).
            stats = noBpfStats ? nil : try? BPFStatsGuard()
            status.bpfStats = stats != nil
            let tracer = try sources.tracer(tool: "ummutop", verb: "showing", options: LoadOptions())
            source = Source(tracer: tracer)
        }
        defer {
            source.detach()
            stats?.close()
        }
        status.sources = source.sources
        // Validated: the view parses, and the sort key is one of its or of some view's.
        let start = TopViewKind.start(view: view.flatMap(TopViewKind.parse), sort: sort, traced: source.sources)
        let startView = start?.0 ?? TopViewKind.starting(for: source.sources)
        status.view = startView
        let tables = TopViewTables(view: startView, sortKey: start?.1, filter: filter)
        let signals = try SignalWatcher([SIGINT, SIGTERM, SIGHUP])
        if interactive {
            let screen = TopView(source: source, signalFD: signals.fd, status: status, tables: tables, maxRefreshes: count)
            _ = try screen.run()
        } else {
            try runBatch(source, signals, status, tables)
        }
    }

    /// top -b: one snapshot per interval, until the count or a signal.
    func runBatch(_ source: Source, _ signals: SignalWatcher, _ status: TopStatus, _ initial: TopViewTables) throws {
        var tables = initial
        var out = OutputBuffer(fd: 1)
        var prev = try source.snapshot()
        var printed = 0
        while true {
            let stop = try signals.wait(untilNs: monotonicNs() + UInt64(delay * 1e9))
            let cur = try source.snapshot()
            let iv = Interval(from: prev, to: cur)
            prev = cur
            tables.update(iv)
            out.append(TopRender.batch(iv, table: tables.current, status: status, width: width))
            if try !out.flushOutput() { return }
            source.maintain()
            printed += 1
            if stop || (count.map { printed >= $0 } ?? false) { return }
        }
    }
}

extension ScreenError: OneLineError {
    var exitCode: Int32 { 1 }
}
