// The tools' argument checks, run as the user runs them: the executables
// SwiftPM built beside this test bundle. Extreme values must be usage
// errors (exit 64, one "Error:" line), never a trap in a conversion.
import Foundation
import Testing

struct CLIRun {
    let status: Int32
    let signaled: Bool
    let stderr: String
    /// Empty unless asked for (`stdout: true`).
    var stdout = ""
}

/// Runs a product of this package (built in the same directory as the test
/// bundle) with arguments, under `wrapper` (a command that execs the rest)
/// if given; nil when it is not there. With `stdout`, its standard output
/// too (read before stderr: for tools that write little to stderr).
func runTool(_ name: String, _ args: [String], wrapper: [String] = [], stdout: Bool = false) throws -> CLIRun? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    // The bundle may be a directory (.xctest) holding the test binary.
    if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
    let exe = dir.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: exe.path) else { return nil }
    let p = Process()
    if let w = wrapper.first {
        p.executableURL = URL(fileURLWithPath: w)
        p.arguments = Array(wrapper.dropFirst()) + [exe.path] + args
    } else {
        p.executableURL = exe
        p.arguments = args
    }
    let err = Pipe(), out = Pipe()
    p.standardError = err
    p.standardOutput = stdout ? out : FileHandle.nullDevice
    try p.run()
    // A tool that does not refuse (a regression, on a host where it can
    // trace) would run until Ctrl-C: killed after 30 s, and the test fails.
    let pid = p.processIdentifier
    DispatchQueue.global().asyncAfter(deadline: .now() + 30) { kill(pid, SIGKILL) }
    let outData = stdout ? out.fileHandleForReading.readDataToEndOfFile() : Data()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                  stderr: String(decoding: data, as: UTF8.self), stdout: String(decoding: outData, as: UTF8.self))
}

/// Exit 64 and an "Error:" line, not a signal.
func expectUsageError(_ tool: String, _ args: [String]) throws {
    let r = try #require(try runTool(tool, args), "\(tool) not built beside the tests")
    #expect(!r.signaled, "\(tool) \(args) died of a signal")
    #expect(r.status == 64, "\(tool) \(args): exit \(r.status), stderr: \(r.stderr)")
    #expect(r.stderr.hasPrefix("Error: "), "\(tool) \(args): \(r.stderr)")
}

@Suite struct CLITests {
    static let ummutraceExtremes: [[String]] = [
        ["--max-age", "inf"], ["--max-age", "1e300"], ["--max-age", "nan"], ["--max-age", "0"],
        ["--max-age", "-1"], ["--ring-kib", "5"], ["--ring-kib", "3000"], ["inf"], ["1e300"],
        ["nan"], ["1", "0"], ["-p", "0"], ["--pid", "0"], ["--metrics-top", "100000"],
        ["--bpf-stats"], ["--bpf-stats", "--events", "--json"], ["--bpf-stats", "1"],
    ]

    @Test(arguments: ummutraceExtremes)
    func ummutraceRefusesExtremes(_ args: [String]) throws { try expectUsageError("ummutrace", args) }

    static let ummutopExtremes: [[String]] = [
        ["-d", "inf"], ["-d", "nan"], ["-d", "1e300"], ["-d", "0"], ["-n", "0"],
        ["-w", "99999999999"], ["-w", "5"], ["-p", "0"], ["--synthetic", "-1"],
    ]

    @Test(arguments: ummutopExtremes)
    func ummutopRefusesExtremes(_ args: [String]) throws { try expectUsageError("ummutop", args) }
}

/// The exporter needs only CAP_BPF and CAP_PERFMON; the kernel's BPF
/// statistics (CAP_SYS_ADMIN, and on for every program on the host) are
/// opt-in with --bpf-stats, as in ebpf_exporter.
@Suite(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                "needs root and setpriv (util-linux) to drop to CAP_BPF+CAP_PERFMON"))
struct ExporterCapabilityTests {
    /// Still uid 0 (the checkout may not be readable by others), with every
    /// capability but these two gone from the bounding set.
    static let bpfAndPerfmonOnly = ["/usr/bin/setpriv", "--inh-caps=-all,+bpf,+perfmon",
                                    "--ambient-caps=-all,+bpf,+perfmon", "--bounding-set=-all,+bpf,+perfmon"]

    /// A directory for the metrics file, one per test (they run in parallel).
    func metricsDir(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ummu-cli-\(getpid())-\(name)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func runsWithoutStatistics() throws {
        let dir = try metricsDir("a")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try #require(try runTool("ummutrace", ["--metrics-file", dir + "/a.prom", "1", "1"],
                                         wrapper: Self.bpfAndPerfmonOnly))
        // 4 where nothing can be traced (this host: no drivers, fentry refused).
        #expect(r.status == 0 || r.status == 4, "exit \(r.status): \(r.stderr)")
        #expect(!r.stderr.contains("statistics"), "\(r.stderr)")
    }

    @Test func statisticsRefusedIsOneLine() throws {
        let dir = try metricsDir("b")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try #require(try runTool("ummutrace", ["--metrics-file", dir + "/b.prom", "--bpf-stats", "1", "1"],
                                         wrapper: Self.bpfAndPerfmonOnly))
        #expect(r.status != 0 && !r.signaled)
        #expect(r.stderr == "ummutrace: cannot enable BPF run-time statistics: Operation not permitted"
            + " (BPF_ENABLE_STATS needs CAP_SYS_ADMIN)\n")
    }
}
