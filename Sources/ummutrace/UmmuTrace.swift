import ArgumentParser
import Glibc
import UmmuCLI
import UmmuKit

@main
struct UmmuTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ummutrace",
        abstract: "Summarize ummunotify invalidations and umem fault service as rates and log2 histograms.",
        discussion: """
            Examples:
              ummutrace              # trace both drivers, print a summary at Ctrl-C
              ummutrace 1 10         # print 1 second summaries, 10 times
              ummutrace -mT 5        # 5 second summaries, milliseconds, timestamps
              ummutrace -p 181 1     # only PID 181
              ummutrace --umem 1     # only the umem driver
              ummutrace --json 1     # NDJSON, one object per second (docs/ummutrace.schema.json)
              ummutrace --events     # one line per tracepoint hit, drops reported every second
              ummutrace --metrics-file /var/lib/prometheus/node-exporter/ummu.prom 10
                                     # exporter: rewrite a Prometheus file every 10 s (docs/metrics.md)
            Needs root (or CAP_BPF+CAP_PERFMON) and the drivers' modules loaded.
            """,
        version: UmmuVersion.string
    )

    @Argument(help: "Output interval in seconds (default: once, at Ctrl-C; 1 with --events).")
    var interval: Double?

    @Argument(help: "Number of outputs (default: until Ctrl-C).")
    var count: Int?

    @Flag(name: .customShort("m"), help: "Latency histograms in milliseconds (default microseconds).")
    var milliseconds = false

    @Flag(name: .customShort("T"), help: "Include a timestamp on each output.")
    var timestamps = false

    @OptionGroup var sources: SourceOptions

    @Flag(help: "Newline-delimited JSON on stdout.")
    var json = false

    @Flag(help: "Print every event from the ring buffer, with dropped counts each interval.")
    var events = false

    @Option(help: "Ring buffer size in KiB per driver (power of two).")
    var ringKib: UInt32 = 1024

    @Option(help: "No effect: the umem driver measures service times itself, so no fault start is kept (accepted so that existing command lines still run).")
    var maxAge: Double = 600

    @Flag(help: "The BPF programs' own run time: in --json, and as ummu_bpf_run_* with --metrics-file. Turns the kernel's BPF statistics on for every program on the host while ummutrace runs; needs CAP_SYS_ADMIN.")
    var bpfStats = false

    @Option(help: ArgumentHelp("Exporter: rewrite this Prometheus text file atomically every interval (default 10 s) instead of printing; for node_exporter's textfile collector (docs/metrics.md).", valueName: "PATH"))
    var metricsFile: String?

    @Option(help: "With --metrics-file: processes with their own series; the rest are pid=\"other\".")
    var metricsTop: Int = 10

    @Flag(help: "With --metrics-file: per-process series labelled by comm only (processes of one name share a series; a restarted process continues its series), for fewer series where pids churn.")
    var metricsWithoutPid = false

    func validate() throws {
        if let interval, !(interval > 0 && interval <= 86_400) {
            throw ValidationError("interval must be between 0 and 86400 seconds")
        }
        if let count, count <= 0 { throw ValidationError("count must be positive") }
        // The kernel wants a power-of-two multiple of the page size.
        if ringKib < 4 || ringKib > 1 << 20 || ringKib & (ringKib - 1) != 0 {
            throw ValidationError("--ring-kib must be a power of two in 4..1048576")
        }
        // Also keeps inf and NaN out of the conversion to nanoseconds.
        if !(maxAge > 0 && maxAge <= 86_400) { throw ValidationError("--max-age must be more than 0 and at most 86400 seconds") }
        if bpfStats && (metricsFile == nil && (!json || events)) {
            // It times every BPF program on the host: only where it is shown.
            throw ValidationError("--bpf-stats is shown only with --json intervals or --metrics-file")
        }
        if metricsFile != nil && (events || json) {
            throw ValidationError("--metrics-file cannot be combined with --events or --json")
        }
        if metricsTop < 0 || metricsTop > 1000 { throw ValidationError("--metrics-top must be 0..1000") }
        if metricsWithoutPid && metricsFile == nil {
            throw ValidationError("--metrics-without-pid goes with --metrics-file")
        }
    }

    func run() throws {
        try reportingErrors(tool: "ummutrace", trace)
    }

    func trace() throws {
        signal(SIGPIPE, SIG_IGN)
        // The metrics file's directory first: a wrong path is one clear line
        // even without privileges.
        let exporter = try metricsFile.map {
            try UmmuMetricsExporter(path: $0, config: UmmuMetricsConfig(topN: metricsTop, bpfStats: bpfStats,
                                                                        pidLabel: !metricsWithoutPid))
        }
        try sources.check()
        // Opt-in, as in ebpf_exporter: CAP_BPF and CAP_PERFMON suffice without it.
        let stats = bpfStats ? try BPFStatsGuard() : nil
        defer { stats?.close() }
        let tracer = try sources.tracer(tool: "ummutrace",
                                        options: LoadOptions(events: events, ringBytes: ringKib * 1024))
        defer { tracer.detach() }
        let signals = try SignalWatcher([SIGINT, SIGTERM, SIGHUP])
        var out = OutputBuffer(fd: 1)
        if events {
            try runEvents(tracer, signals)
        } else if var exporter {
            try runExporter(tracer, signals, &exporter)
        } else {
            try runIntervals(tracer, signals, &out)
        }
    }

    /// Maintenance period of the default mode (no interval).
    static let summaryMaintenanceSeconds = 10.0

    func runIntervals(_ tracer: Tracer, _ signals: SignalWatcher, _ out: inout OutputBuffer) throws {
        if !json {
            out.append("Tracing \(tracer.sources.map(\.rawValue).joined(separator: ", "))"
                + (sources.pid.map { " for PID \($0)" } ?? "") + "... Hit Ctrl-C to end.\n")
            out.flush()
        }
        let text = TextRenderer(milliseconds: milliseconds, timestamps: timestamps)
        var prev = try tracer.snapshot()
        // Without an interval: one summary at the end, and maintenance
        // meanwhile (exited processes pruned),
        // as the interval modes do after each output.
        var summary = interval == nil ? RunSummary(start: prev) : nil
        var printed = 0
        let intervalNs = UInt64((interval ?? Self.summaryMaintenanceSeconds) * 1e9)
        while true {
            let stop = try signals.wait(untilNs: monotonicNs() + intervalNs)
            let cur = try tracer.snapshot()
            let iv: Interval
            if var run = summary {
                if !stop {
                    run.observe(cur)
                    summary = run
                    tracer.maintain()
                    continue
                }
                iv = run.finish(at: cur)
                if run.unlisted > 0 {
                    printErrorLines(["ummutrace: \(run.unlisted) exited processes not listed (more than \(run.maxKept),"
                        + " or their pid taken by a live process); the totals count them"])
                }
            } else {
                iv = Interval(from: prev, to: cur)
            }
            if json {
                out.append(JSONRenderer.interval(iv, includeBPFStats: bpfStats))
                out.append("\n")
            } else {
                if stop { out.append("\n") }
                out.append(text.render(iv))
                out.append("\n")
            }
            if try !out.flushOutput() { return }
            prev = cur
            printed += 1
            tracer.maintain()
            if stop || (count.map { printed >= $0 } ?? false) { return }
        }
    }

    /// Exporter mode: the file is written at once (empty counters), then
    /// every interval; a failed write is reported and retried next time.
    func runExporter(_ tracer: Tracer, _ signals: SignalWatcher, _ exporter: inout UmmuMetricsExporter) throws {
        var prev = try tracer.snapshot()
        try exporter.update(Interval(from: prev, to: prev))
        var written = 0
        let intervalNs = UInt64((interval ?? 10) * 1e9)
        while true {
            let stop = try signals.wait(untilNs: monotonicNs() + intervalNs)
            let cur = try tracer.snapshot()
            do {
                try exporter.update(Interval(from: prev, to: cur))
            } catch {
                printErrorLines(["ummutrace: \(error)"])
            }
            prev = cur
            written += 1
            tracer.maintain()
            if stop || (count.map { written >= $0 } ?? false) { return }
        }
    }

    func runEvents(_ tracer: Tracer, _ signals: SignalWatcher) throws {
        let objects = tracer.sources.compactMap { tracer.object($0) }
        let writer = EventWriter(out: OutputBuffer(fd: 1), formatter: EventFormatter(style: json ? .json : .text,
                                                                     baseNs: monotonicNs(), milliseconds: milliseconds))
        let stream = try EventStream(objects: objects, handler: writer.handle)
        if !json { writer.append(EventFormatter.textHeader + "\n") }
        writer.flush()
        var prev = try tracer.snapshot()
        var printed = 0
        let intervalNs = UInt64((interval ?? 1) * 1e9)
        while true {
            let stop: Bool
            do {
                stop = try signals.wait(untilNs: monotonicNs() + intervalNs, ring: stream) { writer.flush() }
                try stream.consume()
            } catch {
                // The output failed: quietly done if the reader went away
                // (EPIPE), as in the other modes; an error otherwise.
                if writer.broken {
                    if let failure = writer.writeFailure { throw failure }
                    return
                }
                throw error
            }
            let cur = try tracer.snapshot()
            let dropped = cur.droppedEvents &- prev.droppedEvents
            let delivered = writer.takeDelivered()
            if json {
                writer.append(JSONRenderer.drops(endWallNs: cur.wallNs, dropped: dropped, delivered: delivered))
                writer.append("\n")
            } else {
                writer.append("# \(Fmt.clock(cur.wallNs)) dropped \(dropped) events, delivered \(delivered)\n")
            }
            if !writer.flush() {
                if let failure = writer.writeFailure { throw failure }
                return
            }
            prev = cur
            printed += 1
            tracer.maintain()
            if stop || (count.map { printed >= $0 } ?? false) { return }
        }
    }
}

