import Glibc

/// Names kernel addresses (a subscriber's ops) from /proc/kallsyms.
///
/// Only the addresses asked for are kept: the file has ~200k lines, so it
/// is scanned once per batch of new addresses, and an address not found
/// (a module loaded later, or kallsyms hidden by kptr_restrict) is retried
/// at most every `retryNs`.
final class KernelSymbols: @unchecked Sendable {
    struct Symbol: Equatable, Sendable {
        var name: String
        /// The module ("kvm") or nil for the kernel image.
        var module: String?
    }

    private let path: String
    private var known: [UInt64: Symbol] = [:]
    private var missing: [UInt64: UInt64] = [:]  // address -> when it was last looked for
    private let retryNs: UInt64 = 10_000_000_000

    init(path: String = "/proc/kallsyms") {
        self.path = path
    }

    /// Resolves every address it can; scans the file only for new ones.
    func resolve(_ addresses: some Sequence<UInt64>) -> [UInt64: Symbol] {
        let now = monotonicNow()
        let wanted = Set(addresses.filter { a in
            known[a] == nil && (missing[a].map { now &- $0 >= retryNs } ?? true)
        })
        if !wanted.isEmpty {
            let found = scan(for: wanted)
            for a in wanted {
                if let s = found[a] {
                    known[a] = s
                    missing[a] = nil
                } else {
                    missing[a] = now
                }
            }
        }
        var out: [UInt64: Symbol] = [:]
        for a in addresses { if let s = known[a] { out[a] = s } }
        return out
    }

    private func scan(for wanted: Set<UInt64>) -> [UInt64: Symbol] {
        guard let text = try? readSmallFile(path) else { return [:] }
        var found: [UInt64: Symbol] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let sp = line.firstIndex(of: " "), let addr = UInt64(line[..<sp], radix: 16),
                  wanted.contains(addr) else { continue }
            // "ffffffffc0a1b2c0 r kvm_mmu_notifier_ops\t[kvm]"
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 3 else { continue }
            var module: String?
            if fields.count >= 4, fields[3].hasPrefix("["), fields[3].hasSuffix("]") {
                module = String(fields[3].dropFirst().dropLast())
            }
            // Prefer a data symbol over an alias at the same address.
            if found[addr] == nil || "rRdD".contains(fields[1]) {
                found[addr] = Symbol(name: String(fields[2]), module: module)
            }
        }
        return found
    }
}

extension KernelSymbols.Symbol {
    /// The subscriber's name as users know it: its module, or for code
    /// built into the kernel the ops symbol itself.
    var subscriberName: String { module ?? name }
}
