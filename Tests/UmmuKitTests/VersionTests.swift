// One version everywhere: both tools' --version, the exporter's
// ummu_build_info, and the top entry of debian/changelog.
import Foundation
import Testing
@testable import UmmuKit

@Suite struct VersionTests {
    @Test(arguments: ["ummutrace", "ummutop"])
    func versionFlagPrintsTheVersion(_ tool: String) throws {
        let r = try #require(try runTool(tool, ["--version"], stdout: true), "\(tool) not built beside the tests")
        #expect(r.status == 0 && !r.signaled, "exit \(r.status): \(r.stderr)")
        #expect(r.stdout == UmmuVersion.string + "\n")
    }

    /// node_exporter's *_build_info convention: a gauge, value 1, the
    /// version as a label; written first, whatever the sources traced.
    @Test func buildInfoIsTheFirstFamilyWithValueOne() throws {
        var st = UmmuMetricsState()
        st.ingest(Interval(from: Snapshot(), to: Snapshot()))
        let text = try st.render(now: 5)
        #expect(text.hasPrefix("""
            # HELP ummu_build_info A metric with a constant '1' value labeled by the version of ummutrace that writes this file.
            # TYPE ummu_build_info gauge
            ummu_build_info{version="\(UmmuVersion.string)"} 1

            """))
    }

    @Test func versionIsSemantic() {
        let parts = UmmuVersion.string.split(separator: ".", omittingEmptySubsequences: false)
        #expect(parts.count == 3 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) },
                "\(UmmuVersion.string)")
    }

    /// The packages' version (debian/changelog's top entry, without an
    /// epoch or a Debian revision) is the tools' version.
    @Test func debianChangelogCarriesTheVersion() throws {
        let file = "\(#filePath)"
        let cut = try #require(file.firstRange(of: "/Tests/UmmuKitTests/"))
        let text = try String(contentsOfFile: String(file[..<cut.lowerBound]) + "/debian/changelog", encoding: .utf8)
        let first = try #require(text.split(separator: "\n").first)
        // "ummu (0.1.0) unstable; urgency=medium"
        let open = try #require(first.firstIndex(of: "(")), close = try #require(first.firstIndex(of: ")"))
        var v = first[first.index(after: open)..<close]
        if let colon = v.firstIndex(of: ":") { v = v[v.index(after: colon)...] }
        if let dash = v.lastIndex(of: "-") { v = v[..<dash] }
        #expect(String(v) == UmmuVersion.string, "debian/changelog: \(first)")
    }
}
