// The event formatter (ummutrace --events) writes into a raw buffer with
// precomputed fragments; its output must equal, byte for byte, that of the
// formatter it replaced (docs/ummutrace.schema.json and the consumers depend
// on it). The replaced code is kept below, unchanged, as the oracle.
import Glibc
import Testing
import UmmuBPF
@testable import UmmuKit

// MARK: - The oracle: OutputBuffer and EventFormatter as they were (Events.swift, ec0b749)

/// The Array-backed buffer, without its fd.
struct ReferenceBuffer {
    var bytes: [UInt8] = []
    private var digits = [UInt8](repeating: 0, count: 24)

    mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ v: UInt64) {
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

    mutating func append(_ v: UInt32) { append(UInt64(v)) }
}

struct ReferenceFormatter {
    var style: EventFormatter.Style
    var baseNs: UInt64
    var milliseconds: Bool
    private let kinds: [EventKind?]
    private let argNames: [[StaticString]]

    init(style: EventFormatter.Style, baseNs: UInt64 = 0, milliseconds: Bool = false) {
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

    func append(_ e: ummu_event, to out: inout ReferenceBuffer) {
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
}

// MARK: - Inputs

/// Deterministic inputs (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A value of random magnitude: every digit count turns up.
    mutating func magnitude() -> UInt64 {
        let bits = Int(next() % 65)
        return bits == 0 ? 0 : next() >> (64 - bits)
    }
}

/// Digit-count edges, rounding edges of the text columns, errno returns.
let edgeValues: [UInt64] = {
    var v: [UInt64] = [0, 1, 2, 8, 9, 10, 11, 19, 42, 99, 100, 101, 255, 256, 999, 1000, 1001]
    var p: UInt64 = 1
    for _ in 0..<19 {
        p *= 10
        v += [p - 1, p, p + 1, p / 2 - 1, p / 2, p / 2 + 1]
    }
    v += [UInt64(UInt32.max) - 1, UInt64(UInt32.max), UInt64(UInt32.max) + 1,
          UInt64.max, UInt64.max - 1, UInt64(Int64.max), UInt64(Int64.max) + 1,
          UInt64(bitPattern: -1), UInt64(bitPattern: -11), UInt64(bitPattern: -4095),
          0x7f00_0000_0000, 0x7f00_0000_3000, 0xffff_ffff_ffff_f000, 0x1_0000_0000,
          // latency: x.5 us / ms and the 1000 boundary of Fmt.compact
          499, 500, 501, 1499, 1500, 1501, 999_499, 999_500, 999_999, 999_999_499, 999_999_500,
          999_999_999, 1_000_000_000, 123_456_789, 2_500, 1_000_499, 1_000_500,
          9_007_199_254_740_993]
    for s in 0..<64 { v += [1 << UInt64(s), (1 << UInt64(s)) - 1] }
    return v
}()

func event(type: UInt32, ts: UInt64, cpu: UInt32, tgid: UInt32, tid: UInt32,
           args: [UInt64], latency: UInt64) -> ummu_event {
    var e = ummu_event()
    e.ts_ns = ts
    e.type = type
    e.cpu = cpu
    e.tgid = tgid
    e.tid = tid
    let a = args + [UInt64](repeating: 0, count: max(0, 8 - args.count))
    e.args = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
    e.latency_ns = latency
    return e
}

/// Every kind with every edge value in every field, then mixed fields.
func edgeEvents() -> [ummu_event] {
    var out: [ummu_event] = []
    let vs = edgeValues
    for kind in EventKind.allCases {
        for (j, v) in vs.enumerated() {
            let u = UInt32(truncatingIfNeeded: v)
            out.append(event(type: kind.rawValue, ts: v, cpu: u, tgid: u, tid: u,
                             args: [UInt64](repeating: v, count: 8), latency: v))
            out.append(event(type: kind.rawValue, ts: vs[(j + 7) % vs.count],
                             cpu: UInt32(truncatingIfNeeded: vs[(j + 1) % vs.count]),
                             tgid: UInt32(truncatingIfNeeded: vs[(j + 2) % vs.count]),
                             tid: UInt32(truncatingIfNeeded: vs[(j + 3) % vs.count]),
                             args: (0..<8).map { vs[(j + 5 * $0 + 11) % vs.count] },
                             latency: vs[(j + 13) % vs.count]))
        }
        // Every reason of a notify, and the clamp above it.
        for r in 0..<12 {
            out.append(event(type: kind.rawValue, ts: 5, cpu: 0, tgid: 1, tid: 2,
                             args: [1, 2, 3, 4, UInt64(r), 6, 7, 8], latency: UInt64(r)))
        }
    }
    return out
}

func randomEvents(_ n: Int, seed: UInt64, unknown: Bool = false) -> [ummu_event] {
    var g = SeededGenerator(state: seed)
    return (0..<n).map { _ in
        var type = UInt32(g.next() % UInt64(EventKind.allCases.count)) + 1
        if unknown && g.next() % 8 == 0 { type = [0, 12, 13, 255, 1 << 20, UInt32.max][Int(g.next() % 6)] }
        return event(type: type, ts: g.magnitude(), cpu: UInt32(truncatingIfNeeded: g.magnitude()),
                     tgid: UInt32(truncatingIfNeeded: g.magnitude()), tid: UInt32(truncatingIfNeeded: g.magnitude()),
                     args: (0..<8).map { _ in g.magnitude() }, latency: g.magnitude())
    }
}

/// The formatter configurations: both styles, both units, text bases below,
/// inside and above the timestamps.
let configurations: [(EventFormatter.Style, UInt64, Bool)] = [
    (.json, 0, false), (.json, 123_000_000, true),
    (.text, 0, false), (.text, 0, true), (.text, 123_000_000, false), (.text, 999_999_999_999, true),
    (.text, 1 << 40, false), (.text, UInt64.max, false), (.text, 1, true),
]

func reference(_ events: [ummu_event], _ c: (EventFormatter.Style, UInt64, Bool)) -> [UInt8] {
    let f = ReferenceFormatter(style: c.0, baseNs: c.1, milliseconds: c.2)
    var b = ReferenceBuffer()
    for e in events { f.append(e, to: &b) }
    return b.bytes
}

func formatted(_ events: [ummu_event], _ c: (EventFormatter.Style, UInt64, Bool), capacity: Int = 1 << 16) -> [UInt8] {
    let f = EventFormatter(style: c.0, baseNs: c.1, milliseconds: c.2)
    var b = OutputBuffer(fd: -1, capacity: capacity)
    for e in events { f.append(e, to: &b) }
    return b.bytes
}

/// Compared outside #expect, which would print both arrays whole; a
/// failure names the first line that differs.
func expectSame(_ new: [UInt8], _ old: [UInt8], _ what: @autoclosure () -> String,
                sourceLocation: SourceLocation = #_sourceLocation) {
    let equal = new == old
    #expect(equal, "\(equal ? "" : what() + ": " + firstDifference(new, old))", sourceLocation: sourceLocation)
}

/// The first differing line of two outputs, for a readable failure.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    let la = String(decoding: a, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    let lb = String(decoding: b, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    for i in 0..<min(la.count, lb.count) where la[i] != lb[i] {
        return "line \(i):\n  new: \(la[i])\n  old: \(lb[i])"
    }
    return "\(a.count) bytes (\(la.count) lines) vs \(b.count) bytes (\(lb.count) lines)"
}

