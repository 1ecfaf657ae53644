@_exported import struct UmmuBPF.ummu_event
import CLibbpf
import Glibc
import UmmuBPF

/// An output buffer that formats numbers without allocating and writes to an fd.
///
/// The bytes live in raw memory the buffer owns, grown only when a write
/// does not fit; copies share it until one of them writes (copy on write,
/// so a copy behaves as an independent value, as an array would).
public struct OutputBuffer {
    public let fd: Int32
    private var storage: Storage
    /// Bytes waiting to be written.
    public private(set) var count = 0
    /// errno of the last failed write (0: none).
    public private(set) var writeErrno: Int32 = 0

    /// The allocation; immutable, replaced as a whole when it grows.
    private final class Storage {
        let base: UnsafeMutablePointer<UInt8>
        let capacity: Int

        init(capacity: Int) {
            self.capacity = Swift.max(capacity, 64)
            base = .allocate(capacity: self.capacity)
        }

        deinit { base.deallocate() }
    }

    public init(fd: Int32 = 1, capacity: Int = 1 << 16) {
        self.fd = fd
        storage = Storage(capacity: capacity)
    }

    /// The bytes waiting to be written (a copy).
    public var bytes: [UInt8] {
        get { Array(UnsafeBufferPointer(start: storage.base, count: count)) }
        set {
            count = 0
            newValue.withUnsafeBufferPointer { src in
                guard let from = src.baseAddress else { return }
                let to = reserve(src.count)
                to.update(from: from, count: src.count)
                count = src.count
            }
        }
    }

    /// Room for `n` more bytes, this value the allocation's only owner;
    /// returns where they go. `commit` then counts what was written.
    @inline(__always)
    mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if _slowPath(!isKnownUniquelyReferenced(&storage) || storage.capacity - count < n) { regrow(n) }
        return storage.base + count
    }

    /// Counts the bytes written from a `reserve` up to `end`.
    @inline(__always)
    mutating func commit(_ end: UnsafeMutablePointer<UInt8>) {
        count = end - storage.base
    }

    @inline(never)
    private mutating func regrow(_ n: Int) {
        let need = count + n
        let capacity = storage.capacity >= need ? storage.capacity : Swift.max(storage.capacity * 2, need)
        let s = Storage(capacity: capacity)
        s.base.update(from: storage.base, count: count)
        storage = s
    }

    @inline(__always)
    public mutating func append(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        if n == 0 { return }
        let p = reserve(n)
        if s.hasPointerRepresentation {
            p.update(from: s.utf8Start, count: n)
            commit(p + n)
        } else {
            s.withUTF8Buffer { src in
                guard let from = src.baseAddress else { return }
                p.update(from: from, count: n)
                commit(p + n)
            }
        }
    }

    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { src in
            guard let from = src.baseAddress else { return }
            let p = reserve(src.count)
            p.update(from: from, count: src.count)
            commit(p + src.count)
        }
    }

    @inline(__always)
    public mutating func append(_ v: UInt64) {
        let p = reserve(Digits.maxDecimal)
        commit(Digits.decimal(v, p, FormatTables.shared))
    }

    @inline(__always)
    public mutating func append(_ v: UInt32) { append(UInt64(v)) }

    /// Writes everything out (retrying short writes). False on a write error
    /// such as EPIPE (the reader went away), kept in `writeErrno`. Empty
    /// afterwards either way.
    @discardableResult
    public mutating func flush() -> Bool {
        let base = storage.base
        var off = 0
        var ok = true
        while off < count {
            let n = write(fd, base + off, count - off)
            if n < 0 {
                if errno == EINTR { continue }
                writeErrno = errno
                ok = false
                break
            }
            off += n
        }
        count = 0
        return ok
    }

    /// Like flush(), for the tools' output: false when the reader went
    /// away (EPIPE: stop quietly, as `head` expects), an error for any
    /// other failure (a full disk, EIO), which must not pass for success.
    public mutating func flushOutput() throws -> Bool {
        if flush() { return true }
        if let e = writeFailure { throw e }
        return false
    }

    /// The last write's failure as an error, nil when none or EPIPE.
    public var writeFailure: UmmuError? {
        writeErrno == 0 || writeErrno == EPIPE ? nil
            : UmmuError(.io, "cannot write the output: \(UmmuError.errnoText(writeErrno))")
    }
}

