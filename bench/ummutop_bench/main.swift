// ummutop refresh cost with many tracked processes (a benchmark, not a test).
//
//   swift run -c release ummutop-bench [PROCESSES] [REFRESHES]
//
// Two measurements, CPU time (getrusage, user+system) per refresh:
//  1. maps: the BPF objects loaded (not attached) on this host, their
//     process/context/area maps filled with PROCESSES rows, then what one
//     refresh of ummutop does: Tracer.snapshot() (reads every map row),
//     Interval, table (sort, filter), history, header + a 50-row screen;
//     and Tracer.maintain() (walks the maps, a /proc check per row), which
//     ummutop runs every 10 s.
//  2. model: the same refresh path fed from SyntheticSource (no syscalls),
//     plus the batch text of every row.
// At one refresh a second, CPU ms per refresh / 10 = % of one CPU.
import CLibbpf
import Glibc
import UmmuBPF
import UmmuKit
import UmmuTopUI

func cpuNs() -> UInt64 {
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    let u = UInt64(ru.ru_utime.tv_sec) * 1_000_000_000 + UInt64(ru.ru_utime.tv_usec) * 1000
    let s = UInt64(ru.ru_stime.tv_sec) * 1_000_000_000 + UInt64(ru.ru_stime.tv_usec) * 1000
    return u + s
}

let args = CommandLine.arguments
let procs = args.count > 1 ? Int(args[1]) ?? 1000 : 1000
let refreshes = args.count > 2 ? Int(args[2]) ?? 100 : 100

/// One ummutop refresh after the snapshot: interval, table, history, screen text.
func refresh(_ prev: Snapshot, _ cur: Snapshot, _ table: inout TopTable, _ history: inout TopHistory,
             batch: Bool) -> Int {
    let iv = Interval(from: prev, to: cur)
    table.update(iv)
    history.append(invalidationsPerSec: iv.rate(iv.ummunotify?.totalInvalidations ?? 0),
                   faultsPerSec: iv.rate(iv.umem?.faults ?? 0), stallP99: iv.umem?.stallLatency.percentile(0.99),
                   rows: table.allRows)
    var status = TopStatus(intervalSeconds: 1)
    status.sortKey = table.sortKey
    var bytes = 0
    for l in TopRender.header(iv, status: status, processCount: table.allRows.count) { bytes += l.utf8.count }
    let cols = TopColumn.fitting(160)
    for r in table.rows.prefix(50) { bytes += TopColumn.line(cols, r).utf8.count }
    bytes += TopRender.histogram(iv.umem?.stallLatency ?? Histogram(), title: "stall", width: 80, height: 9).count
    bytes += TopRender.sparklines(history, pid: table.rows.first?.pid, width: 160, unicode: true).count
    if batch { bytes += TopRender.batch(iv, table: table, status: status).utf8.count }
    return bytes
}

func report(_ name: String, _ ns: UInt64, _ n: Int) {
    let ms = Double(ns) / 1e6 / Double(n)
    print("\(name): \(Fmt.fixed(ms, 3)) ms CPU per refresh = \(Fmt.fixed(ms / 10, 3))% of one CPU at 1 refresh/s")
}

/// Runs `refreshes` refreshes fed by `next`; returns the CPU ns they took,
/// the last snapshot and the table.
func measure(batch: Bool, _ next: () throws -> Snapshot) rethrows -> (ns: UInt64, last: Snapshot, table: TopTable) {
    var table = TopTable()
    var history = TopHistory(capacity: 120)
    var prev = try next()
    var sink = 0
    let t0 = cpuNs()
    for _ in 0..<refreshes {
        let cur = try next()
        sink &+= refresh(prev, cur, &table, &history, batch: batch)
        prev = cur
    }
    let ns = cpuNs() - t0
    if sink == 0 { print("(nothing rendered)") }
    return (ns, prev, table)
}

