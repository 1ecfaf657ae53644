// ummu-bpf-bench stock: the stock-kernel programs (bpf/mmu_notifier.bpf.c,
// bpf/userfaultfd.bpf.c) on live workloads, in a guest that allows fentry.
//
//   ummu-bpf-bench stock [--rounds R] [--pages P] [--dontneed N] [--missing M]
//                        [--reps K] [--bin DIR] [--no-ops]
//
// Every round runs these modes, in an order rotated by one each round (so
// no mode always follows another), each running the workloads K times:
//
//   ours+stats  our two objects attached, kernel BPF run-time statistics on:
//               every program's ns/event (delta run_time_ns / delta run_cnt)
//   base+stats  instead, the one-counter baseline (bpf/bench_minimal_fentry
//               .bpf.c) as fentry/fexit on exactly the functions and sides our
//               programs hook: its ns/event per hook
//   ops+stats   the baseline plus six copies of it that each add one
//               operation (clock read, task storage, hash lookups, a probe
//               read, atomics),
//               all as fentry on __mmu_notifier_invalidate_range_start
//               (kvmchurn only): the price of each operation
//   off         nothing attached, statistics off: the workloads timed
//   ours        our objects attached, statistics off: the workloads timed
//   base        the baseline attached, statistics off: the workloads timed
//
// Workloads (static binaries from workloads/, found in --bin):
//   kvmchurn --pages P --dontneed N   N MMU_NOTIFY_CLEAR invalidations of a
//       KVM mm (one madvise(DONTNEED) of one page each): ns per invalidation
//       from its elapsed_s (the churn loop alone) / N
//   uffdpair --missing M              M userfaultfd missing-fault round trips
//       (client touch -> server read -> UFFDIO_COPY -> resume), no delay: the
//       client's mean stall per fault (stall_mean_ns.missing), and elapsed_s/M
// Figures: per mode, the median over rounds; ratios: the median of the
// per-round ratios (both sides measured in the same round), with min..max.
import CLibbpf
import Glibc
import UmmuBPF
import UmmuKit

private func stockFail(_ s: String) -> Never {
    var err = OutputBuffer(fd: 2)
    err.append("ummu-bpf-bench stock: \(s)\n")
    err.flush()
    exit(1)
}

private func errnoText(_ e: Int32) -> String {
    let v = e < 0 ? -e : e
    return String(cString: strerror(v)) + " (errno \(v))"
}

private func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

private func trimmed(_ s: String) -> String {
    var t = Substring(s)
    while let c = t.last, c == "\n" || c == " " { t = t.dropLast() }
    return String(t)
}

