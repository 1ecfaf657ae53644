// A process names itself (prctl PR_SET_NAME, or its executable's name), so
// its comm can hold terminal escape sequences. Nothing the tools print may
// pass one through: text, JSON lines (printed to the terminal by default),
// ummutop's batch and screen rows, and the metrics file.
import Testing
@testable import UmmuKit
@testable import UmmuTopUI

@Suite("Hostile comm")
struct HostileCommTests {
    /// Clears the screen, sets the window title, and a C1 CSI (U+009B)
    /// that some terminals take as ESC [.
    static let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{07}\u{9b}31m\u{7f}x"

    static func interval() -> Interval {
        var iv = SchemaTests.allSourcesInterval()
        iv.processes = iv.processes.map { var p = $0; p.comm = hostile; return p }
        iv.causes = iv.causes.map { e in
            var e = e
            if e.key.kind != .owner { e.key.causeComm = hostile }
            return e
        }
        return iv
    }

    /// The first C0, DEL or C1 control character other than newline in
    /// `s`, if any.
    static func control(in s: String) -> String? {
        s.unicodeScalars.first { $0 != "\n" && ($0.value < 0x20 || (0x7f...0x9f).contains($0.value)) }
            .map { "U+" + String($0.value, radix: 16) }
    }

    @Test func textSummary() {
        let iv = Self.interval()
        let text = TextRenderer(milliseconds: false, timestamps: true).render(iv)
        #expect(text.contains("[2J"), "the comm is shown, made safe")
        #expect(Self.control(in: text) == nil)
    }

    @Test func jsonLines() {
        let line = JSONRenderer.interval(Self.interval(), includeBPFStats: true)
        #expect(line.contains("\\u001b[2J"))
        #expect(Self.control(in: line) == nil)
    }

    @Test(arguments: TopViewKind.allCases)
    func ummutopRows(_ view: TopViewKind) {
        var tables = TopViewTables(view: view)
        let iv = Self.interval()
        tables.update(iv)
        let out = TopRender.batch(iv, table: tables.current, status: TopStatus(intervalSeconds: 1), width: 300)
        #expect(tables.current.rowCount > 0)
        #expect(Self.control(in: out) == nil)
    }

    @Test func metricsFile() throws {
        var state = UmmuMetricsState(config: UmmuMetricsConfig(topN: 10))
        state.ingest(Self.interval())
        let text = try state.render(now: 1_795_000_001)
        #expect(text.contains("comm=\""))
        #expect(Self.control(in: text) == nil)
    }
}