/// Integers to ASCII straight into an `OutputBuffer` reservation: the length
/// first, then two digits per step from the end.
enum Digits {
    /// UInt64.max has 20 digits.
    static let maxDecimal = 20

    /// Decimal digits of v (1 for 0).
    @inline(__always)
    static func decimalCount(_ v: UInt64, _ t: FormatTables) -> Int {
        // floor(log10) from the bit width (1233/4096 ~ log10(2)), then one compare.
        let guess = ((64 - (v | 1).leadingZeroBitCount) &* 1233) >> 12
        return guess &+ ((v | 1) >= t.powersOf10[guess] ? 1 : 0)
    }

    /// Writes `count` digits of v (its last ones) ending at `end`.
    @inline(__always)
    static func digits(_ v: UInt64, count: Int, endingAt end: UnsafeMutablePointer<UInt8>, _ t: FormatTables) {
        var q = end
        var x = v
        var left = count
        while left >= 2 {
            let (hi, lo) = x.quotientAndRemainder(dividingBy: 100)
            q -= 2
            UnsafeMutableRawPointer(q).storeBytes(of: t.pairs[Int(lo)], as: UInt16.self)
            x = hi
            left &-= 2
        }
        if left == 1 { (q - 1).pointee = 48 &+ UInt8(truncatingIfNeeded: x % 10) }
    }

    /// Writes v in decimal at p; returns the end.
    @inline(__always)
    static func decimal(_ v: UInt64, _ p: UnsafeMutablePointer<UInt8>,
                        _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        if v < 10 {
            p.pointee = 48 &+ UInt8(truncatingIfNeeded: v)
            return p + 1
        }
        let end = p + decimalCount(v, t)
        digits(v, count: end - p, endingAt: end, t)
        return end
    }

    /// v in decimal right-aligned in `width` columns (width <= 8), or
    /// wider when it has more digits: Fmt.pad(String(v), width).
    @inline(__always)
    static func padded(_ v: UInt64, width: Int, _ p: UnsafeMutablePointer<UInt8>,
                       _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        UnsafeMutableRawPointer(p).storeBytes(of: 0x2020_2020_2020_2020 as UInt64, as: UInt64.self)
        let n = decimalCount(v, t)
        let end = p + Swift.max(width, n)
        digits(v, count: n, endingAt: end, t)
        return end
    }

    /// "0x" and lowercase hex digits: "0x" + String(v, radix: 16).
    @inline(__always)
    static func hex(_ v: UInt64, _ p: UnsafeMutablePointer<UInt8>, _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        UnsafeMutableRawPointer(p).storeBytes(of: 0x7830 as UInt16, as: UInt16.self)  // "0x"
        let n = Swift.max(1, (64 - v.leadingZeroBitCount + 3) >> 2)
        let end = p + 2 + n
        var q = end
        var x = v
        for _ in 0..<n {
            q -= 1
            q.pointee = t.hexDigits[Int(x & 15)]
            x >>= 4
        }
        return end
    }

    /// Fmt.fixed(x, 6) for 0 <= x, x * 1e6 < 9e18 (the same rounding).
    @inline(__always)
    static func fixed6(_ x: Double, _ p: UnsafeMutablePointer<UInt8>, _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        let n = UInt64((x * 1e6).rounded())
        let (whole, frac) = n.quotientAndRemainder(dividingBy: 1_000_000)
        var q = decimal(whole, p, t)
        q.pointee = 46  // "."
        digits(frac, count: 6, endingAt: q + 7, t)
        q += 7
        return q
    }

