import CLibbpf
import Glibc
import UmmuBPF

/// Sums per-CPU copies of an all-u64 struct word by word.
func sumWords<V: BitwiseCopyable>(_ values: [V]) -> V? {
    guard var out = values.first else { return nil }
    let n = MemoryLayout<V>.size / 8
    var acc = [UInt64](repeating: 0, count: n)
    for v in values {
        withUnsafeBytes(of: v) { raw in
            for i in 0..<n { acc[i] &+= raw.load(fromByteOffset: i * 8, as: UInt64.self) }
        }
    }
    withUnsafeMutableBytes(of: &out) { raw in
        for i in 0..<n { raw.storeBytes(of: acc[i], toByteOffset: i * 8, as: UInt64.self) }
    }
    return out
}

func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func wallNow() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Checks the effective capabilities for loading and attaching tracing BPF
/// programs: CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON.
public func checkPrivileges(statusPath: String = "/proc/self/status") throws {
    guard let text = try? readSmallFile(statusPath),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
          let caps = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(), radix: 16)
    else { return }  // cannot tell: let the kernel decide
    let sysAdmin: UInt64 = 1 << 21, perfmon: UInt64 = 1 << 38, bpf: UInt64 = 1 << 39
    if caps & sysAdmin != 0 || (caps & bpf != 0 && caps & perfmon != 0) { return }
    throw UmmuError(.privileges, "need root or CAP_BPF+CAP_PERFMON to trace (try sudo)")
}

/// Checks that the kernel can run raw tracepoint BPF programs at all.
public func checkBPFSupport() throws {
    let rc = ummu_probe_raw_tp()
    if rc == 0 || rc == -ENOSYS {
        throw UmmuError(.noBPF, "this kernel cannot run BPF raw tracepoint programs (needs CONFIG_BPF_SYSCALL)")
    }
    if rc == -EPERM || rc == -EACCES {
        throw UmmuError(.privileges, "need root or CAP_BPF+CAP_PERFMON to trace (try sudo)")
    }
}

func readSmallFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw UmmuError(.io, "\(path): \(UmmuError.errnoText(errno))") }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\n" }).reversed())
    }
}

/// Loads, attaches and reads the BPF side of one or both drivers.
public final class Tracer: @unchecked Sendable {
    public private(set) var ummunotify: BPFObject?
    public private(set) var umem: BPFObject?
    /// Sides requested but left out because their driver is absent.
    public private(set) var absent: [Side: UmmuError] = [:]
    /// Fault starts older than this are expired by `maintain()`.
    public var maxStartAgeNs: UInt64 = 600 * 1_000_000_000
    private var expired: UInt64 = 0

    public var sides: [Side] {
        (ummunotify != nil ? [Side.ummunotify] : []) + (umem != nil ? [Side.umem] : [])
    }

    /// Loads the requested sides. With `attach`, a side whose tracepoints are
    /// absent is an error when `required` says so, and otherwise left out
    /// (noted in `absent`) as long as one side remains.
    public init(sides: [Side] = Side.allCases, required: Bool = false, options: LoadOptions = LoadOptions(),
                attach: Bool = true) throws {
        for side in sides {
            let obj = try BPFObject(side == .umem ? .umem : .ummunotify, options: options)
            if attach {
                do {
                    try obj.attach()
                } catch let e as UmmuError where e.kind == .driverAbsent && !required {
                    absent[side] = e
                    continue
                }
            }
            switch side {
            case .ummunotify: ummunotify = obj
            case .umem: umem = obj
            }
        }
        if ummunotify == nil && umem == nil {
            if let e = absent[.ummunotify] ?? absent[.umem] {
                if absent.count > 1 {
                    throw UmmuError(.driverAbsent,
                        "no ummu tracepoints found: are ummunotify.ko and umem.ko loaded? (modprobe ummunotify umem)")
                }
                throw e
            }
            throw UmmuError(.usage, "nothing to trace")
        }
    }

    public func object(_ side: Side) -> BPFObject? {
        side == .umem ? umem : ummunotify
    }

    public func detach() {
        ummunotify?.detach()
        umem?.detach()
    }

    // MARK: snapshot

