import CLibbpf
import Glibc
import Synchronization
import UmmuBPF

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

/// Loads, attaches and reads the BPF programs of every available source.
public final class Tracer: @unchecked Sendable {
    public private(set) var objects: [TraceSource: BPFObject] = [:]
    /// Sources requested but left out, each with its one-line reason.
    public private(set) var unavailable: [TraceSource: UmmuError] = [:]
    /// Processes the last maintain() found gone (removed at the next).
    private var goneAtLastMaintain = Set<UInt32>()
    /// Each process's ummunotify reads and events read, as last reported
    /// (see readUmmunotify); snapshots may run on several threads.
    private let readsHighWater = Mutex<[UInt32: ReadCounts]>([:])
    let symbols = KernelSymbols()
    /// Per-subscriber callback timing, when the programs are attached.
    private let callbackTimers: CallbackTimers?

    public var ummunotify: BPFObject? { objects[.ummunotify] }
    public var umem: BPFObject? { objects[.umem] }

    /// The sources being traced, in a stable order.
    public var sources: [TraceSource] { TraceSource.allCases.filter { objects[$0] != nil } }

    /// Loads the requested sources. A source that cannot be traced here (a
    /// driver not loaded, fentry refused, no BTF) is an error when
    /// `required` says so, and otherwise left out (noted in `unavailable`)
    /// as long as one source remains.
    public init(sources: [TraceSource] = TraceSource.allCases, required: Bool = false,
                options: LoadOptions = LoadOptions(), attach: Bool = true) throws {
        callbackTimers = attach && sources.contains(.mmuNotifier) ? CallbackTimers(options: options) : nil
        for source in sources {
            do {
                let obj = try BPFObject(source.objectID, options: options)
                if attach { try obj.attach() }
                objects[source] = obj
            } catch let e as UmmuError where e.kind == .driverAbsent {
                let named = source.objectID.isStockKernel ? UmmuError(e.kind, "\(source.rawValue): \(e.message)") : e
                if required { throw named }
                unavailable[source] = named
            }
        }
        for name in options.mapSizes.keys where !objects.values.contains(where: { $0.hasMap(name) }) {
            throw UmmuError(.usage, "no map named \(name) in the loaded BPF objects")
        }
        if objects.isEmpty {
            if unavailable.isEmpty { throw UmmuError(.usage, "nothing to trace") }
            let reasons = TraceSource.allCases.compactMap { unavailable[$0]?.message }
            throw UmmuError(.driverAbsent, "nothing to trace: " + reasons.joined(separator: "; "))
        }
    }

    public func object(_ source: TraceSource) -> BPFObject? { objects[source] }

    /// One line per source left out, for stderr: "TOOL: REASON; tracing X and Y".
    public func unavailableLines(tool: String, verb: String = "tracing") -> [String] {
        let traced = sources.map(\.rawValue).joined(separator: ", ")
        return TraceSource.allCases.compactMap { unavailable[$0] }
            .map { "\(tool): \($0.message); \(verb) \(traced)" }
    }

    public func detach() {
        for o in objects.values { o.detach() }
        callbackTimers?.detach()
    }

    /// Subscribers whose callback cannot be timed here, with the reason.
    public var untimedSubscribers: [String] { callbackTimers.map { Array($0.untimed.values).sorted() } ?? [] }

    // MARK: snapshot

    /// Every map of every source, read in full. A map that is missing,
    /// laid out differently or unreadable is an error naming it, never zeros.
    public func snapshot() throws -> Snapshot {
        var snap = Snapshot(monotonicNs: monotonicNow(), wallNs: wallNow())
        var procs: [UInt32: ProcessRow] = [:]
        if let o = ummunotify {
            snap.ummunotify = try readUmmunotify(o, into: &procs)
        }
        if let o = umem {
            snap.umem = try readUmem(o, into: &procs)
        }
        if let o = objects[.mmuNotifier] {
            snap.mmuNotifier = try readMMUNotifier(o, into: &procs, subscribers: &snap.subscribers,
                                                   causes: &snap.causes)
            snap.callbacks = try callbackTimers?.read() ?? [:]
        }
        if let o = objects[.userfaultfd] {
            snap.userfaultfd = try readUserfaultfd(o, into: &procs)
        }
        for (source, o) in objects {
            snap.droppedEvents &+= try o.totals(.drops, as: UInt64.self)
            snap.bpf[source] = runStats(o)
        }
        for (pid, row) in procs where row.comm.isEmpty {
            procs[pid]?.comm = processName(pid)
        }
        snap.processes = procs
        // New subscribers are timed from the next snapshot on. Loading
        // takes a while (seconds under emulation), so only after every map
        // of this snapshot has been read.
        if let timers = callbackTimers {
            var callbacks: [UInt64: String?] = [:]
            for (key, row) in snap.subscribers where !key.interval {
                callbacks[row.callback] = row.module
            }
            timers.add(callbacks, symbols: symbols)
        }
        return snap
    }

