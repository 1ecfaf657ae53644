import CLibbpf
import Glibc
import UmmuBPF

/// The BPF objects embedded in the binary (see bpf/ and Plugins/BPFEmbed).
public enum BPFObjectID: Int32, Sendable, CaseIterable {
    case ummunotify = 0
    case umem = 1
    case benchMinimal = 2
    case mmuNotifier = 3
    case userfaultfd = 4
    /// One subscriber's invalidate_range_start, retargeted at load.
    case mnCallback = 5
    /// Bench only: one-counter fentry/fexit programs, retargeted at load.
    case benchMinimalFentry = 6

    /// Stock-kernel objects attach with fentry/fexit and need kernel BTF.
    public var isStockKernel: Bool { self == .mmuNotifier || self == .userfaultfd || self == .mnCallback }

    /// Size of the embedded ELF object.
    public var embeddedSize: Int {
        var n = 0
        _ = ummu_object_bytes(rawValue, &n)
        return n
    }
}

/// Number of possible CPUs (the length of a per-CPU map value array).
public let possibleCPUs: Int = {
    let n = libbpf_num_possible_cpus()
    return n > 0 ? Int(n) : 1
}()

/// Sets libbpf's verbosity (verifier logs to stderr when true).
public func setLibbpfVerbose(_ verbose: Bool) {
    ummu_libbpf_set_verbose(verbose ? 1 : 0)
}

/// One BPF program of a loaded object.
public struct BPFProgram: @unchecked Sendable {
    let prog: OpaquePointer
    public let name: String
    /// Raw tracepoint or kernel function this program belongs to (from its
    /// SEC("raw_tp/...") or SEC("fentry/...")).
    public let tracepoint: String
    /// fentry/fexit (attached through BTF) rather than a raw tracepoint.
    public let isTrace: Bool

    var attachesAtExit: Bool { isTrace && bpf_program__expected_attach_type(prog) == BPF_TRACE_FEXIT }

    public var fd: Int32 { bpf_program__fd(prog) }

    /// Runs the program once with `args` as its raw_tp context (BPF_PROG_TEST_RUN),
    /// on `cpu` (BPF_F_TEST_RUN_ON_CPU) or, when nil, on the calling CPU.
    @discardableResult
    public func testRun(_ args: [UInt64], onCPU cpu: Int? = nil) throws -> UInt32 {
        var ret: UInt32 = 0
        let rc = args.withUnsafeBufferPointer { buf in
            ummu_test_run_raw_tp(fd, buf.baseAddress, UInt32(buf.count), Int32(clamping: cpu ?? -1), &ret)
        }
        if rc != 0 {
            let on = cpu.map { " on CPU \($0)" } ?? ""
            throw UmmuError(.bpf, "test run of \(name)\(on) failed: \(UmmuError.errnoText(rc))")
        }
        return ret
    }

    /// run_time_ns and run_cnt as the kernel counts them (when stats are enabled).
    public func runStats() -> (runTimeNs: UInt64, runCount: UInt64) {
        var t: UInt64 = 0
        var c: UInt64 = 0
        if ummu_prog_stats(fd, &t, &c) != 0 { return (0, 0) }
        return (t, c)
    }
}

/// A map of a loaded object, read through its fd. One per map and object
/// (BPFObject caches them): its batch buffer is reused by every read.
public final class BPFMap: @unchecked Sendable {
    public let name: String
    public let fd: Int32
    public let type: UInt32
    public let keySize: Int
    public let valueSize: Int
    public let maxEntries: Int

    public var isPerCPU: Bool {
        type == BPF_MAP_TYPE_PERCPU_ARRAY.rawValue || type == BPF_MAP_TYPE_PERCPU_HASH.rawValue
            || type == BPF_MAP_TYPE_LRU_PERCPU_HASH.rawValue
    }

    /// Copies of a value per row: one per possible CPU for per-CPU maps.
    var cpus: Int { isPerCPU ? possibleCPUs : 1 }
    /// Bytes of one CPU's copy: the kernel pads per-CPU copies to 8 bytes.
    var cpuStride: Int { isPerCPU ? (valueSize + 7) & ~7 : valueSize }
    /// Bytes of one row's values in a batch (keys are packed at keySize).
    var rowStride: Int { cpuStride * cpus }