    /// Fmt.compact(x) for 0 <= x < 9e18: three decimals below 1000 with the
    /// trailing zeros (and a bare point) dropped, none from 1000 on.
    @inline(__always)
    static func compact(_ x: Double, _ p: UnsafeMutablePointer<UInt8>, _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        if x >= 1000 { return decimal(UInt64(x.rounded()), p, t) }
        let n = UInt64((x * 1000).rounded())
        let (whole, frac) = n.quotientAndRemainder(dividingBy: 1000)
        var q = decimal(whole, p, t)
        if frac == 0 { return q }
        q.pointee = 46  // "."
        let shown = frac % 100 == 0 ? 1 : (frac % 10 == 0 ? 2 : 3)
        digits(frac, count: 3, endingAt: q + 4, t)
        q += 1 + shown
        return q
    }
}

/// A constant piece of a line: `length` bytes at `start`, stored in whole
/// 16-byte blocks (zero-padded) so it is copied block by block.
struct Fragment {
    var start: UnsafeRawPointer
    var length: Int

    /// Copies the fragment to p (writing up to 15 bytes past its end, inside
    /// the reservation; later writes overwrite them) and returns its end.
    @inline(__always)
    func put(_ p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let to = UnsafeMutableRawPointer(p)
        var i = 0
        repeat {
            to.storeBytes(of: start.load(fromByteOffset: i, as: SIMD16<UInt8>.self), toByteOffset: i,
                          as: SIMD16<UInt8>.self)
            i &+= 16
        } while i < length
        return p + length
    }
}

/// Everything constant in an event line, built once per process: per event
/// type the JSON prefix up to `"ts_ns":`, the text name column, and per
/// shown argument its `,"name":` / ` name=` fragments; digit tables. One
/// instance (`shared`), which lives as long as the process.
final class FormatTables: @unchecked Sendable {
    static let shared = FormatTables()

    enum TextValue: UInt8 { case decimal, hex, reason }

    struct Arg {
        var json: Fragment
        var text: Fragment
        /// Byte offset in ummu_event.args.
        var offset: Int
        var textValue: TextValue
    }

    struct Kind {
        var known = false
        var hasLatency = false
        /// `{"version":2,"type":"event","event":"NAME","ts_ns":`
        var jsonPrefix: Fragment
        /// " " + the name padded to 21 columns.
        var textName: Fragment
        var firstArg = 0
        var argCount = 0
    }

    /// "00" ... "99" as little-endian UInt16s.
    let pairs: UnsafeMutablePointer<UInt16>
    /// 10^0 ... 10^19.
    let powersOf10: UnsafeMutablePointer<UInt64>
    let hexDigits: UnsafeMutablePointer<UInt8>
    let kinds: UnsafeMutablePointer<Kind>
    let kindCount: Int
    let args: UnsafeMutablePointer<Arg>
    /// Reason names (Reason.name) for text mode, by min(value, 8).
    let reasons: UnsafeMutablePointer<Fragment>
    let jsonLatency: Fragment
    let textLatency: Fragment
    /// An upper bound of one event line, with the 16-byte overrun of the
    /// last fragment copy.
    let maxLine: Int
    private let pool: UnsafeMutableRawPointer

