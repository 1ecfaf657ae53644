// ummu-bpf-bench: benchmark (not a test) of the BPF side and the event path.
//
//  1. Per-event cost of every program against a minimal one-counter program,
//     from the kernel's run statistics (run_time_ns / run_cnt), enabled only
//     while measuring (BPF_ENABLE_STATS fd). Programs are driven by
//     BPF_PROG_TEST_RUN with the same synthetic tracepoint arguments.
//  2. Ring buffer -> NDJSON: events per second the Swift consumer formats and
//     writes to /dev/null, from a ring buffer pre-filled by test runs.
//
// Run as root:  swift run -c release ummu-bpf-bench [events-per-program [rounds]]
//         only 2: swift run -c release ummu-bpf-bench ndjson
//
//  3. `ummu-bpf-bench stock [options]`: the stock-kernel fentry/fexit programs
//     on live KVM and userfaultfd workloads against a one-counter fentry
//     baseline, and the workloads with the tracer attached vs detached. Needs
//     a kernel that allows fentry (a guest: see bench/RESULTS.md and
//     bench/bpf_bench/Stock.swift).
import Glibc
import UmmuKit

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "stock" {
    exit(stockBench(Array(CommandLine.arguments.dropFirst(2))))
}


/// `ummu-bpf-bench ndjson`: section 2 only.
let onlyNDJSON = CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "ndjson"
let perProgram = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200_000 : 200_000
let rounds = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 5 : 5

func fail(_ s: String) -> Never {
    var err = OutputBuffer(fd: 2)
    err.append("ummu-bpf-bench: \(s)\n")
    err.flush()
    exit(1)
}

func cost(_ p: BPFProgram, _ before: (runTimeNs: UInt64, runCount: UInt64)) -> Double {
    let s = p.runStats()
    let n = s.runCount - before.runCount
    return n == 0 ? .nan : Double(s.runTimeNs - before.runTimeNs) / Double(n)
}

/// Runs `body` n times under stats and returns ns/event for `prog`.
func measure(_ prog: BPFProgram, _ n: Int, _ body: (Int) throws -> Void) throws -> Double {
    let before = prog.runStats()
    for i in 0..<n { try body(i) }
    return cost(prog, before)
}

struct Row { var name: String; var ns: Double; var baseline: Double }
var rows: [Row] = []