    private let lock = MapLock()
    private let buffer: BatchBuffer
    /// BPF_MAP_LOOKUP_BATCH calls of the last read (1 once the buffer fits).
    private(set) var lastReadCalls = 0

    init(name: String, fd: Int32) throws(UmmuError) {
        var t: UInt32 = 0, k: UInt32 = 0, v: UInt32 = 0, m: UInt32 = 0
        let rc = ummu_map_info(fd, &t, &k, &v, &m)
        if rc != 0 {
            throw UmmuError(.bpf, "cannot read map \(name): \(UmmuError.errnoText(rc))")
        }
        self.name = name
        self.fd = fd
        type = t
        keySize = Int(k)
        valueSize = Int(v)
        maxEntries = Int(m)
        buffer = BatchBuffer(keySize: Int(k), tokenSize: max(8, Int(k)))
    }

    /// Checks that a Swift view of the key and value matches the map's layout.
    func check<K, V>(_ k: K.Type, _ v: V.Type) throws {
        if MemoryLayout<K>.size != keySize || MemoryLayout<V>.size != valueSize {
            throw UmmuError(.bpf, "map \(name): layout mismatch: the loaded object has \(keySize)-byte keys and"
                + " \(valueSize)-byte values, UmmuKit reads \(MemoryLayout<K>.size) and \(MemoryLayout<V>.size)"
                + " (bpf/ummu_shared.h and the object differ)")
        }
    }

    /// Every row, read with BPF_MAP_LOOKUP_BATCH into this map's buffer and
    /// handed to `body` as views valid only during the call.
    public func withRows<K: BitwiseCopyable, V: BitwiseCopyable, R>(
        _ k: K.Type, _ v: V.Type, _ body: (BPFRows<K, V>) throws -> R
    ) throws -> R {
        try check(K.self, V.self)
        return try withBatch { n in
            try body(BPFRows(keys: UnsafeRawPointer(buffer.keys), values: UnsafeRawPointer(buffer.values),
                             endIndex: n, keySize: keySize, rowStride: rowStride, cpuStride: cpuStride, cpus: cpus))
        }
    }

    /// The keys (read in one batch, like every row).
    public func keys<K: BitwiseCopyable>(as: K.Type) throws -> [K] {
        if MemoryLayout<K>.size != keySize {
            throw UmmuError(.bpf, "map \(name): \(keySize)-byte keys, read as \(MemoryLayout<K>.size)")
        }
        return try withBatch { n in
            (0..<n).map { UnsafeRawPointer(buffer.keys).loadUnaligned(fromByteOffset: $0 * keySize, as: K.self) }
        }
    }

    /// Reads every row into the buffer and runs `body` with the row count
    /// while no other thread can reuse the buffer.
    private func withBatch<R>(_ body: (Int) throws -> R) throws -> R {
        try lock.withLock { try body(try readAll()) }
    }

    /// Fills the buffer with every row and returns how many. A hash map's
    /// batch cursor is a bucket, so rows BPF deletes meanwhile do not make
    /// the walk restart: each row present throughout comes exactly once.
    private func readAll() throws -> Int {
        if buffer.capacity == 0 {
            // Room for a whole array at once, and for a hash map's first
            // 64 KiB; grown as needed and kept for the next read.
            buffer.grow(to: min(maxEntries + 1, max(16, 65536 / max(1, keySize + rowStride))), rowStride: rowStride)
        }
        var total = 0
        var started = false
        lastReadCalls = 0
        while true {
            if total == buffer.capacity { buffer.grow(to: 2 * buffer.capacity, rowStride: rowStride) }
            var n = UInt32(clamping: buffer.capacity - total)
            lastReadCalls += 1
            let rc = bpf_map_lookup_batch(fd, started ? UnsafeMutableRawPointer(buffer.token) : nil, buffer.token,
                                          buffer.keys + total * keySize, buffer.values + total * rowStride, &n, nil)
            total += Int(n)
            switch rc {
            case 0 where n > 0:
                started = true
            case -ENOENT:  // past the last row
                return total
            case -ENOSPC where buffer.capacity - total < maxEntries:
                // A bucket holds more rows than are left: retry it with more room.
                buffer.grow(to: 2 * buffer.capacity, rowStride: rowStride)
            default:
                throw UmmuError(.bpf, "cannot read map \(name): "
                    + (rc == 0 ? "the batch lookup returned no row" : UmmuError.errnoText(rc)))
            }
        }
    }