    public func snapshot() -> Snapshot {
        var snap = Snapshot(monotonicNs: monotonicNow(), wallNs: wallNow())
        var procs: [UInt32: ProcessRow] = [:]
        if let o = ummunotify {
            snap.ummunotify = readUmmunotify(o, into: &procs)
            snap.droppedEvents &+= (try? o.map("drops").sumU64(at: 0)) ?? 0
            snap.bpf[.ummunotify] = runStats(o)
        }
        if let o = umem {
            var t = readUmem(o, into: &procs)
            t.expired = expired
            snap.umem = t
            snap.droppedEvents &+= (try? o.map("drops").sumU64(at: 0)) ?? 0
            snap.bpf[.umem] = runStats(o)
        }
        for (pid, row) in procs where row.comm.isEmpty {
            procs[pid]?.comm = processName(pid)
        }
        snap.processes = procs
        return snap
    }

    func runStats(_ o: BPFObject) -> BPFRunStats {
        o.programs.reduce(into: BPFRunStats()) { acc, p in
            let s = p.runStats()
            acc.runTimeNs &+= s.runTimeNs
            acc.runCount &+= s.runCount
        }
    }

    func readUmmunotify(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) -> UmmunotifyTotals {
        var t = UmmunotifyTotals()
        if let m = try? o.map("un_totals"), (try? m.check(UInt32.self, un_totals.self)) != nil,
           let v = sumWords(m.lookup(UInt32(0), as: un_totals.self) ?? []) {
            t.invalidations = cArray(v.inval, count: Reason.count)
            t.invalidatedBytes = cArray(v.bytes, count: Reason.count)
            t.notifyNoHit = v.notify_nohit
            t.reportsQueued = v.queued
            t.reportsMerged = v.merged
            t.reads = v.reads
            t.eventsRead = v.events_read
            t.registers = v.registers
            t.unregisters = v.unregisters
            t.processOverflow = v.proc_overflow
            t.contextOverflow = v.ctx_overflow
            t.filtered = v.filtered
        }
        if let m = try? o.map("un_hists") {
            t.spanBytes = sumWords(m.lookup(UInt32(UN_HIST_SPAN.rawValue), as: ummu_hist.self) ?? []).map(Histogram.init) ?? Histogram()
            t.readBatch = sumWords(m.lookup(UInt32(UN_HIST_READ_BATCH.rawValue), as: ummu_hist.self) ?? []).map(Histogram.init) ?? Histogram()
        }
        if let m = try? o.map("un_procs"), (try? m.check(UInt32.self, un_proc.self)) != nil {
            for pid in m.keys(as: UInt32.self) {
                guard let per = m.lookup(pid, as: un_proc.self), let v = sumWords(per) else { continue }
                var p = ProcessUmmunotify()
                p.invalidations = cArray(v.inval, count: Reason.count)
                p.invalidatedBytes = cArray(v.bytes, count: Reason.count)
                p.reportsQueued = v.queued
                p.reportsMerged = v.merged
                p.reads = v.reads
                p.eventsRead = v.events_read
                var row = procs[pid] ?? ProcessRow(pid: pid)
                row.ummunotify = p
                if row.comm.isEmpty, let c = per.lazy.map({ cString($0.comm) }).first(where: { !$0.isEmpty }) {
                    row.comm = c
                }
                procs[pid] = row
            }
        }
        if let m = try? o.map("un_ctxs"), (try? m.check(UInt64.self, un_ctx.self)) != nil {
            for ctx in m.keys(as: UInt64.self) {
                guard let per = m.lookup(ctx, as: un_ctx.self) else { continue }
                let held = per.max(by: { $0.held_ts < $1.held_ts }).map { $0.held_ts == 0 ? 0 : $0.held } ?? 0
                let backlog = per.max(by: { $0.backlog_ts < $1.backlog_ts }).map { $0.backlog_ts == 0 ? 0 : $0.backlog } ?? 0
                let tgid = per.map(\.tgid).max() ?? 0
                t.contexts += 1
                t.registrationsHeld &+= held
                t.reportsBacklog &+= backlog
                if tgid != 0 {
                    var row = procs[tgid] ?? ProcessRow(pid: tgid)
                    var p = row.ummunotify ?? ProcessUmmunotify()
                    p.registrationsHeld &+= held
                    row.ummunotify = p
                    procs[tgid] = row
                }
            }
        }
        return t
    }

