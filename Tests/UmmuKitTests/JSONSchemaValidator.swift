// A small JSON Schema (2020-12) validator for the subset docs/ummutrace.schema.json
// uses: $ref (local), oneOf, type, const, enum, required, properties,
// additionalProperties, items, minimum, pattern. Self-contained so the tests
// need nothing beyond the toolchain.
import Foundation

struct JSONSchemaValidator {
    let root: [String: Any]

    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw NSError(domain: "schema", code: 1)
        }
        root = obj
    }

    /// Errors for `line` (one JSON document); empty when valid.
    func validate(line: String) -> [String] {
        guard let data = line.data(using: .utf8),
              let v = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            return ["not JSON: \(line.prefix(80))"]
        }
        return validate(v, root, "$")
    }

    func resolve(_ ref: String) -> [String: Any]? {
        guard ref.hasPrefix("#/") else { return nil }
        var cur: Any = root
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let d = cur as? [String: Any], let next = d[String(part)] else { return nil }
            cur = next
        }
        return cur as? [String: Any]
    }

    static func typeName(_ v: Any) -> String {
        if v is NSNull { return "null" }
        if v is String { return "string" }
        if v is [Any] { return "array" }
        if v is [String: Any] { return "object" }
        if let n = v as? NSNumber {
            if v is Bool && ("\(n)" == "true" || "\(n)" == "false") { return "boolean" }
            let d = n.doubleValue
            return d.rounded() == d && !"\(n)".contains(".") ? "integer" : "number"
        }
        if v is Bool { return "boolean" }
        return "unknown"
    }

    func validate(_ v: Any, _ s: [String: Any], _ path: String) -> [String] {
        var errs: [String] = []
        if let ref = s["$ref"] as? String {
            guard let target = resolve(ref) else { return ["\(path): unresolved \(ref)"] }
            errs += validate(v, target, path)
        }
        if let one = s["oneOf"] as? [[String: Any]] {
            let ok = one.filter { validate(v, $0, path).isEmpty }.count
            if ok != 1 { errs.append("\(path): matches \(ok) of oneOf, not exactly 1") }
        }
        let t = JSONSchemaValidator.typeName(v)
        if let want = s["type"] {
            let types = (want as? [String]) ?? [(want as? String) ?? ""]
            let fits = types.contains(t) || (t == "integer" && types.contains("number"))
            if !fits { errs.append("\(path): \(t) is not \(types)") }
        }
        if let c = s["const"], !JSONSchemaValidator.equal(v, c) { errs.append("\(path): not const \(c)") }
        if let e = s["enum"] as? [Any], !e.contains(where: { JSONSchemaValidator.equal(v, $0) }) {
            errs.append("\(path): \(v) not in enum")
        }
        if let min = (s["minimum"] as? NSNumber)?.doubleValue, let n = v as? NSNumber,
           t == "integer" || t == "number", n.doubleValue < min {
            errs.append("\(path): \(n) < minimum \(min)")
        }
        if let p = s["pattern"] as? String, let str = v as? String {
            if str.range(of: p, options: .regularExpression) == nil { errs.append("\(path): \(str) !~ \(p)") }
        }
        if let obj = v as? [String: Any] {
            for r in (s["required"] as? [String]) ?? [] where obj[r] == nil {
                errs.append("\(path): missing \(r)")
            }
            let props = (s["properties"] as? [String: Any]) ?? [:]
            for (k, val) in obj {
                if let ps = props[k] as? [String: Any] {
                    errs += validate(val, ps, "\(path).\(k)")
                } else if let aps = s["additionalProperties"] as? [String: Any] {
                    errs += validate(val, aps, "\(path).\(k)")
                } else if let ap = s["additionalProperties"], (ap as? NSNumber)?.boolValue == false || (ap as? Bool) == false {
                    errs.append("\(path): unexpected key \(k)")
                }
            }
        }
        if let arr = v as? [Any], let items = s["items"] as? [String: Any] {
            for (i, x) in arr.enumerated() { errs += validate(x, items, "\(path)[\(i)]") }
        }
        return errs
    }

    static func equal(_ a: Any, _ b: Any) -> Bool {
        if let x = a as? String, let y = b as? String { return x == y }
        if let x = a as? NSNumber, let y = b as? NSNumber { return x == y }
        return false
    }
}
