import Glibc
import UmmuBPF

/// Blocks the given signals and delivers them through a signalfd, so a main
/// loop waits on signals and ring buffers with one poll(2).
public final class SignalWatcher: @unchecked Sendable {
    public let fd: Int32
    /// The last signal received (0: none).
    public private(set) var lastSignal: Int32 = 0

    public init(_ signals: [Int32]) throws {
        let rc = signals.withUnsafeBufferPointer { ummu_signalfd($0.baseAddress, Int32($0.count)) }
        if rc < 0 { throw UmmuError(.io, "cannot watch signals: \(UmmuError.errnoText(rc))") }
        fd = rc
    }

    deinit { close(fd) }

    /// Waits until the CLOCK_MONOTONIC deadline (ns). With `ring`, consumes
    /// its records as they arrive and calls `drained` after each batch.
    /// Returns true when a signal arrived; throws when polling or the ring
    /// buffer fails.
    public func wait(untilNs deadline: UInt64, ring: EventStream? = nil, drained: () throws -> Void = {}) throws -> Bool {
        while true {
            let now = monotonicNow()
            if now >= deadline { return false }
            let ms = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if let ring { fds.append(pollfd(fd: ring.epollFD, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), ms)
            if n < 0 {
                if errno == EINTR { continue }
                throw UmmuError(.io, "poll: \(UmmuError.errnoText(errno))")
            }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let s = ummu_signalfd_read(fd)
                if s > 0 {
                    lastSignal = s
                    return true
                }
            }
            if let ring, fds.count > 1, fds[1].revents != 0 {
                try ring.consume()
                try drained()
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of the BPF timestamps).
public func monotonicNs() -> UInt64 { monotonicNow() }
