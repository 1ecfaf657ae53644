// The --events path: a failing record stops the consume with an error that
// is reported, and the output the callback writes lives in an object, not
// behind a pointer to a local.
import Glibc
import Testing
import UmmuBPF
@testable import UmmuKit

@Suite("Event ring buffer errors", .enabled(if: isRoot, rootReason))
struct EventStreamTests {
    @Test func aRecordTheHandlerRefusesIsAnError() throws {
        let (_, o) = try load(.umem, LoadOptions(events: true, ringBytes: 4096))
        for pg in 0..<3 { try fault(o, area: 7, pgoff: UInt64(pg)) }
        var seen = 0
        let stream = try EventStream(objects: [o]) { (_: UnsafeRawPointer, _: Int) -> Int32 in
            seen += 1
            return seen == 2 ? -EBADMSG : 0
        }
        #expect {
            try stream.consume()
        } throws: { e in
            (e as? UmmuError)?.message.contains("shorter than struct ummu_event") == true
        }
        #expect(seen == 2)
        // The third record is still there for the next consume.
        #expect(try stream.consume() == 1)
    }

    @Test func aWriterWhoseReaderWentAwayStopsTheConsume() throws {
        let (_, o) = try load(.umem, LoadOptions(events: true, ringBytes: 1 << 16))
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        signal(SIGPIPE, SIG_IGN)
        defer { close(fds[1]) }
        // Flush after every record: the first write fails with EPIPE.
        let writer = EventWriter(out: OutputBuffer(fd: fds[1]), formatter: EventFormatter(style: .json), flushAt: 1)
        for pg in 0..<5 { try fault(o, area: 7, pgoff: UInt64(pg)) }
        let stream = try EventStream(objects: [o], handler: writer.handle)
        #expect {
            try stream.consume()
        } throws: { e in
            (e as? UmmuError)?.message == "event ring buffer: Broken pipe"
        }
        #expect(writer.broken)
        #expect(writer.takeDelivered() == 1)
    }

    @Test func aWriterFormatsEveryRecordItIsGiven() throws {
        let (_, o) = try load(.umem, LoadOptions(events: true, ringBytes: 1 << 16))
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        let writer = EventWriter(out: OutputBuffer(fd: devNull), formatter: EventFormatter(style: .json), flushAt: 100)
        for pg in 0..<20 { try fault(o, area: 7, pgoff: UInt64(pg)) }
        let stream = try EventStream(objects: [o], handler: writer.handle)
        #expect(try stream.consume() == 20)
        #expect(writer.flush())
        #expect(writer.takeDelivered() == 20)
        #expect(!writer.broken && writer.bytesWritten > 20 * 100)
    }
}

/// A reader that went away ends the output quietly; any other write
/// failure (a full disk) is an error, not a quiet success.
@Suite("Output write failures")
struct OutputFailureTests {
    @Test func aFullDeviceIsAnError() throws {
        let fd = open("/dev/full", O_WRONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        var out = OutputBuffer(fd: fd)
        out.append("x\n")
        #expect {
            _ = try out.flushOutput()
        } throws: { e in
            (e as? UmmuError)?.message == "cannot write the output: No space left on device"
        }
        let writer = EventWriter(out: OutputBuffer(fd: fd), formatter: EventFormatter(style: .json))
        writer.append("y\n")
        #expect(!writer.flush())
        #expect(writer.writeFailure?.message == "cannot write the output: No space left on device")
    }

    @Test func aReaderThatWentAwayEndsQuietly() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        signal(SIGPIPE, SIG_IGN)
        defer { close(fds[1]) }
        var out = OutputBuffer(fd: fds[1])
        out.append("x\n")
        #expect(try out.flushOutput() == false)
        #expect(out.writeFailure == nil)
    }
}
