import ArgumentParser
import UmmuKit

/// What ummutrace and ummutop share on their command lines: which sources
/// to trace, the process filter, libbpf's messages, and the checks before
/// loading anything.
public struct SourceOptions: ParsableArguments, Sendable {
    @Flag(help: "Source: the ummunotify driver's tracepoints. Source flags combine; without any, every available source is traced.")
    public var ummunotify = false

    @Flag(help: "Source: the umem driver's tracepoints.")
    public var umem = false

    @Flag(help: "Source: the stock kernel's MMU-notifier core (fentry; no module needed).")
    public var mmuNotifier = false

    @Flag(help: "Source: the stock kernel's userfaultfd (fentry; no module needed).")
    public var userfaultfd = false

    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Trace this process (tgid) only (filtered in the kernel).", valueName: "PID"))
    public var pid: UInt32?

    @Flag(help: "Print libbpf and verifier messages.")
    public var verbose = false

    public init() {}

    public func validate() throws {
        if pid == 0 { throw ValidationError("-p/--pid needs a process id > 0") }
    }

    /// The sources asked for, and whether each must work (any flag given);
    /// without flags, every source, each only if available.
    public var picked: (sources: [TraceSource], required: Bool) {
        TraceSource.picked([.ummunotify: ummunotify, .umem: umem, .mmuNotifier: mmuNotifier, .userfaultfd: userfaultfd])
    }

    /// Privileges and BPF support, each a one-line error.
    public func check() throws {
        setLibbpfVerbose(verbose)
        try checkPrivileges()
        try checkBPFSupport()
    }

    /// Loads and attaches the picked sources; one line on stderr per source
    /// that is not available ("umem not loaded ... tracing ...").
    public func tracer(tool: String, verb: String = "tracing", options: LoadOptions) throws -> Tracer {
        var options = options
        options.filterPID = pid ?? 0
        let (sources, required) = picked
        let tracer = try Tracer(sources: sources, required: required, options: options)
        printErrorLines(tracer.unavailableLines(tool: tool, verb: verb))
        return tracer
    }
}

/// Lines on stderr, as they are.
public func printErrorLines(_ lines: [String]) {
    guard !lines.isEmpty else { return }
    var err = OutputBuffer(fd: 2)
    for line in lines { err.append(line + "\n") }
    err.flush()
}

/// An error a tool reports as one line, "tool: message", and an exit status.
public protocol OneLineError: Error {
    var message: String { get }
    var exitCode: Int32 { get }
}

extension UmmuError: OneLineError {}

extension MetricsFileError: OneLineError {
    public var message: String { description }
    public var exitCode: Int32 { 1 }
}

/// Runs a tool's body: a OneLineError it throws becomes its line on stderr
/// and its exit status.
public func reportingErrors(tool: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as OneLineError {
        printErrorLines(["\(tool): \(e.message)"])
        throw ExitCode(e.exitCode)
    }
}