    /// The value for a key: one element per possible CPU for per-CPU maps,
    /// otherwise a single element. nil when the key is absent.
    public func lookup<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, as: V.Type) throws -> [V]? {
        try check(K.self, V.self)
        var key = key
        let raw = UnsafeMutableRawPointer.allocate(byteCount: rowStride, alignment: 8)
        defer { raw.deallocate() }
        let rc = bpf_map_lookup_elem(fd, &key, raw)
        if rc == -ENOENT { return nil }
        if rc != 0 { throw UmmuError(.bpf, "cannot read map \(name): \(UmmuError.errnoText(rc))") }
        return (0..<cpus).map { raw.loadUnaligned(fromByteOffset: $0 * cpuStride, as: V.self) }
    }

    /// The elements of an array map of all-u64 structs at `indices`, each
    /// summed over CPUs (one batch read for all).
    func summed<V: BitwiseCopyable>(_ indices: [UInt32], as: V.Type) throws -> [V] {
        try withRows(UInt32.self, V.self) { rows in
            try indices.map { i in
                guard Int(i) < rows.count, rows[Int(i)].key == i else {
                    throw UmmuError(.bpf, "map \(name) has no element \(i)")
                }
                return rows[Int(i)].values.summed()
            }
        }
    }

    /// Histogram elements of an array map, summed over CPUs.
    func histograms(_ indices: [UInt32]) throws -> [Histogram] {
        try summed(indices, as: ummu_hist.self).map(Histogram.init)
    }

    /// Sets each histogram field of `totals` from its element of this array map.
    func readHistograms<T>(into totals: inout T, _ fields: [(index: UInt32, field: WritableKeyPath<T, Histogram>)]) throws {
        for (h, f) in zip(try histograms(fields.map(\.index)), fields) { totals[keyPath: f.field] = h }
    }

    /// Deletes the rows `doomed` picks and returns how many went (a row
    /// already gone is not counted).
    func deleteRows<K: BitwiseCopyable, V: BitwiseCopyable>(
        _ k: K.Type, _ v: V.Type, where doomed: (K, PerCPUValues<V>) -> Bool
    ) throws -> Int {
        let keys = try withRows(K.self, V.self) { rows in rows.filter { doomed($0.key, $0.values) }.map(\.key) }
        return keys.reduce(0) { $0 + (delete($1) ? 1 : 0) }
    }

    @discardableResult
    public func delete<K: BitwiseCopyable>(_ key: K) -> Bool {
        var key = key
        return bpf_map_delete_elem(fd, &key) == 0
    }

    /// Writes a value (for tests and benches); per-CPU maps take one per CPU.
    @discardableResult
    public func update<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, _ values: [V]) -> Bool {
        guard (try? check(K.self, V.self)) != nil, values.count == cpus else { return false }
        var key = key
        let raw = UnsafeMutableRawPointer.allocate(byteCount: rowStride, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: rowStride)
        for (i, v) in values.enumerated() { raw.storeBytes(of: v, toByteOffset: i * cpuStride, as: V.self) }
        return bpf_map_update_elem(fd, &key, raw, 0) == 0
    }
}

/// The rows of one batch read: keys and per-CPU values, read in place.
public struct BPFRows<K: BitwiseCopyable, V: BitwiseCopyable>: RandomAccessCollection {
    let keys: UnsafeRawPointer
    let values: UnsafeRawPointer
    public let endIndex: Int
    let keySize: Int
    let rowStride: Int
    let cpuStride: Int
    let cpus: Int

    public var startIndex: Int { 0 }

    public subscript(i: Int) -> (key: K, values: PerCPUValues<V>) {
        (keys.loadUnaligned(fromByteOffset: i * keySize, as: K.self),
         PerCPUValues(base: values + i * rowStride, stride: cpuStride, endIndex: cpus))
    }
}

/// One row's value: a copy per possible CPU for per-CPU maps, else one.
public struct PerCPUValues<V: BitwiseCopyable>: RandomAccessCollection {
    let base: UnsafeRawPointer
    let stride: Int
    /// At least 1.
    public let endIndex: Int

    public var startIndex: Int { 0 }

    public subscript(cpu: Int) -> V { base.loadUnaligned(fromByteOffset: cpu * stride, as: V.self) }

    /// The value of a map that is not per-CPU (CPU 0's copy of one that is).
    public var value: V { self[0] }