private func medianOf(_ v: [Double]) -> Double {
    let s = v.filter { $0.isFinite }.sorted()
    if s.isEmpty { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The number after `"key":` in a one-line JSON text.
private func jsonNumber(_ s: String, _ key: String) -> Double? {
    guard let r = s.firstRange(of: "\"\(key)\":") else { return nil }
    var num = ""
    for c in s[r.upperBound...] {
        if c.isNumber || c == "." || c == "-" || c == "e" || c == "E" || c == "+" { num.append(c) } else { break }
    }
    return Double(num)
}

/// One program of the baseline object, loaded alone in its own copy of the
/// object, targeted at `function` before load.
private final class BaseProg {
    let program: String
    let function: String
    private let obj: OpaquePointer
    private let prog: OpaquePointer
    private var link: OpaquePointer?

    init(_ program: String, on function: String) {
        self.program = program
        self.function = function
        var err: Int32 = 0
        guard let o = ummu_object_open(BPFObjectID.benchMinimalFentry.rawValue, &err) else {
            stockFail("cannot open the baseline object: \(errnoText(err))")
        }
        var chosen: OpaquePointer?
        var p = bpf_object__next_program(o, nil)
        while let q = p {
            let mine = String(cString: bpf_program__name(q)) == program
            bpf_program__set_autoload(q, mine)
            if mine { chosen = q }
            p = bpf_object__next_program(o, q)
        }
        guard let c = chosen else { stockFail("no program \(program) in the baseline object") }
        let rc = bpf_program__set_attach_target(c, 0, function)
        if rc != 0 { stockFail("cannot target \(program) at \(function): \(errnoText(rc))") }
        let lrc = bpf_object__load(o)
        if lrc != 0 {
            stockFail("cannot load \(program) on \(function): \(errnoText(lrc)) "
                + String(cString: ummu_libbpf_last_message()))
        }
        obj = o
        prog = c
    }

    func attach() {
        guard link == nil else { return }
        guard let l = bpf_program__attach_trace(prog) else {
            stockFail("cannot attach \(program) to \(function): \(errnoText(errno))")
        }
        link = l
    }

    func detach() {
        if let l = link { bpf_link__destroy(l) }
        link = nil
    }

    func stats() -> (runTimeNs: UInt64, runCount: UInt64) {
        var t: UInt64 = 0, c: UInt64 = 0
        if ummu_prog_stats(bpf_program__fd(prog), &t, &c) != 0 { return (0, 0) }
        return (t, c)
    }

    deinit {
        detach()
        bpf_object__close(obj)
    }
}

private struct Workload {
    let name: String
    let argv: [String]
    let count: Double  // operations per run
    let metrics: [String]
    /// Metric values of one run from its JSON line.
    let parse: (String) -> [Double]?
}

private struct RunOut { var wallNs: UInt64; var out: String; var status: Int32 }

private func spawnAndWait(_ argv: [String]) -> RunOut {
    var fds: [Int32] = [0, 0]
    if pipe(&fds) != 0 { stockFail("pipe: \(errnoText(errno))") }
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1)
    posix_spawn_file_actions_addclose(&fa, fds[0])
    posix_spawn_file_actions_addclose(&fa, fds[1])
    let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for a in cargs { free(a) } }
    var pid: pid_t = 0
    let t0 = monotonicNs()
    let rc = posix_spawn(&pid, argv[0], &fa, nil, cargs, environ)
    posix_spawn_file_actions_destroy(&fa)
    close(fds[1])
    if rc != 0 {
        close(fds[0])
        stockFail("cannot run \(argv[0]): \(errnoText(rc))")
    }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, 4096) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let t1 = monotonicNs()
    return RunOut(wallNs: t1 - t0, out: String(decoding: bytes, as: UTF8.self), status: status)
}

private enum Mode: Int, CaseIterable {
    case oursStats, baseStats, opsStats, off, ours, base

    var label: String {
        switch self {
        case .oursStats: return "ours+stats"
        case .baseStats: return "base+stats"
        case .opsStats: return "ops+stats"
        case .off: return "off"
        case .ours: return "ours"
        case .base: return "base"
        }
    }

    var stats: Bool { self == .oursStats || self == .baseStats || self == .opsStats }
}

/// Our program -> the baseline program and function it is compared with.
private let stockHooks: [(ours: String, base: String, function: String)] = [
    ("mn_start_entry", "base_entry", "__mmu_notifier_invalidate_range_start"),
    ("mn_start_exit", "base_exit", "__mmu_notifier_invalidate_range_start"),
    ("mn_end_entry", "base_entry", "__mmu_notifier_invalidate_range_end"),
    ("mn_end_exit", "base_exit", "__mmu_notifier_invalidate_range_end"),
    ("uf_fault_entry", "base_entry", "handle_userfault"),
    ("uf_fault_exit", "base_exit", "handle_userfault"),
    ("uf_ioctl_exit", "base_exit", "userfaultfd_ioctl"),
]

/// The operation programs, all fentry on one function, with what they add.
private let opPrograms: [(name: String, what: String)] = [
    ("base_entry", "counter only (same-round baseline)"),
    ("op_ktime", "bpf_ktime_get_ns"),
    ("op_task_storage", "bpf_task_storage_get (found)"),
    ("op_hash_u32", "bpf_get_current_pid_tgid + hash lookup, u32 key (found)"),
    ("op_hash_key32", "hash lookup, 32-byte key (found)"),
    ("op_probe_read", "bpf_probe_read_kernel, 8 bytes"),
    ("op_atomic3", "hash lookup, constant u32 key, + 3 atomic adds"),
]
private let opFunction = "__mmu_notifier_invalidate_range_start"

