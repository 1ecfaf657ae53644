// PrometheusSyntheticTests.swift - a deterministic synthetic workload for
// the exporter, and the writer that scripts/test-metrics runs while
// node_exporter and Prometheus scrape the file.
//
// With UMMU_METRICS_DEMO_FILE=PATH set, `exporterWritesSyntheticSeries`
// rewrites PATH every UMMU_METRICS_DEMO_PERIOD_MS (default 500) until
// UMMU_METRICS_DEMO_SECONDS (default 30) pass or the file PATH.stop
// appears. Without it, the test does three rounds into a temporary
// directory and checks the result.

import Testing
@testable import UmmuKit

#if canImport(Glibc)
import Glibc
#endif

enum PrometheusSynthetic {
    /// Processes of the synthetic workload: more than the default top N of
    /// the tests (3), so `other` is exercised.
    static let procs: [(pid: UInt32, comm: String)] = [
        (4101, "mpi_rank0"), (4102, "mpi_rank1"), (4103, "umem-client"),
        (4104, "verbs\"bench"), (4105, "rdma-agent"),
    ]

    /// Histogram with `n` observations of each value.
    static func hist(_ pairs: [(value: UInt64, n: UInt64)]) -> Histogram {
        var h = Histogram()
        for (v, n) in pairs { h.record(v, times: n) }
        return h
    }

    /// Round r (1, 2, ...): every round adds the same workload, with the
    /// stall latency's tail above the 10 ms alert threshold, a few dropped
    /// ring-buffer events and an un_procs overflow, so every dashboard panel
    /// and every alert expression has data.
    static func interval(round r: Int) -> Interval {
        var un = UmmunotifyTotals()
        var um = UmemTotals()
        var rows: [UInt32: ProcessRow] = [:]
        for (i, p) in procs.enumerated() {
            let k = UInt64(i + 1)
            var pu = ProcessUmmunotify()
            // unmap, clear, protection_vma, ..., migrate; scaled by process
            pu.invalidations = [10 * k, 2 * k, k, 0, 0, 0, k, 0, 0]
            pu.invalidatedBytes = pu.invalidations.map { $0 * 8192 }
            pu.registrationsHeld = 16 * k
            var pm = ProcessUmem()
            pm.faults = 20 * k
            pm.faultsWaited = 5 * k
            for j in 0..<Reason.count {
                un.invalidations[j] += pu.invalidations[j]
                un.invalidatedBytes[j] += pu.invalidatedBytes[j]
            }
            un.registrationsHeld += pu.registrationsHeld
            um.faults += pm.faults
            um.faultsWaited += pm.faultsWaited
            rows[p.pid] = ProcessRow(pid: p.pid, comm: p.comm, ummunotify: pu, umem: pm)
        }
        // Rows lost to a full un_procs map still count in the totals.
        un.invalidations[0] += 3
        un.invalidatedBytes[0] += 3 * 4096
        un.processOverflow = 1
        un.registrationsHeld += 5
        un.reportsQueued = 40
        un.reportsMerged = 12
        un.readBatch = hist([(1, 10), (3, 6), (17, 2)])
        un.spanBytes = hist([(4096, 30), (2 << 20, 5)])
        um.pagesOnDemand = 250
        um.pagesPushed = 1000
        // Service: 20-200 us; stall: mostly 50 us, 2% at 50 ms (p99 > 10 ms).
        um.serviceLatency = hist([(20_000, 200), (200_000, 50)])
        um.stallLatency = hist([(50_000, 98), (50_000_000, 2)])
        um.readBatch = hist([(1, 100), (8, 20)])
        um.pendingRequests = UInt64(r % 4)
        let snap = Snapshot(monotonicNs: UInt64(r) * 1_000_000_000, wallNs: Int64(r) * 1_000_000_000,
                            ummunotify: un, umem: um, processes: rows, droppedEvents: 2,
                            bpf: [.ummunotify: BPFRunStats(runTimeNs: 120_000, runCount: 800),
                                  .umem: BPFRunStats(runTimeNs: 90_000, runCount: 300)])
        // From an empty snapshot: the interval's deltas are the snapshot's values.
        return Interval(from: Snapshot(), to: snap)
    }
}

@Suite("PrometheusSynthetic")
struct PrometheusSyntheticTests {
    static func env(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    @Test func exporterWritesSyntheticSeries() throws {
        let demo = Self.env("UMMU_METRICS_DEMO_FILE")
        var dir = ""
        let path: String
        if let demo {
            path = demo
        } else {
            var tmpl = Array("/tmp/ummu-prom-synth-XXXXXX".utf8CString)
            let p = tmpl.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            #expect(p != nil)
            dir = String(cString: p!)
            path = dir + "/ummu.prom"
        }
        defer {
            if !dir.isEmpty {
                unlink(path)
                rmdir(dir)
            }
        }
        let topN = Int(Self.env("UMMU_METRICS_DEMO_TOPN") ?? "") ?? 3
        var exporter = try UmmuMetricsExporter(path: path, config: UmmuMetricsConfig(topN: topN))
        let periodMs = Int(Self.env("UMMU_METRICS_DEMO_PERIOD_MS") ?? "") ?? 500
        let seconds = Double(Self.env("UMMU_METRICS_DEMO_SECONDS") ?? "") ?? 30
        let rounds = demo == nil ? 3 : Int.max
        let start = UmmuMetricsExporter.wallClock()
        var r = 0
        while r < rounds {
            r += 1
            try exporter.update(PrometheusSynthetic.interval(round: r))
            if demo == nil { continue }
            if access(path + ".stop", F_OK) == 0 || UmmuMetricsExporter.wallClock() - start > seconds { break }
            usleep(UInt32(periodMs * 1000))
        }
        var st = stat()
        #expect(stat(path, &st) == 0)
        let text = try promReadFile(path)
        // Three rounds; the busiest three (4103..4105) are tracked: pid 4105
        // has 3 * 50 unmap invalidations.
        if demo == nil {
            #expect(text.contains("ummu_ummunotify_invalidations_total{reason=\"unmap\",pid=\"4105\",comm=\"rdma-agent\"} 150\n"))
            // pids 4101, 4102 (not in the top 3) and the 3 lost rows: 3 * (10 + 20 + 3).
            #expect(text.contains("ummu_ummunotify_invalidations_total{reason=\"unmap\",pid=\"other\",comm=\"other\"} 99\n"))
            #expect(text.contains("ummu_events_dropped_total 6\n"))
        }
    }
}

/// Whole file as UTF-8 (no Foundation in these tests).
func promReadFile(_ path: String) throws -> String {
    do {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MetricsFileError.io(path, operation: "open", errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MetricsFileError.io(path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
