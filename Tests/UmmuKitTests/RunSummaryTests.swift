// The default mode (no interval) over a long run: maintenance prunes the
// rows of exited processes as the run goes, so the BPF maps stay bounded,
// and the one summary at the end still lists every process exactly.
import Testing
@testable import UmmuKit

@Suite("Default mode over a long run")
struct RunSummaryTests {
    static func umem(_ faults: UInt64, pending: UInt64 = 0) -> ProcessUmem {
        var u = ProcessUmem()
        u.faults = faults
        u.pendingRequests = pending
        return u
    }

    static func snap(_ t: UInt64, _ rows: [UInt32: (UInt64, UInt64)], totalFaults: UInt64) -> Snapshot {
        var totals = UmemTotals()
        totals.faults = totalFaults
        return Snapshot(monotonicNs: t * 1_000_000_000, umem: totals,
                        processes: rows.reduce(into: [:]) { acc, kv in
                            acc[kv.key] = ProcessRow(pid: kv.key, comm: "p\(kv.key)", umem: umem(kv.value.0, pending: kv.value.1))
                        })
    }

    @Test func exitedProcessesStayInTheSummaryWithGaugesZero() {
        // pid 10 had 2 faults before the run; 11 and 12 start during it.
        var run = RunSummary(start: Self.snap(0, [10: (2, 0)], totalFaults: 2))
        run.observe(Self.snap(10, [10: (7, 1), 11: (3, 0)], totalFaults: 10))
        // Maintenance deleted 10's row (it exited, one request pending).
        run.observe(Self.snap(20, [11: (4, 0), 12: (1, 0)], totalFaults: 12))
        let iv = run.finish(at: Self.snap(30, [11: (9, 2), 12: (1, 0)], totalFaults: 17))
        #expect(iv.umem?.faults == 15)
        let rows = iv.processes.map { ($0.pid, $0.umem?.faults ?? 0, $0.umem?.pendingRequests ?? 0) }
        #expect(rows.map(\.0) == [10, 11, 12])
        #expect(rows.map(\.1) == [5, 9, 1])
        #expect(rows.map(\.2) == [0, 2, 0])
        #expect(run.unlisted == 0)
    }

    @Test func keptProcessesAreBoundedAndTheRestCounted() {
        var run = RunSummary(start: Snapshot(), maxKept: 3)
        for round in 0..<5 {
            // Each round: two new processes; the previous round's are gone.
            let a = UInt32(100 + 2 * round), b = a + 1
            run.observe(Self.snap(UInt64(round + 1), [a: (1, 0), b: (1, 0)], totalFaults: UInt64(2 * round + 2)))
        }
        let iv = run.finish(at: Self.snap(9, [:], totalFaults: 10))
        #expect(iv.umem?.faults == 10)
        #expect(iv.processes.count == 3)
        #expect(run.unlisted == 7)
    }

    @Test func aPidTakenAgainListsTheLiveProcess() {
        var run = RunSummary(start: Snapshot())
        run.observe(Self.snap(1, [50: (4, 0)], totalFaults: 4))
        run.observe(Self.snap(2, [:], totalFaults: 4))
        let iv = run.finish(at: Self.snap(3, [50: (1, 0)], totalFaults: 5))
        #expect(iv.processes.map { $0.umem?.faults ?? 0 } == [1])
        #expect(run.unlisted == 1)
    }

    /// Maintenance deletes a cause row when the process that caused it
    /// exits, while its owner (a long-running VM) goes on.
    @Test func causesOfAnExitedCauserStayWithTheirLiveOwner() {
        let key = CauseKey(owner: 100, kind: .otherProcess, causePID: 200, causeComm: "criu", reason: .clear)
        var s1 = Self.snap(1, [100: (0, 0)], totalFaults: 0)
        s1.causes[key] = CauseCounts(invalidations: 7, bytes: 7 * 4096)
        var run = RunSummary(start: Snapshot())
        run.observe(s1)
        run.observe(Self.snap(2, [100: (0, 0)], totalFaults: 0))
        let iv = run.finish(at: Self.snap(3, [100: (0, 0)], totalFaults: 0))
        #expect(iv.causes.map(\.key) == [key])
        #expect(iv.causes.first?.counts.invalidations == 7)
    }

    /// Through the real maps: 200 processes, 20 a round, each gone by the
    /// next round, in a per-process map of 64 rows. Without maintenance
    /// the map would overflow after 64; with it every process is listed.
    @Test(.enabled(if: isRoot, rootReason))
    func realMapsStayBoundedOverManyProcesses() throws {
        let (t, o) = try load(.umem, LoadOptions(mapSizes: [.umProcs: 64]))
        var run = RunSummary(start: try t.snapshot())
        var expected: [UInt32: UInt64] = [:]
        for round in 0..<10 {
            for i in 0..<20 {
                // Pids above the kernel's pid_max: never alive.
                let pid = UInt32(5_000_000 + round * 20 + i)
                let n = UInt64(1 + (round + i) % 3)
                for pg in 0..<n { try fault(o, area: 9, pgoff: pg, wait: false, tgid: pid) }
                expected[pid] = n
            }
            run.observe(try t.snapshot())
            t.maintain(isAlive: { _ in false })
            #expect(try t.snapshot().processes.count <= 40)
        }
        let iv = run.finish(at: try t.snapshot())
        var got: [UInt32: UInt64] = [:]
        for p in iv.processes { got[p.pid] = p.umem?.faults }
        #expect(got == expected)
        #expect(iv.umem?.faults == expected.values.reduce(0, +))
        #expect(iv.umem?.processOverflow == 0)
        #expect(run.unlisted == 0)
    }
}