    private init() {
        pairs = .allocate(capacity: 100)
        for i in 0..<100 { pairs[i] = UInt16(48 + i / 10) | UInt16(48 + i % 10) << 8 }
        powersOf10 = .allocate(capacity: 20)
        var p10: UInt64 = 1
        for i in 0..<20 {
            powersOf10[i] = p10
            p10 = p10 &* 10
        }
        hexDigits = .allocate(capacity: 16)
        for (i, c) in "0123456789abcdef".utf8.enumerated() { hexDigits[i] = c }

        // The fragments' text, then one pool of 16-byte blocks.
        var texts: [[UInt8]] = []
        func add(_ s: String) -> Int {
            texts.append(Array(s.utf8))
            return texts.count - 1
        }
        struct ArgText { var json: Int, text: Int, offset: Int, value: TextValue }
        struct KindText { var kind: EventKind, json: Int, text: Int, args: [ArgText] }
        var kindTexts: [KindText] = []
        for kind in EventKind.allCases {
            var args: [ArgText] = []
            precondition(kind.rawValue <= UMMU_EV_MAX.rawValue && kind.argNames.count <= Int(UMMU_EVENT_ARGS),
                         "EventKind and bpf/ummu_shared.h disagree")
            for (i, n) in kind.argNames.enumerated() where n.utf8CodeUnitCount > 0 {
                let name = n.description
                let notify = kind == .ummunotifyNotify
                let span = notify || kind == .ummunotifyRegister || kind == .ummunotifyUnregister
                let value: TextValue = notify && i == 4 ? .reason : (span && (i == 2 || i == 3) ? .hex : .decimal)
                args.append(ArgText(json: add(",\"\(name)\":"), text: add(" \(name)="), offset: i * 8, value: value))
            }
            kindTexts.append(KindText(
                kind: kind,
                json: add("{\"version\":\(JSONRenderer.version),\"type\":\"event\",\"event\":\"\(kind.name)\",\"ts_ns\":"),
                text: add(" " + Fmt.pad(kind.name, 21, right: true)), args: args))
        }
        let reasonTexts = (0...8).map { add(Reason(rawValue: $0)?.name ?? "") }
        let jsonLatencyText = add(",\"latency_ns\":")
        let textLatencyText = add(" latency=")

        let blocks = texts.map { ($0.count + 15) / 16 * 16 }
        let pool = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(16, blocks.reduce(0, +)), alignment: 16)
        self.pool = pool
        var fragments: [Fragment] = []
        var at = 0
        for (t, size) in zip(texts, blocks) {
            (pool + at).initializeMemory(as: UInt8.self, repeating: 0, count: size)
            t.withUnsafeBytes { (pool + at).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(pool), byteCount: t.count) }
            fragments.append(Fragment(start: UnsafeRawPointer(pool + at), length: t.count))
            at += size
        }

        kindCount = Int(UMMU_EV_MAX.rawValue) + 1
        let empty = Fragment(start: UnsafeRawPointer(pool), length: 0)
        kinds = .allocate(capacity: kindCount)
        kinds.initialize(repeating: Kind(jsonPrefix: empty, textName: empty), count: kindCount)
        let argTotal = kindTexts.reduce(0) { $0 + $1.args.count }
        args = .allocate(capacity: Swift.max(1, argTotal))
        var nextArg = 0
        // Per value: up to 20 digits, a 16-byte overrun, a text value's
        // padding or "0x"; 8 values of the line outside the args.
        var longest = 0
        for k in kindTexts {
            var line = blocks[k.json] + blocks[k.text] + 8 * 40
            kinds[Int(k.kind.rawValue)] = Kind(known: true, hasLatency: k.kind.hasLatency,
                                               jsonPrefix: fragments[k.json], textName: fragments[k.text],
                                               firstArg: nextArg, argCount: k.args.count)
            for a in k.args {
                (args + nextArg).initialize(to: Arg(json: fragments[a.json], text: fragments[a.text],
                                                    offset: a.offset, textValue: a.value))
                nextArg += 1
                line += Swift.max(blocks[a.json], blocks[a.text]) + 40
            }
            longest = Swift.max(longest, line)
        }
        reasons = .allocate(capacity: reasonTexts.count)
        for (i, r) in reasonTexts.enumerated() { reasons[i] = fragments[r] }
        jsonLatency = fragments[jsonLatencyText]
        textLatency = fragments[textLatencyText]
        maxLine = longest + blocks[jsonLatencyText] + blocks[textLatencyText] + 64
    }
}

/// Names and argument names of the event types (see bpf/ummu_shared.h).
public enum EventKind: UInt32, CaseIterable, Sendable {
    case ummunotifyNotify = 1, ummunotifyRead, ummunotifyRegister, ummunotifyUnregister
    case umemFault, umemFaultDone, umemRead, umemWrite
    case mmuNotifierInvalidate, userfaultfdFault, userfaultfdOp

    public var name: String { String(describing: staticName) }