    /// The copies of an all-u64 struct summed word by word.
    public func summed() -> V { summed { _ in true } }

    /// The copies that count a per-process row's newest process, summed,
    /// and its start time: every copy carries the start time of the
    /// process it counts (a u64 at `startOffset`, in the drivers' rows); a
    /// copy of an older one is an exited process's whose pid was reused,
    /// not yet taken over on that CPU, and is left out.
    public func summedForNewestProcess(startOffset: Int) -> (startTime: UInt64, value: V) {
        let newest = (0..<endIndex).lazy.map { startTime(cpu: $0, startOffset) }.max() ?? 0
        var out = summed { startTime(cpu: $0, startOffset) == newest }
        withUnsafeMutableBytes(of: &out) { $0.storeBytes(of: newest, toByteOffset: startOffset, as: UInt64.self) }
        return (newest, out)
    }

    func startTime(cpu: Int, _ startOffset: Int) -> UInt64 {
        base.loadUnaligned(fromByteOffset: cpu * stride + startOffset, as: UInt64.self)
    }

    /// The copies of the CPUs `include` takes (at least one), summed word by word.
    private func summed(_ include: (Int) -> Bool) -> V {
        var out = self[0]
        var first = true
        withUnsafeMutableBytes(of: &out) { acc in
            for cpu in 0..<endIndex where include(cpu) {
                let src = base + cpu * stride
                if first {
                    acc.copyMemory(from: UnsafeRawBufferPointer(start: src, count: acc.count))
                    first = false
                    continue
                }
                for w in 0..<acc.count / 8 {
                    let sum = acc.load(fromByteOffset: w * 8, as: UInt64.self)
                        &+ src.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
                    acc.storeBytes(of: sum, toByteOffset: w * 8, as: UInt64.self)
                }
            }
        }
        return out
    }
}

/// A map's batch buffers: keys, values and the kernel's cursor.
private final class BatchBuffer {
    let keySize: Int
    private(set) var capacity = 0
    private(set) var keys: UnsafeMutableRawPointer
    private(set) var values: UnsafeMutableRawPointer
    let token: UnsafeMutableRawPointer

    init(keySize: Int, tokenSize: Int) {
        self.keySize = keySize
        keys = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8)
        values = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8)
        token = UnsafeMutableRawPointer.allocate(byteCount: tokenSize, alignment: 8)
    }

    /// Room for `rows` rows, keeping the rows read so far.
    func grow(to rows: Int, rowStride: Int) {
        guard rows > capacity else { return }
        let k = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * keySize), alignment: 8)
        let v = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * rowStride), alignment: 8)
        k.copyMemory(from: keys, byteCount: capacity * keySize)
        v.copyMemory(from: values, byteCount: capacity * rowStride)
        keys.deallocate()
        values.deallocate()
        keys = k
        values = v
        capacity = rows
    }

    deinit {
        keys.deallocate()
        values.deallocate()
        token.deallocate()
    }
}

/// A pthread mutex: one reader of a map's buffer at a time.
private final class MapLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Why fentry programs on the stock kernel cannot work here, or nil when
/// they may: checked before loading so the reason is one clear line.
func stockKernelUnavailable(btfPath: String = "/sys/kernel/btf/vmlinux") -> String? {
    if access(btfPath, R_OK) != 0 {
        return "no BTF: \(btfPath) is missing (needs CONFIG_DEBUG_INFO_BTF)"
    }
    return nil
}

/// The kernel's lockdown mode when it is on and visible ("integrity",
/// "confidentiality"); nil when off or securityfs is not mounted.
func lockdownMode(path: String = "/sys/kernel/security/lockdown") -> String? {
    guard let text = try? readSmallFile(path),
          let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]")
    else { return nil }
    let mode = String(text[text.index(after: open)..<close])
    return mode == "none" ? nil : mode
}

/// Options fixed before load.
public struct LoadOptions: Sendable {
    /// Only this process (0: all).
    public var filterPID: UInt32 = 0
    /// Push per-event records to the ring buffer.
    public var events = false
    /// Ring buffer size in bytes (power of two, >= page size).
    public var ringBytes: UInt32 = 1 << 20
    /// Overrides of map sizes by map, e.g. [.umProcs: 64].
    public var mapSizes: [BPFMapName: UInt32] = [:]

