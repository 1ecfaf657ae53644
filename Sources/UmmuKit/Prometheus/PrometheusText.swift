// PrometheusText.swift - the Prometheus text exposition format, version 0.0.4.
//
// A family is one `# HELP` line, one `# TYPE` line and its samples, all
// together (the format forbids interleaving families). Histograms are
// written as cumulative `_bucket{le="..."}` series ending in `le="+Inf"`,
// then `_sum` and `_count`, built from the model's log2 Histogram. The
// metric catalogue lives in UmmuMetrics.swift and docs/metrics.md.
//
// Reference: https://prometheus.io/docs/instrumenting/exposition_formats/

/// The `# TYPE` of a family. Only the types ummu writes.
public enum PrometheusMetricType: String, Sendable {
    case counter
    case gauge
    case histogram
}

/// One sample line: `name{labels} value`.
public struct PrometheusSample: Sendable, Equatable {
    /// Appended to the family name: "", "_bucket", "_sum" or "_count".
    public var suffix: String
    /// Label pairs in the order they are written.
    public var labels: [(name: String, value: String)]
    public var value: Double

    public init(suffix: String = "", labels: [(name: String, value: String)] = [], value: Double) {
        self.suffix = suffix
        self.labels = labels
        self.value = value
    }

    public static func == (a: PrometheusSample, b: PrometheusSample) -> Bool {
        a.suffix == b.suffix && a.value.bitPattern == b.value.bitPattern
            && a.labels.map(\.name) == b.labels.map(\.name)
            && a.labels.map(\.value) == b.labels.map(\.value)
    }
}

/// A metric family: name, HELP text, TYPE and samples.
public struct PrometheusFamily: Sendable, Equatable {
    public var name: String
    public var help: String
    public var type: PrometheusMetricType
    public var samples: [PrometheusSample]

    public init(name: String, help: String, type: PrometheusMetricType, samples: [PrometheusSample] = []) {
        self.name = name
        self.help = help
        self.type = type
        self.samples = samples
    }
}

extension Histogram {
    /// Samples of a Prometheus histogram: cumulative `_bucket` series for
    /// slots 0...maxSlot, then `le="+Inf"`, `_sum` and `_count`.
    ///
    /// Values are integers, so slot i (v < 2^i) is exactly v <= 2^i - 1
    /// (Histogram.upperBound): `le` = upperBound / divisor. Divisor 1e9 turns
    /// nanoseconds into seconds; dividing by the exact power of ten keeps
    /// the labels short (1023 ns -> "1.023e-06"). Slots above maxSlot only
    /// reach `+Inf`, so the bucket set is the same whatever the data.
    /// `_count` and `+Inf` are the slots' total (what the buckets add up to).
    public func prometheusSamples(divisor: Double, maxSlot: Int,
                                  labels: [(name: String, value: String)] = []) -> [PrometheusSample] {
        var out: [PrometheusSample] = []
        out.reserveCapacity(maxSlot + 4)
        var cumulative: UInt64 = 0
        let top = min(maxSlot, Histogram.slotCount - 2)
        for i in 0...top {
            cumulative &+= slots[i]
            let le = PrometheusText.formatValue(Double(Histogram.upperBound(i)) / divisor)
            out.append(PrometheusSample(suffix: "_bucket", labels: labels + [("le", le)], value: Double(cumulative)))
        }
        let all = total
        out.append(PrometheusSample(suffix: "_bucket", labels: labels + [("le", "+Inf")], value: Double(all)))
        out.append(PrometheusSample(suffix: "_sum", labels: labels, value: Double(sum) / divisor))
        out.append(PrometheusSample(suffix: "_count", labels: labels, value: Double(all)))
        return out
    }
}

public enum PrometheusTextError: Error, Equatable, CustomStringConvertible {
    case invalidMetricName(String)
    case invalidLabelName(String)
    case duplicateFamily(String)

    public var description: String {
        switch self {
        case .invalidMetricName(let n): return "invalid Prometheus metric name \"\(n)\""
        case .invalidLabelName(let n): return "invalid Prometheus label name \"\(n)\""
        case .duplicateFamily(let n): return "metric family \"\(n)\" written twice"
        }
    }
}

public enum PrometheusText {
    /// Content type of what `encode` produces.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    public static func isValidMetricName(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return false }
        func ok(_ c: UInt8, digits: Bool) -> Bool {
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F || c == 0x3A
                || (digits && c >= 0x30 && c <= 0x39)
        }
        return ok(first, digits: false) && s.utf8.allSatisfy { ok($0, digits: true) }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
    public static func isValidLabelName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !s.hasPrefix("__") else { return false }
        func ok(_ c: UInt8, digits: Bool) -> Bool {
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F
                || (digits && c >= 0x30 && c <= 0x39)
        }
        return ok(first, digits: false) && s.utf8.allSatisfy { ok($0, digits: true) }
    }

    /// HELP text: backslash and newline escaped.
    public static func escapeHelp(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Label value: backslash, double quote and newline escaped. Other
    /// control characters (a process can put anything in its comm) become
    /// U+FFFD so the line stays one readable line.
    public static func escapeLabelValue(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 2)
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default:
                if Fmt.isControl(ch) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        return out
    }

    /// Sample values as Go's ParseFloat reads them: integers without a
    /// fraction (exact up to 2^53), `+Inf`, `-Inf`, `NaN`, and otherwise the
    /// shortest decimal that round-trips.
    public static func formatValue(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 9.007_199_254_740_992e15 {
            return String(Int64(v))
        }
        return "\(v)"
    }

    /// Text of the families, in the order given, with a trailing newline.
    /// Empty families still get HELP and TYPE (a valid, empty family).
    public static func encode(_ families: [PrometheusFamily]) throws -> String {
        var out = ""
        var seen = Set<String>()
        for f in families {
            guard isValidMetricName(f.name) else { throw PrometheusTextError.invalidMetricName(f.name) }
            guard seen.insert(f.name).inserted else { throw PrometheusTextError.duplicateFamily(f.name) }
            out += "# HELP \(f.name) \(escapeHelp(f.help))\n"
            out += "# TYPE \(f.name) \(f.type.rawValue)\n"
            for s in f.samples {
                out += f.name
                out += s.suffix
                if !s.labels.isEmpty {
                    out += "{"
                    for (i, l) in s.labels.enumerated() {
                        guard isValidLabelName(l.name) else { throw PrometheusTextError.invalidLabelName(l.name) }
                        if i > 0 { out += "," }
                        out += l.name
                        out += "=\""
                        out += escapeLabelValue(l.value)
                        out += "\""
                    }
                    out += "}"
                }
                out += " "
                out += formatValue(s.value)
                out += "\n"
            }
        }
        return out
    }
}
