@_exported import struct UmmuBPF.ummu_event
import CLibbpf
import Glibc
import UmmuBPF

/// An output buffer that formats numbers without allocating and writes to an fd.
public struct OutputBuffer {
    public var bytes: [UInt8] = []
    public let fd: Int32
    private var digits = [UInt8](repeating: 0, count: 24)

    public init(fd: Int32 = 1, capacity: Int = 1 << 16) {
        self.fd = fd
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    public mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    public mutating func append(_ v: UInt64) {
        if v < 10 {
            bytes.append(UInt8(48 + v))
            return
        }
        var n = v
        var i = 0
        while n > 0 {
            digits[i] = UInt8(48 + n % 10)
            n /= 10
            i += 1
        }
        while i > 0 {
            i -= 1
            bytes.append(digits[i])
        }
    }

    @inline(__always)
    public mutating func append(_ v: UInt32) { append(UInt64(v)) }

    /// Writes everything out (retrying short writes). False on a write error
    /// such as EPIPE (the reader went away).
    @discardableResult
    public mutating func flush() -> Bool {
        var ok = true
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress.map { $0 + off }, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false
                    return
                }
                off += n
            }
        }
        bytes.removeAll(keepingCapacity: true)
        return ok
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
public struct EventFormatter {
    public enum Style: Sendable { case json, text }
    public var style: Style
    /// Subtracted from ts_ns in text mode (seconds since start, as bcc does).
    public var baseNs: UInt64
    public var milliseconds: Bool
    private let kinds: [EventKind?]
    private let argNames: [[StaticString]]

    public init(style: Style, baseNs: UInt64 = 0, milliseconds: Bool = false) {
        self.style = style
        self.baseNs = baseNs
        self.milliseconds = milliseconds
        var k = [EventKind?](repeating: nil, count: Int(UMMU_EV_MAX.rawValue) + 1)
        var a = [[StaticString]](repeating: [], count: Int(UMMU_EV_MAX.rawValue) + 1)
        for kind in EventKind.allCases {
            k[Int(kind.rawValue)] = kind
            a[Int(kind.rawValue)] = kind.argNames
        }
        kinds = k
        argNames = a
    }

    /// Appends one event line (with newline). Unknown types are skipped.
    @inline(__always)
    public func append(_ e: ummu_event, to out: inout OutputBuffer) {
        let t = Int(e.type)
        guard t < kinds.count, let kind = kinds[t] else { return }
        let names = argNames[t]
        let args = e.args
        switch style {
        case .json:
            out.append("{\"version\":")
            out.append(UInt64(JSONRenderer.version))
            out.append(",\"type\":\"event\",\"event\":\"")
            out.append(kind.staticName)
            out.append("\",\"ts_ns\":")
            out.append(e.ts_ns)
            out.append(",\"cpu\":")
            out.append(e.cpu)
            out.append(",\"pid\":")
            out.append(e.tgid)
            out.append(",\"tid\":")
            out.append(e.tid)
            withUnsafeBytes(of: args) { raw in
                for (i, n) in names.enumerated() where n.utf8CodeUnitCount > 0 {
                    out.append(",\"")
                    out.append(n)
                    out.append("\":")
                    out.append(raw.load(fromByteOffset: i * 8, as: UInt64.self))
                }
            }
            if kind.hasLatency {
                out.append(",\"latency_ns\":")
                out.append(e.latency_ns)
            }
            out.append("}\n")
        case .text:
            let rel = e.ts_ns >= baseNs ? e.ts_ns - baseNs : 0
            out.append(Fmt.fixed(Double(rel) / 1e9, 6))
            out.append(" ")
            out.append(Fmt.pad(String(e.cpu), 3))
            out.append(" ")
            out.append(Fmt.pad(String(e.tgid), 7))
            out.append(" ")
            out.append(Fmt.pad(String(e.tid), 7))
            out.append(" ")
            out.append(Fmt.pad(kind.name, 21, right: true))
            withUnsafeBytes(of: args) { raw in
                for (i, n) in names.enumerated() where n.utf8CodeUnitCount > 0 {
                    let v = raw.load(fromByteOffset: i * 8, as: UInt64.self)
                    out.append(" ")
                    out.append(n)
                    out.append("=")
                    if kind == .ummunotifyNotify && i == 4, let r = Reason(rawValue: Int(min(v, 8))) {
                        out.append(r.name)
                    } else if (kind == .ummunotifyNotify || kind == .ummunotifyRegister
                               || kind == .ummunotifyUnregister) && (i == 2 || i == 3) {
                        out.append("0x" + String(v, radix: 16))
                    } else {
                        out.append(v)
                    }
                }
            }
            if kind.hasLatency {
                out.append(" latency=")
                out.append(Fmt.compact(Double(e.latency_ns) / (milliseconds ? 1e6 : 1e3)))
                out.append(milliseconds ? "ms" : "us")
            }
            out.append("\n")
        }
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
    public var out: OutputBuffer
    public let formatter: EventFormatter
    /// Records formatted since the last `takeDelivered()`.
    public private(set) var delivered: UInt64 = 0
    public private(set) var bytesWritten: UInt64 = 0
    /// A write failed (EPIPE: the reader went away); nothing more is written.
    public private(set) var broken = false
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
        if out.bytes.count >= flushAt && !flush() { return -EPIPE }
        return 0
    }

    /// Appends text that is not an event (headers, drop lines).
    public func append(_ s: String) { out.append(s) }

    /// Writes the buffer out; false (and `broken`) when the write failed.
    @discardableResult
    public func flush() -> Bool {
        if broken { return false }
        let n = out.bytes.count
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
            let m = try o.map("events")
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