// MARK: - Tests

@Suite("EventFormatter output is byte-identical to the previous formatter")
struct EventFormatterTests {
    @Test(arguments: 0..<configurations.count)
    func edgeValuesOfEveryKind(_ c: Int) {
        let events = edgeEvents()
        let new = formatted(events, configurations[c])
        let old = reference(events, configurations[c])
        expectSame(new, old, "\(configurations[c])")
        #expect(!old.isEmpty)
    }

    @Test(arguments: 0..<configurations.count)
    func randomEventsAndUnknownTypes(_ c: Int) {
        let events = randomEvents(20_000, seed: 0x5eed + UInt64(c), unknown: true)
        let new = formatted(events, configurations[c])
        let old = reference(events, configurations[c])
        expectSame(new, old, "\(configurations[c])")
    }

    @Test func everyKindAndStyleOnItsOwn() {
        for kind in EventKind.allCases {
            for c in configurations {
                for v in [0, 9, 10, 99, 100, UInt64(UInt32.max), UInt64.max, UInt64(bitPattern: -11)] {
                    let u = UInt32(truncatingIfNeeded: v)
                    let e = event(type: kind.rawValue, ts: v, cpu: u, tgid: u, tid: u,
                                  args: [UInt64](repeating: v, count: 8), latency: v)
                    let new = formatted([e], c)
                    expectSame(new, reference([e], c), "\(kind) \(c) \(v)")
                    #expect(new.last == UInt8(ascii: "\n") && new.filter { $0 == UInt8(ascii: "\n") }.count == 1)
                }
            }
        }
    }