func stockBench(_ args: [String]) -> Int32 {
    var rounds = 7, pages = 20_000, dontneed = 20_000, missing = 2_000, reps = 1, ops = true
    var bin = access("/opt/ummu/bin/kvmchurn", X_OK) == 0 ? "/opt/ummu/bin" : "workloads/bin"
    var i = 0
    func value() -> String {
        i += 1
        guard i < args.count else { stockFail("\(args[i - 1]) needs a value") }
        return args[i]
    }
    func int() -> Int {
        let s = value()
        guard let n = Int(s), n > 0 else { stockFail("not a positive number: \(s)") }
        return n
    }
    while i < args.count {
        switch args[i] {
        case "--rounds": rounds = int()
        case "--pages": pages = int()
        case "--dontneed": dontneed = int()
        case "--missing": missing = int()
        case "--reps": reps = int()
        case "--bin": bin = value()
        case "--no-ops": ops = false
        default: stockFail("unknown argument \(args[i]) (see bench/bpf_bench/Stock.swift)")
        }
        i += 1
    }
    pages = max(pages, dontneed)

    do { try checkPrivileges() } catch let e as UmmuError { stockFail(e.message) } catch { stockFail("\(error)") }

    // ---- where we are
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    let cpuinfo = readText("/proc/cpuinfo") ?? ""
    let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { String(String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingPrefix(" ")) } ?? "?"
    print("# ummu-bpf-bench stock")
    print("kernel \(release); cpu \"\(model)\"; \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) online CPU(s)")
    let vdir = "/sys/devices/system/cpu/vulnerabilities"
    if let d = opendir(vdir) {
        var names: [String] = []
        while let e = readdir(d) {
            let n = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if !n.hasPrefix(".") { names.append(n) }
        }
        closedir(d)
        let vulns = names.sorted().map { "\($0): \(trimmed(readText("\(vdir)/\($0)") ?? "?"))" }
        print("vulnerabilities: " + vulns.joined(separator: "; "))
    }
    print("loadavg at start: \(trimmed(readText("/proc/loadavg") ?? "?"))")
    print("rounds \(rounds), reps \(reps); kvmchurn --pages \(pages) --dontneed \(dontneed); uffdpair --missing \(missing)")
    let started = monotonicNs()

    // ---- the workloads
    let workloads = [
        Workload(name: "kvmchurn", argv: ["\(bin)/kvmchurn", "--pages", "\(pages)", "--dontneed", "\(dontneed)"],
                 count: Double(dontneed), metrics: ["KVM invalidation, ns (elapsed_s/N)"]) { out in
            guard let e = jsonNumber(out, "elapsed_s") else { return nil }
            return [e * 1e9 / Double(dontneed)]
        },
        Workload(name: "uffdpair", argv: ["\(bin)/uffdpair", "--missing", "\(missing)"],
                 count: Double(missing),
                 metrics: ["uffd round trip, ns (stall_mean_ns)", "uffd fault, ns (elapsed_s/M)"]) { out in
            guard out.contains("\"exact\":true"),
                  let s = out.firstRange(of: "\"stall_mean_ns\":{").map({ String(out[$0.lowerBound...]) }),
                  let stall = jsonNumber(s, "missing"), let e = jsonNumber(out, "elapsed_s") else { return nil }
            return [stall, e * 1e9 / Double(missing)]
        },
    ]
    /// Runs a workload reps times; per metric the mean over the reps.
    func run(_ w: Workload) -> [Double] {
        var sums = [Double](repeating: 0, count: w.metrics.count)
        for _ in 0..<reps {
            let r = spawnAndWait(w.argv)
            guard r.status == 0, let v = w.parse(r.out), v.count == sums.count else {
                stockFail("\(w.name) failed (wait status \(r.status)): \(r.out)")
            }
            for k in v.indices { sums[k] += v[k] }
        }
        return sums.map { $0 / Double(reps) }
    }

    // ---- the programs, loaded once
    let mn: BPFObject, uf: BPFObject
    do {
        mn = try BPFObject(.mmuNotifier)
        uf = try BPFObject(.userfaultfd)
    } catch let e as UmmuError { stockFail(e.message) } catch { stockFail("\(error)") }
    let ours = mn.programs + uf.programs
    var bases: [String: BaseProg] = [:]  // key: base program + function
    for h in stockHooks where bases[h.base + "@" + h.function] == nil {
        bases[h.base + "@" + h.function] = BaseProg(h.base, on: h.function)
    }
    let opProgs = ops ? opPrograms.map { BaseProg($0.name, on: opFunction) } : []

    // per round: ns/event per program, events per run; workload metrics per mode
    var oursNs: [String: [Double]] = [:], oursEv: [String: [Double]] = [:]
    var baseNs: [String: [Double]] = [:], baseEv: [String: [Double]] = [:]
    var opNs: [String: [Double]] = [:]
    var wl: [Mode: [[Double]]] = [:]  // mode -> round -> metric values (all workloads)

    // warm-up: page cache, first-run costs
    for w in workloads { _ = run(w) }

    for r in 0..<rounds {
        let modes = (0..<Mode.allCases.count).map { Mode.allCases[($0 + r) % Mode.allCases.count] }
            .filter { ops || $0 != .opsStats }
        for m in modes {
            var guardStats: BPFStatsGuard?
            if m.stats {
                do { guardStats = try BPFStatsGuard() } catch let e as UmmuError { stockFail(e.message) } catch { stockFail("\(error)") }
            }
            switch m {
            case .oursStats, .ours:
                do { try mn.attach(); try uf.attach() } catch let e as UmmuError { stockFail(e.message) } catch { stockFail("\(error)") }
            case .baseStats, .base:
                for b in bases.values { b.attach() }
            case .opsStats:
                for p in opProgs { p.attach() }
            case .off:
                break
            }
            let before = ours.map { $0.runStats() }
            let bBefore = bases.mapValues { $0.stats() }
            let oBefore = opProgs.map { $0.stats() }
            var values: [Double] = []
            for w in workloads where m != .opsStats || w.name == "kvmchurn" {
                values += run(w)
            }
            switch m {
            case .oursStats:
                for (k, p) in ours.enumerated() {
                    let a = p.runStats()
                    let n = a.runCount &- before[k].runCount
                    guard n > 0 else { continue }
                    oursNs[p.name, default: []].append(Double(a.runTimeNs &- before[k].runTimeNs) / Double(n))
                    oursEv[p.name, default: []].append(Double(n) / Double(reps))
                }
            case .baseStats:
                for (key, b) in bases {
                    let a = b.stats(), z = bBefore[key]!
                    let n = a.runCount &- z.runCount
                    guard n > 0 else { continue }
                    baseNs[key, default: []].append(Double(a.runTimeNs &- z.runTimeNs) / Double(n))
                    baseEv[key, default: []].append(Double(n) / Double(reps))
                }
            case .opsStats:
                for (k, p) in opProgs.enumerated() {
                    let a = p.stats()
                    let n = a.runCount &- oBefore[k].runCount
                    if n > 0 { opNs[p.program, default: []].append(Double(a.runTimeNs &- oBefore[k].runTimeNs) / Double(n)) }
                }
            default:
                break
            }
            mn.detach()
            uf.detach()
            for b in bases.values { b.detach() }
            for p in opProgs { p.detach() }
            guardStats?.close()
            if m != .opsStats { wl[m, default: []].append(values) }
            if !m.stats, trimmed(readText("/proc/sys/kernel/bpf_stats_enabled") ?? "0") != "0" {
                print("warning: kernel.bpf_stats_enabled is on: the timed modes are not stats-free")
            }
        }
        var err = OutputBuffer(fd: 2)
        err.append("round \(r + 1)/\(rounds) done, \(Fmt.fixed(Double(monotonicNs() - started) / 1e9, 0)) s\n")
        err.flush()
    }

    // ---- results
    func f1(_ x: Double) -> String { Fmt.fixed(x, 1) }
    func f2(_ x: Double) -> String { Fmt.fixed(x, 2) }
    func spread(_ v: [Double]) -> String {
        let s = v.filter { $0.isFinite }.sorted()
        return s.isEmpty ? "-" : "\(f2(s.first!))..\(f2(s.last!))"
    }
    print("")
    print("## per-event cost, our program vs the one-counter baseline on the same function and side")
    print("(kernel run_time_ns/run_cnt over both workloads; median of \(rounds) rounds; ratio: median of per-round"
        + " ratios, spread min..max)")
    print("")
    print("| program | hook | events/run | ns/event | baseline ns | ratio | spread | added ns |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |")
    var sumOurs: [String: [Double]] = [:], sumBase: [String: [Double]] = [:]
    for h in stockHooks {
        let key = h.base + "@" + h.function
        let o = oursNs[h.ours] ?? [], b = baseNs[key] ?? []
        let n = min(o.count, b.count)
        let ratios = (0..<n).map { o[$0] / b[$0] }
        let side = h.base == "base_entry" ? "fentry" : "fexit"
        let group = h.ours.hasPrefix("mn_") ? "per invalidation (4 programs)" : "per uffd fault (3 programs)"
        for k in 0..<n {
            if sumOurs[group, default: []].count <= k { sumOurs[group, default: []].append(0); sumBase[group, default: []].append(0) }
            sumOurs[group]![k] += o[k]
            sumBase[group]![k] += b[k]
        }
        print("| \(h.ours) | \(side) \(h.function) | \(Fmt.fixed(medianOf(oursEv[h.ours] ?? []), 0))"
            + " (base \(Fmt.fixed(medianOf(baseEv[key] ?? []), 0))) | \(f1(medianOf(o))) | \(f1(medianOf(b)))"
            + " | **\(f2(medianOf(ratios)))x** | \(spread(ratios)) | \(f1(medianOf(o) - medianOf(b))) |")
    }
    for group in ["per invalidation (4 programs)", "per uffd fault (3 programs)"] {
        let o = sumOurs[group] ?? [], b = sumBase[group] ?? []
        let ratios = (0..<min(o.count, b.count)).map { o[$0] / b[$0] }
        print("| sum, \(group) | | | \(f1(medianOf(o))) | \(f1(medianOf(b))) | \(f2(medianOf(ratios)))x"
            + " | \(spread(ratios)) | \(f1(medianOf(o) - medianOf(b))) |")
    }
    let others = ours.map(\.name).filter { n in !stockHooks.contains { $0.ours == n } && oursNs[n] != nil }
    for n in others {
        print("| \(n) (no baseline) | | \(Fmt.fixed(medianOf(oursEv[n] ?? []), 0)) | \(f1(medianOf(oursNs[n] ?? []))) | | | | |")
    }

    if ops {
        print("")
        print("## price of one operation (fentry \(opFunction), kvmchurn, all attached together, stats on)")
        print("")
        print("| program | adds | ns/event | minus baseline |")
        print("| --- | --- | ---: | ---: |")
        let b0 = opNs["base_entry"] ?? []
        for p in opPrograms {
            let v = opNs[p.name] ?? []
            let d = (0..<min(v.count, b0.count)).map { v[$0] - b0[$0] }
            print("| \(p.name) | \(p.what) | \(f1(medianOf(v))) | \(p.name == "base_entry" ? "" : f1(medianOf(d))) |")
        }
    }

    print("")
    print("## workloads: tracer attached vs detached (statistics off)")
    print("(median of \(rounds) rounds of \(reps) run(s); ratio: median of per-round ratios to \"off\", spread min..max)")
    print("")
    print("| metric | off | ours | ours/off | spread | one-counter base | base/off | spread |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |")
    let metricNames = workloads.flatMap(\.metrics)
    for (k, name) in metricNames.enumerated() {
        func col(_ m: Mode) -> [Double] { (wl[m] ?? []).map { $0[k] } }
        let off = col(.off), on = col(.ours), base = col(.base)
        let rOn = (0..<min(off.count, on.count)).map { on[$0] / off[$0] }
        let rBase = (0..<min(off.count, base.count)).map { base[$0] / off[$0] }
        print("| \(name) | \(Fmt.fixed(medianOf(off), 0)) | \(Fmt.fixed(medianOf(on), 0)) | **\(f2(medianOf(rOn)))x**"
            + " | \(spread(rOn)) | \(Fmt.fixed(medianOf(base), 0)) | \(f2(medianOf(rBase)))x | \(spread(rBase)) |")
    }
    print("")
    print("with statistics on (for reference; the per-event rows above were taken in these runs):")
    for (k, name) in metricNames.enumerated() {
        let a = (wl[.oursStats] ?? []).map { $0[k] }, b = (wl[.baseStats] ?? []).map { $0[k] }
        print("- \(name): ours+stats \(Fmt.fixed(medianOf(a), 0)), base+stats \(Fmt.fixed(medianOf(b), 0))")
    }
    print("")
    print("loadavg at end: \(trimmed(readText("/proc/loadavg") ?? "?")); bench took"
        + " \(Fmt.fixed(Double(monotonicNs() - started) / 1e9, 0)) s")
    return 0
}