    func readUmem(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) -> UmemTotals {
        var t = UmemTotals()
        if let m = try? o.map("um_totals"), (try? m.check(UInt32.self, um_totals.self)) != nil,
           let v = sumWords(m.lookup(UInt32(0), as: um_totals.self) ?? []) {
            t.faults = v.faults
            t.faultsWaited = v.faults_waited
            t.outcomes = cArray(v.done, count: FaultOutcome.count)
            t.reads = v.reads
            t.offsetsHanded = v.handed
            t.pagesWritten = v.writes
            t.pagesOnDemand = v.on_demand
            t.pagesPushed = v.pushed
            t.serviceUnmatched = v.service_unmatched
            t.stallUnmatched = v.stall_unmatched
            t.pageOverflow = v.page_overflow
            t.stallOverflow = v.stall_overflow
            t.processOverflow = v.proc_overflow
            t.areaOverflow = v.area_overflow
            t.filtered = v.filtered
        }
        if let m = try? o.map("um_hists") {
            func h(_ i: um_hist_index) -> Histogram {
                sumWords(m.lookup(UInt32(i.rawValue), as: ummu_hist.self) ?? []).map(Histogram.init) ?? Histogram()
            }
            t.serviceLatency = h(UM_HIST_SERVICE)
            t.stallLatency = h(UM_HIST_STALL)
            t.readBatch = h(UM_HIST_READ_BATCH)
        }
        if let m = try? o.map("um_procs"), (try? m.check(UInt32.self, um_proc.self)) != nil {
            for pid in m.keys(as: UInt32.self) {
                guard let v = m.lookup(pid, as: um_proc.self)?.first else { continue }
                var p = ProcessUmem()
                p.faults = v.faults
                p.faultsWaited = v.faults_waited
                p.pagesOnDemand = v.on_demand
                p.serviceLatency = Histogram(v.service)
                p.stallLatency = Histogram(v.stall)
                var row = procs[pid] ?? ProcessRow(pid: pid)
                row.umem = p
                if row.comm.isEmpty { row.comm = cString(v.comm) }
                procs[pid] = row
            }
        }
        if let m = try? o.map("um_areas"), (try? m.check(UInt64.self, um_area.self)) != nil {
            for area in m.keys(as: UInt64.self) {
                guard let v = m.lookup(area, as: um_area.self)?.first else { continue }
                t.areas += 1
                t.pendingRequests &+= v.pending
                if v.client_tgid != 0 {
                    var row = procs[v.client_tgid] ?? ProcessRow(pid: v.client_tgid)
                    var p = row.umem ?? ProcessUmem()
                    p.pendingRequests &+= v.pending
                    row.umem = p
                    procs[v.client_tgid] = row
                }
            }
        }
        return t
    }

    // MARK: maintenance

    /// Removes rows of processes that have exited (after a snapshot has
    /// counted them; totals are unaffected) and expires service starts older
    /// than maxStartAgeNs (stall starts live in task storage and go with
    /// their thread). Returns the number of entries removed.
    @discardableResult
    public func maintain(isAlive: (UInt32) -> Bool = processExists) -> Int {
        var removed = 0
        if let o = ummunotify {
            if let m = try? o.map("un_procs") {
                for pid in m.keys(as: UInt32.self) where !isAlive(pid) { if m.delete(pid) { removed += 1 } }
            }
            if let m = try? o.map("un_ctxs") {
                for ctx in m.keys(as: UInt64.self) {
                    let tgid = m.lookup(ctx, as: un_ctx.self)?.map(\.tgid).max() ?? 0
                    if tgid != 0 && !isAlive(tgid) && m.delete(ctx) { removed += 1 }
                }
            }
        }
        if let o = umem {
            if let m = try? o.map("um_procs") {
                for pid in m.keys(as: UInt32.self) where !isAlive(pid) { if m.delete(pid) { removed += 1 } }
            }
            if let m = try? o.map("um_areas") {
                for a in m.keys(as: UInt64.self) {
                    let tgid = m.lookup(a, as: um_area.self)?.first?.client_tgid ?? 0
                    if tgid != 0 && !isAlive(tgid) && m.delete(a) { removed += 1 }
                }
            }
            let now = monotonicNow()
            let cutoff = now > maxStartAgeNs ? now - maxStartAgeNs : 0
            if let m = try? o.map("um_pages") {
                for k in m.keys(as: PageKey.self) {
                    if let v = m.lookup(k, as: um_page_val.self)?.first, v.ts < cutoff, m.delete(k) {
                        expired += 1
                        removed += 1
                    }
                }
            }
        }
        return removed
    }
}

/// Hashable mirrors of the C key structs (same bytes).
struct PageKey: Hashable, BitwiseCopyable {
    var area: UInt64
    var pgoff: UInt64
}

/// True while /proc/PID exists.
public func processExists(_ pid: UInt32) -> Bool {
    access("/proc/\(pid)", F_OK) == 0
}

/// /proc/PID/comm without the newline, or "" when gone.
public func processName(_ pid: UInt32) -> String {
    guard let s = try? readSmallFile("/proc/\(pid)/comm") else { return "" }
    return s.hasSuffix("\n") ? String(s.dropLast()) : s
}
