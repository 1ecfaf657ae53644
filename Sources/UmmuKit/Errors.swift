import Glibc

/// A failure the tools report as one line and a non-zero exit status.
public struct UmmuError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        case privileges, driverAbsent, noBPF, bpf, usage, io
    }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Exit status by kind, so scripts can tell them apart.
    public var exitCode: Int32 {
        switch kind {
        case .usage: return 2
        case .privileges: return 3
        case .driverAbsent: return 4
        case .noBPF: return 5
        case .bpf, .io: return 1
        }
    }

    static func errnoText(_ err: Int32) -> String {
        let e = err < 0 ? -err : err
        guard let s = strerror(e) else { return "errno \(e)" }
        return String(cString: s)
    }
}