    public init(filterPID: UInt32 = 0, events: Bool = false, ringBytes: UInt32 = 1 << 20,
                mapSizes: [BPFMapName: UInt32] = [:]) {
        self.filterPID = filterPID
        self.events = events
        self.ringBytes = ringBytes
        self.mapSizes = mapSizes
    }
}

/// A loaded (verified) BPF object: programs and maps, attached or not.
public final class BPFObject: @unchecked Sendable {
    let obj: OpaquePointer
    public let id: BPFObjectID
    public private(set) var programs: [BPFProgram] = []
    private var links: [OpaquePointer] = []
    /// Every map, looked up once after load (fd and sizes do not change).
    private var maps: [String: Result<BPFMap, UmmuError>] = [:]

    /// Opens the embedded object, applies `options` and loads it into the
    /// kernel. Does not attach. `attachTarget` retargets every fentry/fexit
    /// program at that kernel function (vmlinux or a module with BTF).
    public init(_ id: BPFObjectID, options: LoadOptions = LoadOptions(), attachTarget: String? = nil) throws {
        self.id = id
        var err: Int32 = 0
        guard let o = ummu_object_open(id.rawValue, &err) else {
            throw UmmuError(.bpf, "cannot open the embedded \(id) BPF object: \(UmmuError.errnoText(err))")
        }
        obj = o
        // Every stored property is set from here on, so a throw runs
        // deinit, which closes the object: closing here too freed it twice.
        try configure(options)
        if let attachTarget {
            var p = bpf_object__next_program(o, nil)
            while let prog = p {
                let rc = bpf_program__set_attach_target(prog, 0, attachTarget)
                if rc != 0 {
                    throw UmmuError(.driverAbsent, "cannot target \(attachTarget): \(UmmuError.errnoText(rc))")
                }
                p = bpf_object__next_program(o, prog)
            }
        }
        let rc = bpf_object__load(o)
        if rc != 0 {
            throw id.isStockKernel ? BPFObject.stockLoadError(rc, id: id) : BPFObject.loadError(rc, id: id)
        }
        var p = bpf_object__next_program(o, nil)
        while let prog = p {
            let name = String(cString: bpf_program__name(prog))
            let sec = String(cString: bpf_program__section_name(prog))
            let parts = sec.split(separator: "/", maxSplits: 1).map(String.init)
            let tp = parts.count > 1 ? parts[1] : (attachTarget ?? sec)
            let isTrace = parts.first == "fentry" || parts.first == "fexit"
            programs.append(BPFProgram(prog: prog, name: name, tracepoint: tp, isTrace: isTrace))
            p = bpf_object__next_program(o, prog)
        }
        var m = bpf_object__next_map(o, nil)
        while let map = m {
            let name = String(cString: bpf_map__name(map))
            // A map whose info cannot be read fails when it is used, not here.
            maps[name] = Result { () throws(UmmuError) in try BPFMap(name: name, fd: bpf_map__fd(map)) }
            m = bpf_object__next_map(o, map)
        }
    }