do {
    try checkPrivileges()
    let minimal = try BPFObject(.benchMinimal)
    let base = try minimal.program("minimal")
    let stats = try BPFStatsGuard()
    defer { stats.close() }

    func baseline() throws -> Double {
        try measure(base, perProgram) { _ in try base.testRun([1, 4242, 0x10000, 0x13000, 0, 1, 1, 1]) }
    }

    for _ in 0..<(onlyNDJSON ? 0 : rounds) {
    for events in [false, true] {
        let opts = LoadOptions(events: events, ringBytes: 1 << 26)
        let suffix = events ? " +events" : ""
        let un = try BPFObject(.ummunotify, options: opts)
        let um = try BPFObject(.umem, options: opts)
        let drain = try EventStream(objects: [un, um]) { (_: UnsafeRawPointer, _: Int) in 0 }

        let notify = try un.program("un_notify")
        let b1 = try baseline()
        let c1 = try measure(notify, perProgram) { i in
            try notify.testRun([UInt64(i % 64), UInt64(4000 + i % 256), 0x10000, 0x13000, UInt64(i % 8), 2, 1, UInt64(i), 1])
        }
        rows.append(Row(name: "ummunotify_notify" + suffix, ns: c1, baseline: b1))
        try drain.consume()

        let read = try un.program("un_read")
        // (ctx, events, queued, owner tgid, regions, seq): seq grows per context.
        let c2 = try measure(read, perProgram) { i in
            try read.testRun([UInt64(i % 64), UInt64(i % 32), 1, UInt64(4000 + i % 64), 8, UInt64(i + 1), 1])
        }
        rows.append(Row(name: "ummunotify_read" + suffix, ns: c2, baseline: b1))
        let reg = try un.program("un_register")
        let c3 = try measure(reg, perProgram) { i in
            try reg.testRun([UInt64(i % 64), UInt64(i), 0x1000, 0x2000, UInt64(i), UInt64(4000 + i % 64), 1, UInt64(i + 1), 1])
        }
        rows.append(Row(name: "ummunotify_register" + suffix, ns: c3, baseline: b1))
        try drain.consume()

        // umem: fault (waits), fault_done, write of the same page; distinct pages.
        let fault = try um.program("um_fault")
        let done = try um.program("um_fault_done")
        let write = try um.program("um_write")
        let umRead = try um.program("um_read")
        let b2 = try baseline()
        // Waits that began after the load, as the tracer's own faults' do.
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let waitStart = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        let chunk = 8192  // fault, fault_done and write interleaved, a chunk at a time
        var cf = 0.0, cd = 0.0, cw = 0.0
        var rounds = 0
        var done0 = 0
        while done0 < perProgram {
            let n = min(chunk, perProgram - done0)
            cf += try measure(fault, n) { i in try fault.testRun([1, UInt64(i), 1, 4242, 1]) }
            cd += try measure(done, n) { i in try done.testRun([1, UInt64(i), 0, 150_000, 4242, 1, waitStart]) }
            cw += try measure(write, n) { i in try write.testRun([1, UInt64(i), 1, 200_000, 4242, 1]) }
            try drain.consume()
            done0 += n
            rounds += 1
        }
        rows.append(Row(name: "umem_fault" + suffix, ns: cf / Double(rounds), baseline: b2))
        rows.append(Row(name: "umem_fault_done" + suffix, ns: cd / Double(rounds), baseline: b2))
        rows.append(Row(name: "umem_write" + suffix, ns: cw / Double(rounds), baseline: b2))
        let c4 = try measure(umRead, perProgram) { i in try umRead.testRun([1, UInt64(i % 16), 3, 4242]) }
        rows.append(Row(name: "umem_read" + suffix, ns: c4, baseline: b2))
        try drain.consume()
    }
    }
    stats.close()

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.isEmpty ? .nan : s[s.count / 2]
    }
    if !onlyNDJSON {
        print("## per-event BPF cost (BPF_PROG_TEST_RUN, \(perProgram) runs each, kernel run_time_ns/run_cnt,"
            + " median of \(rounds) rounds)")
        print(Fmt.pad("program", 28, right: true) + Fmt.pad("ns/event", 10) + Fmt.pad("minimal", 10) + Fmt.pad("ratio", 8))
        var names: [String] = []
        for r in rows where !names.contains(r.name) { names.append(r.name) }
        for name in names {
            let rs = rows.filter { $0.name == name }
            let ns = median(rs.map(\.ns))
            let base = median(rs.map(\.baseline))
            print(Fmt.pad(name, 28, right: true) + Fmt.pad(Fmt.fixed(ns, 1), 10)
                + Fmt.pad(Fmt.fixed(base, 1), 10) + Fmt.pad(Fmt.fixed(ns / base, 2) + "x", 8))
        }
    }

    // 2. Ring buffer -> NDJSON. The styles take turns within each round
    // (the machine is shared: a load change hits all of them alike); "none"
    // consumes without formatting (libbpf's ring-buffer walk and the
    // callback alone: the floor under the other two).
    let total = 600_000
    let benchRounds = 5
    let um = try BPFObject(.umem, options: LoadOptions(events: true, ringBytes: 1 << 27))
    let fault = try um.program("um_fault")
    let devNull = open("/dev/null", O_WRONLY)
    if devNull < 0 { fail("cannot open /dev/null") }
    defer { close(devNull) }
    let styles: [EventFormatter.Style?] = [.json, .text, nil]
    var rates = [[Double]](repeating: [], count: styles.count)
    var bytes = [UInt64](repeating: 0, count: styles.count)
    for _ in 0..<benchRounds {
        for (k, style) in styles.enumerated() {
            for i in 0..<total { try fault.testRun([UInt64(i & 15), UInt64(i), 0, 4242, 1]) }
            let writer = EventWriter(out: OutputBuffer(fd: devNull), formatter: EventFormatter(style: style ?? .json))
            var seen: UInt64 = 0
            let stream = style == nil
                ? try EventStream(objects: [um]) { (_: UnsafeRawPointer, _: Int) -> Int32 in seen &+= 1; return 0 }
                : try EventStream(objects: [um], handler: writer.handle)
            let t0 = monotonicNs()
            try stream.consume()
            writer.flush()
            let n = style == nil ? seen : writer.takeDelivered()
            let dt = Double(monotonicNs() - t0) / 1e9
            if n != UInt64(total) { fail("consumed \(n) of \(total) events") }
            rates[k].append(Double(n) / dt)
            bytes[k] = writer.bytesWritten
        }
    }
    for (k, style) in styles.enumerated() {
        let name = style == nil ? "none  " : style == .json ? "NDJSON" : "text  "
        print("ring buffer -> \(name): \(Fmt.fixed(median(rates[k]) / 1e6, 2)) M events/s median,"
            + " \(Fmt.fixed((rates[k].max() ?? 0) / 1e6, 2)) best (\(benchRounds) rounds x \(total) events,"
            + " \(bytes[k] / UInt64(total)) bytes/event, to /dev/null)")
    }
} catch let e as UmmuError {
    fail(e.message)
}