    public var staticName: StaticString {
        switch self {
        case .ummunotifyNotify: return "ummunotify_notify"
        case .ummunotifyRead: return "ummunotify_read"
        case .ummunotifyRegister: return "ummunotify_register"
        case .ummunotifyUnregister: return "ummunotify_unregister"
        case .umemFault: return "umem_fault"
        case .umemFaultDone: return "umem_fault_done"
        case .umemRead: return "umem_read"
        case .umemWrite: return "umem_write"
        case .mmuNotifierInvalidate: return "mmu_notifier_invalidate"
        case .userfaultfdFault: return "userfaultfd_fault"
        case .userfaultfdOp: return "userfaultfd_op"
        }
    }

    /// Tracepoint argument names, in order; "" for an arg not shown
    /// (the tgid of notify/fault, shown as "pid").
    public var argNames: [StaticString] {
        switch self {
        case .ummunotifyNotify: return ["ctx", "", "start", "end", "reason", "hits", "queued", "generation"]
        case .ummunotifyRead: return ["ctx", "events", "still_queued"]
        case .ummunotifyRegister, .ummunotifyUnregister: return ["ctx", "cookie", "start", "end", "held"]
        case .umemFault: return ["area", "pgoff", "must_wait", ""]
        case .umemFaultDone: return ["area", "pgoff", "outcome"]
        case .umemRead: return ["area", "handed", "pending"]
        case .umemWrite: return ["area", "pgoff", "on_demand"]
        case .mmuNotifierInvalidate:
            return ["start", "end", "reason", "flags", "cause", "cause_pid", "subscribers", "ret"]
        case .userfaultfdFault: return ["address", "kind", "outcome", "fault_flags"]
        case .userfaultfdOp: return ["op", "start", "len", "bytes", "ret"]
        }
    }

    public var hasLatency: Bool {
        self == .umemFaultDone || self == .umemWrite || self == .mmuNotifierInvalidate || self == .userfaultfdFault
    }
}

/// Formats ring-buffer events as NDJSON or text lines.
///
/// One reservation of the longest possible line per event, then constant
/// fragments (FormatTables) and digits written through a pointer into it.
public struct EventFormatter {
    public enum Style: Sendable { case json, text }
    public var style: Style
    /// Subtracted from ts_ns in text mode (seconds since start, as bcc does).
    public var baseNs: UInt64
    public var milliseconds: Bool
    private let tables: FormatTables

    public init(style: Style, baseNs: UInt64 = 0, milliseconds: Bool = false) {
        self.style = style
        self.baseNs = baseNs
        self.milliseconds = milliseconds
        tables = FormatTables.shared
    }

    /// Appends one event line (with newline). Unknown types are skipped.
    @inline(__always)
    public func append(_ e: ummu_event, to out: inout OutputBuffer) {
        let t = tables
        let type = Int(e.type)
        guard type < t.kindCount else { return }
        let kind = t.kinds[type]
        guard kind.known else { return }
        let start = out.reserve(t.maxLine)
        withUnsafeBytes(of: e.args) { raw in
            guard let args = raw.baseAddress else { return }
            switch style {
            case .json: out.commit(json(e, kind, args, start, t))
            case .text: out.commit(text(e, kind, args, start, t))
            }
        }
    }