    /// The reservation made once per event holds the longest line, with
    /// the 16-byte overrun of a fragment copy.
    @Test func theLongestLinesFitTheReservation() {
        for kind in EventKind.allCases {
            for c in configurations {
                let e = event(type: kind.rawValue, ts: .max, cpu: .max, tgid: .max, tid: .max,
                              args: [UInt64](repeating: .max, count: 8), latency: .max)
                let line = formatted([e], (c.0, 0, c.2))
                #expect(line.count + 16 <= FormatTables.shared.maxLine, "\(kind) \(c.0): \(line.count)")
            }
        }
    }

    @Test func unknownTypesWriteNothing() {
        for t: UInt32 in [0, UInt32(UMMU_EV_MAX.rawValue) + 1, 12, 4096, UInt32.max] {
            let e = event(type: t, ts: 1, cpu: 1, tgid: 1, tid: 1, args: [], latency: 1)
            for c in configurations { #expect(formatted([e], c).isEmpty) }
        }
    }

    @Test func textTimestampsBeforeTheBaseAreZero() {
        let f = EventFormatter(style: .text, baseNs: 5_000_000_000)
        var b = OutputBuffer(fd: -1)
        f.append(event(type: EventKind.umemRead.rawValue, ts: 4_999_999_999, cpu: 1, tgid: 2, tid: 3,
                       args: [7, 1, 0], latency: 0), to: &b)
        #expect(String(decoding: b.bytes, as: UTF8.self)
            == "0.000000   1       2       3 umem_read             area=7 handed=1 pending=0\n")
    }

    @Test func styleAndUnitsChangedAfterInit() {
        let events = randomEvents(500, seed: 42)
        var f = EventFormatter(style: .json)
        f.style = .text
        f.baseNs = 1 << 30
        f.milliseconds = true
        var b = OutputBuffer(fd: -1)
        for e in events { f.append(e, to: &b) }
        expectSame(b.bytes, reference(events, (.text, 1 << 30, true)), "text after json")
    }

    /// A 1-byte buffer grows many times without a flush; every append
    /// overload interleaved with the events.
    @Test func growthWithoutFlush() {
        let events = randomEvents(30_000, seed: 7)
        for c in configurations {
            let want = reference(events, c)
            expectSame(formatted(events, c, capacity: 1), want, "\(c) from capacity 1")
            expectSame(formatted(events, c, capacity: 0), want, "\(c) from capacity 0")
        }
        var g = SeededGenerator(state: 99)
        var b = OutputBuffer(fd: -1, capacity: 3)
        var r = ReferenceBuffer()
        let f = EventFormatter(style: .json)
        let rf = ReferenceFormatter(style: .json)
        for (i, e) in events.enumerated() {
            f.append(e, to: &b)
            rf.append(e, to: &r)
            switch i % 5 {
            case 0: b.append("# a header line, ünïcode ✓\n"); r.append("# a header line, ünïcode ✓\n")
            case 1: b.append(StaticString("{}\n")); r.append(StaticString("{}\n"))
            case 2: let v = g.magnitude(); b.append(v); r.append(v)
            case 3: let v = UInt32(truncatingIfNeeded: g.magnitude()); b.append(v); r.append(v)
            default: let s = String(repeating: "x", count: Int(g.next() % 3000)); b.append(s); r.append(s)
            }
        }
        #expect(b.count == r.bytes.count)
        expectSame(b.bytes, r.bytes, "events and appends")
    }