// 2. model only.
do {
    var src = SyntheticSource(processes: procs)
    let screen = measure(batch: false) { src.snapshot() }
    let batch = measure(batch: true) { src.snapshot() }
    print("processes \(procs), refreshes \(refreshes), rows shown \(screen.table.rows.count)")
    report("model + screen text (synthetic, incl. snapshot synthesis)", screen.ns, refreshes)
    report("model + batch text of every row (ummutop -b)", batch.ns, refreshes)
}

// 1. real maps.
func fill(_ tracer: Tracer) -> Bool {
    guard let un = tracer.ummunotify, let um = tracer.umem,
          let unProcs = try? un.map(.unProcs), let unCtxs = try? un.map(.unCtxs),
          let umProcs = try? um.map(.umProcs), let umAreas = try? um.map(.umAreas) else { return false }
    let ncpu = unProcs.isPerCPU ? possibleCPUs : 1
    for i in 0..<procs {
        let pid = UInt32(100_000 + i)
        var p = un_proc()
        p.queued = UInt64(i)
        withUnsafeMutableBytes(of: &p.inval) { $0.storeBytes(of: UInt64(i * 10), toByteOffset: 0, as: UInt64.self) }
        withUnsafeMutableBytes(of: &p.comm) { raw in
            for (j, c) in "bench-\(i)".utf8.prefix(15).enumerated() { raw[j] = c }
        }
        guard unProcs.update(pid, Array(repeating: p, count: ncpu)) else { return false }
        var c = un_ctx()
        c.tgid = pid
        c.held = 8
        c.seq = 1
        guard unCtxs.update(UInt64(i + 1), Array(repeating: c, count: unCtxs.isPerCPU ? possibleCPUs : 1)) else { return false }
        var m = um_proc()
        m.faults = UInt64(i)
        withUnsafeMutableBytes(of: &m.comm) { raw in
            for (j, c) in "bench-\(i)".utf8.prefix(15).enumerated() { raw[j] = c }
        }
        guard umProcs.update(pid, Array(repeating: m, count: umProcs.isPerCPU ? possibleCPUs : 1)) else { return false }
        var a = um_area()
        a.client_tgid = pid
        a.pending = 1
        guard umAreas.update(UInt64(i + 1), Array(repeating: a, count: umAreas.isPerCPU ? possibleCPUs : 1)) else { return false }
    }
    return true
}

do {
    // The default map sizes hold 1,000 processes; bigger runs grow them.
    let rows = UInt32(max(procs * 2, 1024))
    let sizes: [BPFMapName: UInt32] = procs <= 1000 ? [:] : [.unProcs: rows, .unCtxs: rows, .umProcs: rows, .umAreas: rows]
    let tracer = try Tracer(sources: TraceSource.allCases, options: LoadOptions(mapSizes: sizes), attach: false)
    guard fill(tracer) else {
        print("maps: could not fill the maps with \(procs) rows (map sizes?)")
        exit(1)
    }
    // Each refresh also does the map maintenance ummutop does (a /proc
    // check per row; the check's answer is ignored so the rows stay).
    let r = try measure(batch: false) { try tracer.snapshot() }
    var n = 0
    let t0 = cpuNs()
    for _ in 0..<refreshes { n += tracer.maintain { pid in _ = processExists(pid); return true } }
    let maintainNs = cpuNs() - t0
    print("maps: \(r.last.processes.count) processes in the snapshot, \(r.table.allRows.count) rows")
    report("BPF map reads + model + screen text (what ummutop does each refresh)", r.ns, refreshes)
    report("Tracer.maintain() alone (ummutop runs it once per 10 s)", maintainNs, refreshes)
    report("total at 1 refresh/s, maintenance every 10th refresh", r.ns + maintainNs / 10, refreshes)
    if n != 0 { print("(maintain removed \(n) rows)") }
} catch let e as UmmuError {
    print("maps: skipped: \(e.message)")
}