    @inline(__always)
    private func json(_ e: ummu_event, _ kind: FormatTables.Kind, _ args: UnsafeRawPointer,
                      _ start: UnsafeMutablePointer<UInt8>, _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        var p = kind.jsonPrefix.put(start)
        p = Digits.decimal(e.ts_ns, p, t)
        // ,"cpu": ,"pid": ,"tid": (7 bytes each, stored as 8).
        UnsafeMutableRawPointer(p).storeBytes(of: 0x3a22_7570_6322_2c as UInt64, as: UInt64.self)
        p = Digits.decimal(UInt64(e.cpu), p + 7, t)
        UnsafeMutableRawPointer(p).storeBytes(of: 0x3a22_6469_7022_2c as UInt64, as: UInt64.self)
        p = Digits.decimal(UInt64(e.tgid), p + 7, t)
        UnsafeMutableRawPointer(p).storeBytes(of: 0x3a22_6469_7422_2c as UInt64, as: UInt64.self)
        p = Digits.decimal(UInt64(e.tid), p + 7, t)
        var a = t.args + kind.firstArg
        let end = a + kind.argCount
        while a < end {
            p = a.pointee.json.put(p)
            p = Digits.decimal(args.loadUnaligned(fromByteOffset: a.pointee.offset, as: UInt64.self), p, t)
            a += 1
        }
        if kind.hasLatency {
            p = t.jsonLatency.put(p)
            p = Digits.decimal(e.latency_ns, p, t)
        }
        UnsafeMutableRawPointer(p).storeBytes(of: 0x0a7d as UInt16, as: UInt16.self)  // "}\n"
        return p + 2
    }

    @inline(__always)
    private func text(_ e: ummu_event, _ kind: FormatTables.Kind, _ args: UnsafeRawPointer,
                      _ start: UnsafeMutablePointer<UInt8>, _ t: FormatTables) -> UnsafeMutablePointer<UInt8> {
        let rel = e.ts_ns >= baseNs ? e.ts_ns - baseNs : 0
        var p = Digits.fixed6(Double(rel) / 1e9, start, t)
        p.pointee = 32
        p = Digits.padded(UInt64(e.cpu), width: 3, p + 1, t)
        p.pointee = 32
        p = Digits.padded(UInt64(e.tgid), width: 7, p + 1, t)
        p.pointee = 32
        p = Digits.padded(UInt64(e.tid), width: 7, p + 1, t)
        p = kind.textName.put(p)
        var a = t.args + kind.firstArg
        let end = a + kind.argCount
        while a < end {
            p = a.pointee.text.put(p)
            let v = args.loadUnaligned(fromByteOffset: a.pointee.offset, as: UInt64.self)
            switch a.pointee.textValue {
            case .decimal: p = Digits.decimal(v, p, t)
            case .hex: p = Digits.hex(v, p, t)
            case .reason: p = t.reasons[Int(Swift.min(v, 8))].put(p)
            }
            a += 1
        }
        if kind.hasLatency {
            p = t.textLatency.put(p)
            p = Digits.compact(Double(e.latency_ns) / (milliseconds ? 1e6 : 1e3), p, t)
            // "ms" / "us"
            UnsafeMutableRawPointer(p).storeBytes(of: milliseconds ? 0x736d : 0x7375 as UInt16, as: UInt16.self)
            p += 2
        }
        p.pointee = 10
        return p + 1
    }

    /// Header line for text mode.
    public static var textHeader: String {
        "TIME(s)           CPU     PID     TID EVENT                 DETAILS"
    }
}

/// The --events output: formats ring-buffer records into a buffer it owns.
/// The ring buffer's callback and the main loop share it by reference, so
/// no pointer to a local outlives its scope.
public final class EventWriter {
    // The state `handle` touches per record goes without the runtime
    // exclusivity checks (a third of the per-record cost): no method here
    // calls out to code that could reach the writer while one of them is
    // being modified.
    @exclusivity(unchecked) public var out: OutputBuffer
    public let formatter: EventFormatter
    /// Records formatted since the last `takeDelivered()`.
    @exclusivity(unchecked) public private(set) var delivered: UInt64 = 0
    @exclusivity(unchecked) public private(set) var bytesWritten: UInt64 = 0
    /// A write failed (EPIPE: the reader went away); nothing more is written.
    @exclusivity(unchecked) public private(set) var broken = false
    private let flushAt: Int

    public init(out: OutputBuffer, formatter: EventFormatter, flushAt: Int = 1 << 16) {
        self.out = out
        self.formatter = formatter
        self.flushAt = flushAt
    }