    private func configure(_ options: LoadOptions) throws {
        if id != .benchMinimal {
            if id.isStockKernel, let reason = stockKernelUnavailable() {
                throw UmmuError(.driverAbsent, reason)
            }
            // The load time: a umem wait that began before it is not ended
            // by the programs' count of waiting faults.
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            var cfg = ummu_config(filter_tgid: options.filterPID, emit_events: options.events ? 1 : 0,
                                  loaded_ns: UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec))
            let rc = ummu_object_set_config(obj, &cfg)
            if rc != 0 {
                throw UmmuError(.bpf, "cannot configure the \(id) BPF object: \(UmmuError.errnoText(rc))")
            }
            if let m = bpf_object__find_map_by_name(obj, BPFMapName.events.rawValue) {
                // A ring buffer needs a power-of-two size of at least a page;
                // without events it stays at that minimum.
                var size = UInt32(max(4096, options.events ? Int(options.ringBytes) : 0))
                if size & (size - 1) != 0 { size = UInt32(1) << UInt32(32 - size.leadingZeroBitCount) }
                bpf_map__set_max_entries(m, size)
            }
        }
        sizePerCPUHashes()
        // Sizes of maps this object does not have are for another object;
        // Tracer checks that each name exists somewhere.
        for (name, size) in options.mapSizes {
            if let m = bpf_object__find_map_by_name(obj, name.rawValue) { bpf_map__set_max_entries(m, size) }
        }
        var p = bpf_object__next_program(obj, nil)
        while let prog = p {
            bpf_program__set_autoattach(prog, false)
            p = bpf_object__next_program(obj, prog)
        }
    }

    /// Kernel memory one per-CPU hash map may take by default.
    public static let perCPUMapBudget = 16 << 20

    /// Rows a per-CPU hash map of `valueSize`-byte values gets on a machine
    /// of `cpus` possible CPUs: its compiled size, fewer where a row on
    /// every CPU would make the map exceed `perCPUMapBudget` (each row
    /// takes `cpus` values of the size rounded up to 8), at least 64.
    public static func perCPURows(compiled: UInt32, valueSize: Int, cpus: Int) -> UInt32 {
        let rowBytes = max(1, cpus) * ((valueSize + 7) & ~7)
        return min(compiled, UInt32(max(64, perCPUMapBudget / rowBytes)))
    }

    /// A per-CPU hash map preallocates a value for every possible CPU in
    /// every row: sized for a few CPUs, it would take hundreds of MiB on a
    /// large machine. LoadOptions.mapSizes still overrides.
    private func sizePerCPUHashes() {
        var m = bpf_object__next_map(obj, nil)
        while let map = m {
            if bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_HASH {
                bpf_map__set_max_entries(map, BPFObject.perCPURows(
                    compiled: bpf_map__max_entries(map), valueSize: Int(bpf_map__value_size(map)),
                    cpus: possibleCPUs))
            }
            m = bpf_object__next_map(obj, map)
        }
    }

    static func loadError(_ rc: Int32, id: BPFObjectID) -> UmmuError {
        let e = rc < 0 ? -rc : rc
        switch e {
        case EPERM, EACCES:
            return UmmuError(.privileges, "loading BPF programs needs root or CAP_BPF+CAP_PERFMON (try sudo)")
        case ENOSYS:
            return UmmuError(.noBPF, "this kernel has no BPF support (CONFIG_BPF_SYSCALL)")
        default:
            let detail = String(cString: ummu_libbpf_last_message())
            return UmmuError(.bpf, "the kernel refused the \(id) BPF programs: \(UmmuError.errnoText(rc))"
                + (detail.isEmpty ? "" : " (\(detail))") + "; rerun with --verbose for the verifier log")
        }
    }

    /// What an embedded object declares, read from its ELF and BTF without
    /// loading it (so on any kernel): program name -> section, and map
    /// name -> (key size, value size).
    public static func declarations(_ id: BPFObjectID) throws
        -> (programs: [String: String], maps: [String: (key: Int, value: Int)]) {
        var err: Int32 = 0
        guard let o = ummu_object_open(id.rawValue, &err) else {
            throw UmmuError(.bpf, "cannot open the embedded \(id) BPF object: \(UmmuError.errnoText(err))")
        }
        defer { bpf_object__close(o) }
        var programs: [String: String] = [:]
        var p = bpf_object__next_program(o, nil)
        while let prog = p {
            programs[String(cString: bpf_program__name(prog))] = String(cString: bpf_program__section_name(prog))
            p = bpf_object__next_program(o, prog)
        }
        var maps: [String: (key: Int, value: Int)] = [:]
        var m = bpf_object__next_map(o, nil)
        while let map = m {
            maps[String(cString: bpf_map__name(map))] = (Int(bpf_map__key_size(map)), Int(bpf_map__value_size(map)))
            m = bpf_object__next_map(o, map)
        }
        return (programs, maps)
    }

    /// A stock-kernel object the kernel refused: one line with the reason
    /// (the error kind says the source is unavailable, not that BPF is).
    static func stockLoadError(_ rc: Int32, id: BPFObjectID) -> UmmuError {
        let e = rc < 0 ? -rc : rc
        let detail = String(cString: ummu_libbpf_last_message())
        // Under lockdown the refusal is EPERM or, in confidentiality mode
        // (no bpf_probe_read_kernel), the verifier's EINVAL; an EINVAL under
        // integrity mode (Debian's default with Secure Boot) is a verifier
        // refusal like any other.
        if let mode = lockdownMode(), e == EPERM || (e == EINVAL && mode == "confidentiality") {
            return UmmuError(.driverAbsent, "fentry refused: kernel lockdown (\(mode))")
        }
        switch e {
        case EPERM:  // the verifier's refusals are EACCES or EINVAL, with a log
            return UmmuError(.driverAbsent,
                "fentry refused: \(UmmuError.errnoText(e)) although raw tracepoints load (kernel lockdown or a security module)")
        case ESRCH, ENOENT:
            // libbpf: a function or field this kernel's BTF does not have.
            return UmmuError(.driverAbsent, "this kernel lacks a traced function or field"
                + (detail.isEmpty ? "" : " (\(detail))") + "; see docs/stock-kernel.md")
        default:
            return UmmuError(.driverAbsent, "the kernel refused the \(id) programs: \(UmmuError.errnoText(rc))"
                + (detail.isEmpty ? "" : " (\(detail))") + "; rerun with --verbose for the verifier log")
        }
    }

    deinit {
        detach()
        bpf_object__close(obj)
    }

    public func program(_ name: String) throws -> BPFProgram {
        guard let p = programs.first(where: { $0.name == name }) else {
            throw UmmuError(.bpf, "no program \(name) in the \(id) BPF object")
        }
        return p
    }

    /// The one element of a per-CPU totals array, summed over CPUs.
    func totals<V: BitwiseCopyable>(_ name: BPFMapName, as: V.Type) throws -> V {
        let all = try map(name).summed([0], as: V.self)
        guard let v = all.first else { throw UmmuError(.bpf, "map \(name) has no element 0") }
        return v
    }

    public func hasMap(_ name: BPFMapName) -> Bool { maps[name.rawValue] != nil }

    public func map(_ name: BPFMapName) throws -> BPFMap {
        guard let m = maps[name.rawValue] else {
            throw UmmuError(.bpf, "no map \(name) in the \(id) BPF object")
        }
        return try m.get()
    }

    public var isAttached: Bool { !links.isEmpty }

    /// Attaches every program to its raw tracepoint or kernel function, all
    /// or none. ENOENT (tracepoint absent) becomes a driverAbsent error.
    public func attach() throws {
        // fexit before fentry: an entry counted while its exit is not yet
        // attached would never be matched (a fault counted as waiting forever).
        for p in programs.sorted(by: { $0.attachesAtExit && !$1.attachesAtExit }) {
            let attached = p.isTrace ? bpf_program__attach_trace(p.prog)
                : bpf_program__attach_raw_tracepoint(p.prog, p.tracepoint)
            guard let link = attached else {
                let e = errno
                detach()
                switch e {
                case ENOENT where !p.isTrace:
                    let driver = id == .umem ? "umem" : "ummunotify"
                    throw UmmuError(.driverAbsent,
                        "\(driver) not loaded (no tracepoint \(driver):\(p.tracepoint); modprobe \(driver))")
                case EINVAL where !p.isTrace:
                    // The kernel refuses a program that reads more arguments
                    // than the tracepoint has: a driver of another release.
                    let driver = id == .umem ? "umem" : "ummunotify"
                    throw UmmuError(.driverAbsent,
                        "\(driver) is of another release: its tracepoint \(p.tracepoint) lacks arguments these tools read (docs/tracepoints.md); load the \(driver) module built with them")
                case EPERM where p.isTrace, EACCES where p.isTrace:
                    throw UmmuError(.driverAbsent, "fentry refused: cannot attach to \(p.tracepoint): \(UmmuError.errnoText(e))")
                case EPERM, EACCES:
                    throw UmmuError(.privileges, "attaching BPF programs needs root or CAP_BPF+CAP_PERFMON (try sudo)")
                default:
                    throw UmmuError(.bpf, "cannot attach \(p.name) to \(p.tracepoint): \(UmmuError.errnoText(e))")
                }
            }
            links.append(link)
        }
    }

    /// Detaches every program (idempotent).
    public func detach() {
        for l in links { bpf_link__destroy(l) }
        links.removeAll()
    }
}

/// Holds kernel BPF run-time statistics on while alive (BPF_ENABLE_STATS).
public final class BPFStatsGuard: @unchecked Sendable {
    private var fd: Int32
    public init() throws {
        fd = bpf_enable_stats(BPF_STATS_RUN_TIME)
        if fd < 0 {
            let e = errno
            throw UmmuError(.bpf, "cannot enable BPF run-time statistics: \(UmmuError.errnoText(e))"
                + (e == EPERM ? " (BPF_ENABLE_STATS needs CAP_SYS_ADMIN)" : ""))
        }
    }
    public func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }
    deinit { close() }
}
