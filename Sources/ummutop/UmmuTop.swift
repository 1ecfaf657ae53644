import ArgumentParser
import Glibc
import UmmuKit

@main
struct UmmuTop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ummutop",
        abstract: "Live per-process view of ummunotify invalidations and umem fault service.",
        discussion: """
            Keys: q quit, p pause, +/- interval, / or f filter, h help, up/down select,
            sort: n pid, c command, i inval/s, r regs, u faults/s, v service p99,
            s stall p99, w pending (again: reverse).
            Examples:
              ummutop                 # full screen, refreshed every second
              ummutop -d 2 -s stall   # every 2 s, slowest stalls first
              ummutop -b -n 5         # five plain-text snapshots (also when not a terminal)
              ummutop -f regcache     # only processes whose command contains "regcache"
            Needs root (or CAP_BPF+CAP_PERFMON) and the drivers' modules loaded.
            """
    )

    @Option(name: .customShort("d"), help: ArgumentHelp("Refresh interval in seconds.", valueName: "SECONDS"))
    var delay: Double = 1

    @Option(name: .customShort("n"), help: ArgumentHelp("Exit after this many refreshes.", valueName: "COUNT"))
    var count: Int?

    @Flag(name: .customShort("b"), help: "Batch mode: plain-text snapshots on stdout (the default when stdout is not a terminal).")
    var batch = false

    @Option(name: .customShort("s"), help: ArgumentHelp("Sort by: pid, command, inval, regs, faults, service, stall, pending.", valueName: "KEY"))
    var sort: String = "inval"

    @Option(name: .customShort("f"), help: ArgumentHelp("Show only processes whose pid starts with, or command contains, one of these comma-separated terms.", valueName: "TEXT"))
    var filter: String = ""

    @Option(name: .customShort("p"), help: ArgumentHelp("Trace this process (tgid) only (filtered in the kernel).", valueName: "PID"))
    var pid: UInt32?

    @Option(name: .customShort("w"), help: ArgumentHelp("Batch mode line width (columns that do not fit are left out).", valueName: "COLS"))
    var width: Int = 512

    @Flag(help: "Trace the ummunotify driver only.")
    var ummunotify = false

    @Flag(help: "Trace the umem driver only.")
    var umem = false

    @Flag(help: "Do not enable the kernel's BPF run-time statistics (no overhead figures).")
    var noBpfStats = false

    @Option(help: ArgumentHelp("Synthetic processes instead of the drivers (benchmark, demo without root).", visibility: .hidden))
    var synthetic: Int?

    @Flag(help: "Print libbpf and verifier messages.")
    var verbose = false

    func validate() throws {
        if !(delay >= 0.1 && delay <= 3600) { throw ValidationError("-d must be between 0.1 and 3600 seconds") }
        if let count, count <= 0 { throw ValidationError("-n must be positive") }
        if TopSortKey.parse(sort) == nil {
            throw ValidationError("-s: unknown sort key '\(sort)' (pid, command, inval, regs, faults, service, stall, pending)")
        }
        if pid == 0 { throw ValidationError("-p needs a process id > 0") }
        if width < 20 { throw ValidationError("-w must be at least 20") }
        if let synthetic, synthetic < 0 || synthetic > 1_000_000 { throw ValidationError("--synthetic must be 0...1000000") }
    }

    func run() throws {
        do {
            try top()
        } catch let e as UmmuError {
            fail(e.message, e.exitCode)
        } catch let e as ScreenError {
            fail(e.message, 1)
        }
    }

    func fail(_ message: String, _ code: Int32) -> Never {
        var err = OutputBuffer(fd: 2)
        err.append("ummutop: \(message)\n")
        err.flush()
        Glibc.exit(code)
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
            setLibbpfVerbose(verbose)
            try checkPrivileges()
            try checkBPFSupport()
            let sides: [Side] = ummunotify == umem ? Side.allCases : (ummunotify ? [.ummunotify] : [.umem])
            // Run-time statistics cost a little on every BPF program, so
            // they are on only while ummutop runs (the guard's fd).
            stats = noBpfStats ? nil : try? BPFStatsGuard()
            status.bpfStats = stats != nil
            let tracer = try Tracer(sides: sides, required: ummunotify != umem,
                                    options: LoadOptions(filterPID: pid ?? 0))
            for (_, e) in tracer.absent.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                var err = OutputBuffer(fd: 2)
                err.append("ummutop: \(e.message); showing \(tracer.sides.map(\.rawValue).joined(separator: " and ")) only\n")
                err.flush()
            }
            source = Source(tracer: tracer)
        }
        defer {
            source.detach()
            stats?.close()
        }
        status.sides = source.sides
        var table = TopTable(sortKey: TopSortKey.parse(sort) ?? .invalidations)
        table.setFilter(filter)
        let signals = try SignalWatcher([SIGINT, SIGTERM, SIGHUP])
        if interactive {
            let view = TopView(source: source, signalFD: signals.fd, status: status, table: table, maxRefreshes: count)
            _ = try view.run()
        } else {
            runBatch(source, signals, status, table)
        }
    }

    /// top -b: one snapshot per interval, until the count or a signal.
    func runBatch(_ source: Source, _ signals: SignalWatcher, _ status: TopStatus, _ initial: TopTable) {
        var table = initial
        var out = OutputBuffer(fd: 1)
        var prev = source.snapshot()
        var printed = 0
        while true {
            let stop = signals.wait(untilNs: monotonicNs() + UInt64(delay * 1e9))
            let cur = source.snapshot()
            let iv = Interval(from: prev, to: cur)
            prev = cur
            table.update(iv)
            out.append(TopRender.batch(iv, table: table, status: status, width: width))
            if !out.flush() { return }
            source.maintain()
            printed += 1
            if stop || (count.map { printed >= $0 } ?? false) { return }
        }
    }
}