    /// One ring-buffer record. Returns 0, or a negative errno that stops
    /// the consume and is reported by it.
    @inline(__always)
    public func handle(_ record: UnsafeRawPointer, _ size: Int) -> Int32 {
        if broken { return -EPIPE }
        guard size >= MemoryLayout<ummu_event>.size else { return -EBADMSG }
        formatter.append(record.loadUnaligned(as: ummu_event.self), to: &out)
        delivered &+= 1
        if out.count >= flushAt && !flush() { return -EPIPE }
        return 0
    }

    /// Appends text that is not an event (headers, drop lines).
    public func append(_ s: String) { out.append(s) }

    /// Why the output failed: nil when it did not, or when the reader went
    /// away (EPIPE).
    public var writeFailure: UmmuError? { out.writeFailure }

    /// Writes the buffer out; false (and `broken`) when the write failed.
    @discardableResult
    public func flush() -> Bool {
        if broken { return false }
        let n = out.count
        if !out.flush() {
            broken = true
            return false
        }
        bytesWritten &+= UInt64(n)
        return true
    }

    public func takeDelivered() -> UInt64 {
        defer { delivered = 0 }
        return delivered
    }
}

/// Consumes the "events" ring buffers of the loaded sources.
public final class EventStream: @unchecked Sendable {
    final class Sink {
        let handler: (UnsafeRawPointer, Int) -> Int32
        init(_ h: @escaping (UnsafeRawPointer, Int) -> Int32) { handler = h }
    }

    private var rb: OpaquePointer?
    private let sink: Sink
    private let context: UnsafeMutableRawPointer

    /// `handler` gets each record (struct ummu_event) in the polling thread
    /// and returns 0, or a negative errno to stop consuming: `consume()`
    /// then throws with it.
    public init(objects: [BPFObject], handler: @escaping (UnsafeRawPointer, Int) -> Int32) throws {
        sink = Sink(handler)
        context = Unmanaged.passUnretained(sink).toOpaque()
        let cb: ring_buffer_sample_fn = { ctx, data, size in
            guard let ctx, let data else { return -EINVAL }
            return Unmanaged<Sink>.fromOpaque(ctx).takeUnretainedValue().handler(UnsafeRawPointer(data), size)
        }
        for o in objects {
            let m = try o.map(.events)
            if let r = rb {
                let rc = ring_buffer__add(r, m.fd, cb, context)
                if rc != 0 { throw UmmuError(.bpf, "cannot add ring buffer: \(UmmuError.errnoText(rc))") }
            } else {
                guard let r = ring_buffer__new(m.fd, cb, context, nil) else {
                    throw UmmuError(.bpf, "cannot open ring buffer: \(UmmuError.errnoText(errno))")
                }
                rb = r
            }
        }
        if rb == nil { throw UmmuError(.usage, "no ring buffer to read") }
    }

    /// Convenience: decodes records into ummu_event; a record too short for
    /// one stops the consume with an error.
    public convenience init(objects: [BPFObject], events: @escaping (ummu_event) -> Void) throws {
        try self.init(objects: objects) { ptr, size in
            guard size >= MemoryLayout<ummu_event>.size else { return -EBADMSG }
            events(ptr.loadUnaligned(as: ummu_event.self))
            return 0
        }
    }

    deinit {
        if let rb { ring_buffer__free(rb) }
    }

    /// An fd that is readable when records are waiting (for poll/epoll).
    public var epollFD: Int32 { rb.map { ring_buffer__epoll_fd($0) } ?? -1 }

    /// Consumes what is available without waiting. Returns the records
    /// consumed; throws when a record stopped it (the handler's error).
    @discardableResult
    public func consume() throws -> Int {
        guard let rb else { return 0 }
        let n = ring_buffer__consume(rb)
        if n < 0 { throw EventStream.error(n) }
        return Int(n)
    }

    static func error(_ rc: Int32) -> UmmuError {
        if rc == -EBADMSG {
            return UmmuError(.bpf, "event ring buffer: a record shorter than struct ummu_event"
                + " (bpf/ummu_shared.h and the loaded object disagree)")
        }
        return UmmuError(.io, "event ring buffer: \(UmmuError.errnoText(rc))")
    }
}
