import Glibc

/// Number and time formatting without Foundation (keeps the static binary small).
public enum Fmt {
    /// x with exactly `decimals` digits after the point.
    public static func fixed(_ x: Double, _ decimals: Int) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf") }
        let neg = x < 0
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let v = (abs(x) * scale).rounded()
        if v >= 9.0e18 { return (neg ? "-" : "") + String(Int64(abs(x))) }
        let n = UInt64(v)
        let s = UInt64(scale)
        var out = (neg && n != 0 ? "-" : "") + String(n / s)
        if decimals > 0 {
            var frac = String(n % s)
            while frac.count < decimals { frac = "0" + frac }
            out += "." + frac
        }
        return out
    }

    /// Compact: up to 3 decimals, trailing zeros dropped.
    public static func compact(_ x: Double) -> String {
        var s = fixed(x, x >= 1000 ? 0 : 3)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }

    /// 1536 -> "1.5K" (binary prefixes for bytes, decimal for rates).
    public static func human(_ x: Double, binary: Bool = false) -> String {
        let base = binary ? 1024.0 : 1000.0
        let units = binary ? ["", "Ki", "Mi", "Gi", "Ti", "Pi"] : ["", "K", "M", "G", "T", "P"]
        var v = x
        var i = 0
        while abs(v) >= base && i < units.count - 1 {
            v /= base
            i += 1
        }
        return (i == 0 ? fixed(v, v == v.rounded() ? 0 : 1) : fixed(v, 1)) + units[i]
    }

    /// A control character to a terminal: C0 (ESC starts a sequence),
    /// DEL, and C1 (U+009B is a one-character CSI to some terminals).
    public static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (u.value >= 0x7f && u.value <= 0x9f)
    }

    /// A kernel- or user-chosen name (comm) safe for a terminal: control
    /// characters (escape sequences) become "?". A process can name itself
    /// anything (prctl PR_SET_NAME, or its executable's name).
    public static func printable(_ s: String) -> String {
        if !s.unicodeScalars.contains(where: isControl) { return s }
        return String(String.UnicodeScalarView(s.unicodeScalars.map { isControl($0) ? "?" : $0 }))
    }

    /// Right-pads or left-pads to width.
    public static func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let n = s.count
        if n >= width { return s }
        let fill = String(repeating: " ", count: width - n)
        return right ? s + fill : fill + s
    }

    /// "2026-11-21T14:22:01.123Z" from nanoseconds since the epoch.
    public static func rfc3339(_ wallNs: Int64) -> String {
        var t = time_t(wallNs / 1_000_000_000)
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int((wallNs % 1_000_000_000) / 1_000_000)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let msStr = ms < 10 ? "00\(ms)" : (ms < 100 ? "0\(ms)" : "\(ms)")
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T"
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(msStr)Z"
    }

    /// Local "HH:MM:SS" (the -T column, as bcc tools print it).
    public static func clock(_ wallNs: Int64) -> String {
        var t = time_t(wallNs / 1_000_000_000)
        var tm = tm()
        localtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))"
    }

    /// A JSON string literal.
    public static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if isControl(u) {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// A JSON number for a percentile: one decimal, or null.
    public static func jsonNumber(_ x: Double?) -> String {
        guard let x, x.isFinite else { return "null" }
        return compactJSON(x)
    }

    static func compactJSON(_ x: Double) -> String {
        var s = fixed(x, 1)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }
}
