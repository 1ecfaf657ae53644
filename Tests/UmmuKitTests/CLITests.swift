// The tools' argument checks, run as the user runs them: the executables
// SwiftPM built beside this test bundle. Extreme values must be usage
// errors (exit 64, one "Error:" line), never a trap in a conversion.
import Foundation
import Testing

struct CLIRun {
    let status: Int32
    let signaled: Bool
    let stderr: String
}

/// Runs a product of this package (built in the same directory as the test
/// bundle) with arguments; nil when it is not there.
func runTool(_ name: String, _ args: [String]) throws -> CLIRun? {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    // The bundle may be a directory (.xctest) holding the test binary.
    if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
    let exe = dir.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: exe.path) else { return nil }
    let p = Process()
    p.executableURL = exe
    p.arguments = args
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                  stderr: String(decoding: data, as: UTF8.self))
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
        ["nan"], ["1", "0"], ["-p", "0"], ["--metrics-top", "100000"],
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
