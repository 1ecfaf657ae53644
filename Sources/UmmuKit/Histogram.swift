import UmmuBPF

/// A log2 histogram with the same slots as the BPF side (bpf/ummu_shared.h):
/// slot 0 holds 0, slot i (1...62) holds [2^(i-1), 2^i), slot 63 holds >= 2^62.
public struct Histogram: Sendable, Equatable {
    public static let slotCount = Int(UMMU_HIST_SLOTS)

    public var slots: [UInt64]
    public var count: UInt64
    public var sum: UInt64

    public init() {
        slots = Array(repeating: 0, count: Histogram.slotCount)
        count = 0
        sum = 0
    }

    public init(slots: [UInt64], count: UInt64, sum: UInt64) {
        var s = Array(slots.prefix(Histogram.slotCount))
        if s.count < Histogram.slotCount {
            s += Array(repeating: 0, count: Histogram.slotCount - s.count)
        }
        self.slots = s
        self.count = count
        self.sum = sum
    }

    /// Slot of a value, exactly as ummu_slot() in bpf/ummu_helpers.bpf.h.
    public static func slot(for value: UInt64) -> Int {
        min(64 - value.leadingZeroBitCount, slotCount - 1)
    }

    /// Smallest value of a slot.
    public static func lowerBound(_ slot: Int) -> UInt64 {
        slot <= 0 ? 0 : UInt64(1) << UInt64(slot - 1)
    }

    /// Largest value of a slot (inclusive).
    public static func upperBound(_ slot: Int) -> UInt64 {
        if slot <= 0 { return 0 }
        if slot >= slotCount - 1 { return UInt64.max }
        return (UInt64(1) << UInt64(slot)) - 1
    }

    public mutating func record(_ value: UInt64, times: UInt64 = 1) {
        slots[Histogram.slot(for: value)] &+= times
        count &+= times
        sum &+= value &* times
    }

    public var isEmpty: Bool { count == 0 && slots.allSatisfy { $0 == 0 } }

    /// Number of samples by the slots (what percentiles use).
    public var total: UInt64 { slots.reduce(0, &+) }

    public var mean: Double? {
        count == 0 ? nil : Double(sum) / Double(count)
    }

    /// Element-wise sum.
    public func adding(_ other: Histogram) -> Histogram {
        Histogram(slots: zip(slots, other.slots).map { $0 &+ $1 },
                  count: count &+ other.count, sum: sum &+ other.sum)
    }

    /// The samples recorded since `earlier`. A slot that went down means the
    /// source was reset (a row re-created): then everything counts as new.
    public func since(_ earlier: Histogram) -> Histogram {
        if count < earlier.count || sum < earlier.sum
            || zip(slots, earlier.slots).contains(where: { $0 < $1 }) {
            return self
        }
        return Histogram(slots: zip(slots, earlier.slots).map { $0 - $1 },
                         count: count - earlier.count, sum: sum - earlier.sum)
    }

    /// Quantile q (0...1), interpolated linearly inside the slot that holds
    /// the q-th sample, as Prometheus' histogram_quantile does. A slot spans
    /// [lower, upper + 1); the result is capped at the slot's largest
    /// integer. nil when empty.
    public func percentile(_ q: Double) -> Double? {
        let n = total
        guard n > 0 else { return nil }
        let qq = min(max(q, 0), 1)
        let rank = qq * Double(n)
        var cumulative: UInt64 = 0
        for (i, c) in slots.enumerated() where c > 0 {
            let before = cumulative
            cumulative += c
            if Double(cumulative) >= rank {
                if i == 0 { return 0 }
                let lo = Double(Histogram.lowerBound(i))
                if i == Histogram.slotCount - 1 { return lo }
                let hi = Double(Histogram.upperBound(i))
                let within = (rank - Double(before)) / Double(c)
                // Values are integers: never beyond the slot's largest one.
                return min(lo + (hi + 1 - lo) * max(0, min(1, within)), hi)
            }
        }
        return nil
    }

    /// Non-empty slots with their bounds, lowest first.
    public var buckets: [(slot: Int, min: UInt64, max: UInt64, count: UInt64)] {
        slots.enumerated().compactMap { i, c in
            c == 0 ? nil : (i, Histogram.lowerBound(i), Histogram.upperBound(i), c)
        }
    }
}

extension Histogram {
    /// From the C layout.
    init(_ h: ummu_hist) {
        self.init(slots: cArray(h.slots, count: Histogram.slotCount), count: h.count, sum: h.sum)
    }
}

/// The UInt64 elements of a C array imported as a tuple.
func cArray<T>(_ tuple: T, count: Int) -> [UInt64] {
    withUnsafeBytes(of: tuple) { raw in
        let n = min(count, raw.count / 8)
        return (0..<n).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) }
    }
}

/// A NUL-terminated C char array imported as a tuple.
func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