    func runStats(_ o: BPFObject) -> BPFRunStats {
        o.programs.reduce(into: BPFRunStats()) { acc, p in
            let s = p.runStats()
            acc.runTimeNs &+= s.runTimeNs
            acc.runCount &+= s.runCount
        }
    }

    func readUmmunotify(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) throws -> UmmunotifyTotals {
        var t = UmmunotifyTotals()
        do {
            let v = try o.totals(.unTotals, as: un_totals.self)
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
        try o.map(.unHists).readHistograms(into: &t, [(UN_HIST_SPAN.rawValue, \.spanBytes),
                                                        (UN_HIST_READ_BATCH.rawValue, \.readBatch)])
        try mergeProcessRows(o, .unProcs, as: un_proc.self, startTime: \.start_time, comm: \.comm,
                             into: &procs) { row, v in
            var p = ProcessUmmunotify()
            p.startTime = v.start_time
            p.invalidations = cArray(v.inval, count: Reason.count)
            p.invalidatedBytes = cArray(v.bytes, count: Reason.count)
            p.reportsQueued = v.queued
            p.reportsMerged = v.merged
            p.reads = v.reads
            p.eventsRead = v.events_read
            row.ummunotify = p
        }
        try o.map(.unCtxs).withRows(UInt64.self, un_ctx.self) { rows in
            for per in rows.lazy.map(\.values) {
                // Gauges: the CPU's copy with the driver's newest number.
                let newest = per.max(by: { $0.seq < $1.seq })
                let held = newest?.held ?? 0, backlog = newest?.backlog ?? 0
                let tgid = per.lazy.map(\.tgid).max() ?? 0
                let start = per.lazy.map(\.tgid_start).max() ?? 0
                t.contexts += 1
                t.registrationsHeld &+= held
                t.reportsBacklog &+= backlog
                if tgid != 0 {
                    // A process's reads: its released contexts' (un_procs)
                    // and its live ones'.
                    let v = per.summed()
                    var row = procs[tgid] ?? ProcessRow(pid: tgid)
                    var p = row.ummunotify ?? ProcessUmmunotify()
                    if !sameProcess(p.startTime, start) {
                        // One of the two is an exited process whose pid
                        // was reused: the live context's owner is newer
                        // than a row its events have not taken over yet,
                        // while an older owner's context (its fd passed
                        // on) counts in the totals only.
                        guard start > p.startTime else { continue }
                        p = ProcessUmmunotify()
                        row.comm = ""
                    }
                    p.startTime = max(p.startTime, start)
                    p.registrationsHeld &+= held
                    p.reads &+= v.reads
                    p.eventsRead &+= v.events_read
                    row.ummunotify = p
                    procs[tgid] = row
                }
            }
        }
        holdReadsAtHighWater(&procs)
        return t
    }

    /// A context's reads move from its un_ctxs row to its process's
    /// un_procs row at its release, and un_procs is read first: a snapshot
    /// whose two reads straddle a release misses them once, and so does one
    /// after maintenance deleted an exited owner's row while another
    /// process still holds one of its contexts. A count that went back
    /// would read as a reset, its whole total new in the next interval, so
    /// each process's counts are held at their highest while it has rows
    /// (a process that leaves the maps is forgotten, and so is one whose
    /// pid another process took).
    private func holdReadsAtHighWater(_ procs: inout [UInt32: ProcessRow]) {
        readsHighWater.withLock { marks in
            var seen: [UInt32: ReadCounts] = [:]
            for (pid, row) in procs {
                guard var p = row.ummunotify else { continue }
                if let m = marks[pid], sameProcess(m.startTime, p.startTime) {
                    p.reads = max(p.reads, m.reads)
                    p.eventsRead = max(p.eventsRead, m.eventsRead)
                    p.startTime = max(p.startTime, m.startTime)
                    procs[pid]?.ummunotify = p
                }
                seen[pid] = ReadCounts(startTime: p.startTime, reads: p.reads, eventsRead: p.eventsRead)
            }
            marks = seen
        }
    }

    func readUmem(_ o: BPFObject, into procs: inout [UInt32: ProcessRow]) throws -> UmemTotals {
        var t = UmemTotals()
        do {
            let v = try o.totals(.umTotals, as: um_totals.self)
            t.faults = v.faults
            t.faultsWaited = v.faults_waited
            t.waitingFaults = v.faults_waited > v.waits_ended ? v.faults_waited - v.waits_ended : 0
            t.outcomes = cArray(v.done, count: FaultOutcome.count)
            t.reads = v.reads
            t.offsetsHanded = v.handed
            t.pagesWritten = v.writes
            t.pagesOnDemand = v.on_demand
            t.pagesPushed = v.pushed
            t.processOverflow = v.proc_overflow
            t.areaOverflow = v.area_overflow
            t.filtered = v.filtered
        }
        try o.map(.umHists).readHistograms(into: &t, [(UM_HIST_SERVICE.rawValue, \.serviceLatency),
                                                        (UM_HIST_STALL.rawValue, \.stallLatency),
                                                        (UM_HIST_READ_BATCH.rawValue, \.readBatch)])
        try mergeProcessRows(o, .umProcs, as: um_proc.self, startTime: \.start_time, comm: \.comm,
                             into: &procs) { row, v in
            // Per-CPU: every field but comm sums, the histograms too.
            var p = ProcessUmem()
            p.startTime = v.start_time
            p.faults = v.faults
            p.faultsWaited = v.faults_waited
            p.pagesOnDemand = v.on_demand
            p.serviceLatency = Histogram(v.service)
            p.stallLatency = Histogram(v.stall)
            row.umem = p
        }
        try o.map(.umAreas).withRows(UInt64.self, um_area.self) { rows in
            for v in rows.lazy.map(\.values.value) {
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

    /// Merges every row of a per-process map (key: tgid) into `procs`.
    /// Every such row carries the start time of the process it counts (in
    /// a per-CPU map, each CPU's copy): `fill` gets the row of the newest
    /// process (the sum of its copies), and a process not named yet takes
    /// the first comm one of them carries.
    func mergeProcessRows<V: BitwiseCopyable, C>(
        _ o: BPFObject, _ name: BPFMapName, as: V.Type, startTime: KeyPath<V, UInt64>, comm: KeyPath<V, C>,
        into procs: inout [UInt32: ProcessRow], _ fill: (inout ProcessRow, V) -> Void
    ) throws {
        guard let startOffset = MemoryLayout<V>.offset(of: startTime) else {
            throw UmmuError(.bpf, "\(name): the start time is not a stored field")
        }
        try o.map(name).withRows(UInt32.self, V.self) { rows in
            for (pid, per) in rows {
                let (start, v) = per.summedForNewestProcess(startOffset: startOffset)
                var row = procs[pid] ?? ProcessRow(pid: pid)
                fill(&row, v)
                if row.comm.isEmpty,
                    let c = per.lazy.filter({ $0[keyPath: startTime] == start }).map({ cString($0[keyPath: comm]) })
                        .first(where: { !$0.isEmpty })
                {
                    row.comm = c
                }
                procs[pid] = row
            }
        }
    }

    // MARK: maintenance

    /// Removes the per-process rows of processes that have exited (a
    /// context's or area's row goes at its release, in BPF). Returns the
    /// number of entries removed.
    ///
    /// A process is removed at the second call that finds it gone, so the
    /// snapshot taken between the two calls has counted its last events:
    /// rows created after one snapshot by a process that exits before the
    /// next call (a slow snapshot makes that window seconds long) would
    /// otherwise vanish uncounted. Totals are never affected.
    @discardableResult
    public func maintain(isAlive: (UInt32) -> Bool = processExists) -> Int {
        var dead = Set<UInt32>()
        let wasDead = goneAtLastMaintain
        func gone(_ pid: UInt32) -> Bool {
            if isAlive(pid) { return false }
            dead.insert(pid)
            return wasDead.contains(pid)
        }
        defer { goneAtLastMaintain = dead }
        var removed = 0
        // A map that cannot be read keeps its rows until a later call; the
        // snapshot reports the error.
        if let o = ummunotify {
            removed += (try? o.map(.unProcs).deleteRows(UInt32.self, un_proc.self) { pid, _ in gone(pid) }) ?? 0
        }
        removed += maintainStock(gone: gone)
        if let o = umem {
            removed += (try? o.map(.umProcs).deleteRows(UInt32.self, um_proc.self) { pid, _ in gone(pid) }) ?? 0
        }
        return removed
    }
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

struct ReadCounts: Sendable {
    var startTime: UInt64
    var reads: UInt64
    var eventsRead: UInt64
}