    @Test func integerAppendsMatch() {
        var b = OutputBuffer(fd: -1, capacity: 0)
        var r = ReferenceBuffer()
        for v in edgeValues {
            b.append(v); r.append(v)
            b.append(UInt32(truncatingIfNeeded: v)); r.append(UInt32(truncatingIfNeeded: v))
            b.append(StaticString(",")); r.append(StaticString(","))
        }
        b.append(""); r.append("")
        expectSame(b.bytes, r.bytes, "integers")
    }

    /// Through EventWriter into a file: flushes at every threshold (each
    /// record, inside and across lines, the default) give the same bytes.
    @Test(arguments: [1, 2, 7, 100, 4096, 1 << 16])
    func flushBoundaries(_ flushAt: Int) throws {
        let events = randomEvents(5_000, seed: UInt64(flushAt), unknown: true)
        for c in [configurations[0], configurations[4]] {
            var path = Array("/tmp/ummu-fmt-XXXXXX".utf8CString)
            let fd = mkstemp(&path)
            try #require(fd >= 0)
            unlink(path)
            defer { close(fd) }
            let writer = EventWriter(out: OutputBuffer(fd: fd, capacity: 16),
                                     formatter: EventFormatter(style: c.0, baseNs: c.1, milliseconds: c.2),
                                     flushAt: flushAt)
            if c.0 == .text { writer.append(EventFormatter.textHeader + "\n") }
            var rec = [UInt8](repeating: 0, count: MemoryLayout<ummu_event>.size + 3)
            for e in events {
                // Records as the ring buffer hands them: at any alignment.
                rec.withUnsafeMutableBytes { raw in
                    raw.storeBytes(of: e, toByteOffset: 3, as: ummu_event.self)
                    guard let base = raw.baseAddress else { return }
                    #expect(writer.handle(UnsafeRawPointer(base + 3), MemoryLayout<ummu_event>.size) == 0)
                }
            }
            #expect(writer.flush())
            #expect(writer.out.count == 0 && writer.out.bytes.isEmpty)
            let size = Int(lseek(fd, 0, SEEK_END))
            var got = [UInt8](repeating: 0, count: size)
            let n = got.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
            #expect(n == size)
            var want = c.0 == .text ? Array((EventFormatter.textHeader + "\n").utf8) : []
            want += reference(events, c)
            expectSame(got, want, "\(c) flushAt \(flushAt)")
            #expect(writer.bytesWritten == UInt64(want.count))
            #expect(writer.takeDelivered() == UInt64(events.count))
        }
    }

    @Test func copiesAreIndependent() {
        var a = OutputBuffer(fd: -1, capacity: 4)
        a.append("abc")
        var b = a
        b.append("def")
        a.append(UInt64(12345))
        let c = a
        a.append(StaticString("!"))
        #expect(String(decoding: a.bytes, as: UTF8.self) == "abc12345!")
        #expect(String(decoding: b.bytes, as: UTF8.self) == "abcdef")
        #expect(String(decoding: c.bytes, as: UTF8.self) == "abc12345")
        b.bytes = Array("xyz".utf8)
        b.append(UInt32(7))
        #expect(String(decoding: b.bytes, as: UTF8.self) == "xyz7" && b.count == 4)
        #expect(String(decoding: a.bytes, as: UTF8.self) == "abc12345!")
    }

    @Test func aFailedFlushEmptiesTheBuffer() {
        var b = OutputBuffer(fd: -1)
        b.append("lost")
        let failed = !b.flush()
        #expect(failed)
        #expect(b.bytes.isEmpty && b.count == 0)
        var empty = OutputBuffer(fd: -1)
        let flushed = empty.flush()  // nothing to write
        #expect(flushed)
    }

    @Test func aTruncatedRecordIsRefused() {
        let writer = EventWriter(out: OutputBuffer(fd: -1), formatter: EventFormatter(style: .json))
        var e = event(type: 1, ts: 1, cpu: 1, tgid: 1, tid: 1, args: [], latency: 0)
        let rc = withUnsafeBytes(of: &e) { raw in
            raw.baseAddress.map { writer.handle($0, MemoryLayout<ummu_event>.size - 1) } ?? 0
        }
        #expect(rc == -EBADMSG && writer.out.count == 0)
    }
}
