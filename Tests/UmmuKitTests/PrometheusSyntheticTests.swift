// PrometheusSyntheticTests.swift - a deterministic synthetic workload for
// the exporter, and the writer that scripts/test-metrics runs while
// node_exporter and Prometheus scrape the file.
//
// With UMMU_METRICS_DEMO_FILE=PATH set, `exporterWritesSyntheticSeries`
// rewrites PATH every UMMU_METRICS_DEMO_PERIOD_MS (default 500) until
// UMMU_METRICS_DEMO_SECONDS (default 30) pass or the file PATH.stop
// appears. With UMMU_METRICS_DEMO_STUCK_FILE=PATH2 as well, it rewrites
// PATH2 in step from a second exporter fed the "stuck host" profile
// (`PrometheusSynthetic.stuckInterval`), which scripts/test-metrics serves
// as a second instance. Without them, the test does three rounds into a
// temporary directory and checks the result.

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

    /// Subscribers of the synthetic workload: (ops address, owner, name,
    /// symbol, share of the owner's invalidations in tenths).
    static let subscribers: [(ops: UInt64, owner: UInt32, name: String, symbol: String, tenths: UInt64)] = [
        (0xffff_ffff_c0a0_1000, 4101, "kvm", "kvm_mmu_notifier_ops", 10),
        (0xffff_ffff_c0b0_2000, 4103, "ummunotify", "ummunotify_mn_ops", 10),
        (0xffff_ffff_c0b0_2000, 4105, "ummunotify", "ummunotify_mn_ops", 10),
        (0xffff_ffff_c0c0_3000, 4105, "amdgpu", "amdgpu_hmm_hsa_ops", 5),
    ]

    /// Round r (1, 2, ...): every round adds the same workload, with the
    /// stall latency's tail above the 10 ms alert threshold, a few dropped
    /// ring-buffer events and an un_procs overflow, so every dashboard panel
    /// and every alert expression has data. The stock sources: MMU-notifier
    /// start-side callbacks with a tail above the 1 ms alert threshold (the
    /// end side stays fast), userfaultfd stalls with a tail above 10 ms for
    /// kind="missing" only, and faults always waiting while the handler
    /// resolves some every round (the stuck-handler alert must stay silent).
    static func interval(round r: Int) -> Interval {
        var un = UmmunotifyTotals()
        var um = UmemTotals()
        var mn = MMUNotifierTotals()
        var uf = UserfaultfdTotals()
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
            // Of the totals' latencies below, the busiest process has 40
            // stalls and 30 start-side callbacks of its own each round.
            if p.pid == 4105 { pm.stallLatency = hist([(50_000, 40)]) }
            for j in 0..<Reason.count {
                un.invalidations[j] += pu.invalidations[j]
                un.invalidatedBytes[j] += pu.invalidatedBytes[j]
            }
            un.registrationsHeld += pu.registrationsHeld
            um.faults += pm.faults
            um.faultsWaited += pm.faultsWaited
            // MMU-notifier core: unmap, clear, protection_vma, migrate; by
            // cause self 6k, other process 2k, kernel thread 2k.
            var pn = ProcessMMUNotifier()
            pn.invalidations = [6 * k, k, 2 * k, 0, 0, 0, k, 0, 0]
            pn.invalidatedBytes = pn.invalidations.map { $0 * 16384 }
            pn.byCause = [6 * k, 2 * k, 2 * k]
            if p.pid == 4105 { pn.startLatency = hist([(2_000, 30)]) }
            // userfaultfd: missing 8k, wp 3k, minor k.
            var pf = ProcessUserfaultfd()
            pf.faults = [8 * k, 3 * k, k]
            for j in 0..<Reason.count {
                mn.invalidations[j] += pn.invalidations[j]
                mn.invalidatedBytes[j] += pn.invalidatedBytes[j]
            }
            for j in 0..<CauseKind.count { mn.byCause[j] += pn.byCause[j] }
            for j in 0..<UffdKind.count { uf.faults[j] += pf.faults[j] }
            rows[p.pid] = ProcessRow(pid: p.pid, comm: p.comm, ummunotify: pu, umem: pm,
                                     mmuNotifier: pn, userfaultfd: pf)
        }
        var subs: [SubscriberKey: SubscriberRow] = [:]
        for s in subscribers {
            var row = SubscriberRow()
            row.name = s.name
            row.symbol = s.symbol
            let owner = rows[s.owner]!.mmuNotifier!
            row.invalidations = owner.invalidations.map { $0 * s.tenths / 10 }
            row.invalidatedBytes = owner.invalidatedBytes.map { $0 * s.tenths / 10 }
            subs[SubscriberKey(ops: s.ops, owner: s.owner, interval: false)] = row
        }
        // Invalidations of mms whose owner the mn_procs map could not hold:
        // in the totals (so in pid="other"), caused by kswapd.
        mn.invalidations[0] += 2
        mn.invalidatedBytes[0] += 2 * 4096
        mn.byCause[CauseKind.kernelThread.rawValue] += 2
        // Start side: 98 callbacks of 2 us, 2 of 5 ms (p99 ~ 6.3 ms); end side: 1 us.
        mn.startLatency = hist([(2_000, 98), (5_000_000, 2)])
        mn.endLatency = hist([(1_000, 100)])
        mn.failed = 1
        mn.releases = 2
        mn.young = [5, 3, 1]
        // Stalls: missing 98 x 40 us + 2 x 30 ms (p99 ~ 25 ms); wp 5 us; minor 10 us.
        uf.stall = [hist([(40_000, 98), (30_000_000, 2)]), hist([(5_000, 100)]), hist([(10_000, 100)])]
        uf.outcomes = [uf.totalFaults - 6, 4, 0, 2]
        // copy, zeropage, continue, writeprotect, move, poison
        uf.ops = [60, 10, 5, 15, 2, 1]
        uf.opBytes = [60 * 4096, 10 * 4096, 5 * 4096, 15 * 8192, 2 * 4096, 4096]
        uf.waiting = UInt64(2 + r % 3)
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
        // Faults waiting while the server serves on demand: the stuck-server
        // alert must stay silent.
        um.waitingFaults = 2
        var snap = Snapshot(monotonicNs: UInt64(r) * 1_000_000_000, wallNs: Int64(r) * 1_000_000_000,
                            ummunotify: un, umem: um, mmuNotifier: mn, userfaultfd: uf,
                            processes: rows, subscribers: subs, droppedEvents: 2,
                            bpf: [.ummunotify: BPFRunStats(runTimeNs: 120_000, runCount: 800),
                                  .umem: BPFRunStats(runTimeNs: 90_000, runCount: 300),
                                  .mmuNotifier: BPFRunStats(runTimeNs: 150_000, runCount: 1000),
                                  .userfaultfd: BPFRunStats(runTimeNs: 60_000, runCount: 400)])
        // Timed callbacks (functions with BTF): kvm's fast, gru's with the
        // 5 ms tail of the start side.
        snap.callbacks = [
            "kvm_mmu_notifier_invalidate_range_start": SubscriberCallback(
                name: "kvm", function: "kvm_mmu_notifier_invalidate_range_start", latency: hist([(1_500, 60)])),
            "gru_invalidate_range_start": SubscriberCallback(
                name: "gru", function: "gru_invalidate_range_start",
                latency: hist([(1_000, 38), (4_900_000, 2)]), failed: 1),
        ]
        // From an empty snapshot: the interval's deltas are the snapshot's values.
        return Interval(from: Snapshot(), to: snap)
    }

    /// The "stuck host" profile, round r: only the stock sources. A KVM
    /// guest's MMU-notifier traffic with fast callbacks (p99 ~ 3 us: the
    /// callback alert must stay silent), and a post-copy destination whose
    /// handler died: 4 faults entered in round 1 and never returned, no
    /// resolving ioctl ever (the stuck-handler alert must fire, the stall
    /// alert stays silent: nothing returned, so no stall was observed).
    static func stuckInterval(round r: Int) -> Interval {
        var mn = MMUNotifierTotals()
        var pn = ProcessMMUNotifier()
        pn.invalidations = [20, 0, 4, 0, 0, 0, 0, 0, 0]
        pn.invalidatedBytes = pn.invalidations.map { $0 * 4096 }
        pn.byCause = [20, 0, 4]
        mn.invalidations = pn.invalidations
        mn.invalidatedBytes = pn.invalidatedBytes
        mn.byCause = pn.byCause
        mn.startLatency = hist([(3_000, 24)])
        mn.endLatency = hist([(1_000, 24)])
        mn.young = [2, 0, 0]
        var kvm = SubscriberRow()
        kvm.name = "kvm"
        kvm.symbol = "kvm_mmu_notifier_ops"
        kvm.invalidations = pn.invalidations
        kvm.invalidatedBytes = pn.invalidatedBytes
        var uf = UserfaultfdTotals()
        var pf = ProcessUserfaultfd()
        if r == 1 { pf.faults = [4, 0, 0] }
        pf.waiting = 4
        uf.faults = pf.faults
        uf.waiting = 4
        // A umem client whose server died: 3 faults entered in round 1 and
        // wait, no page is ever served (the stuck-server alert must fire;
        // the stall alert stays silent, as no wait ended).
        var um = UmemTotals()
        var pm = ProcessUmem()
        if r == 1 { pm.faults = 3; pm.faultsWaited = 3 }
        um.faults = pm.faults
        um.faultsWaited = pm.faultsWaited
        um.waitingFaults = 3
        um.pendingRequests = 3
        let rows: [UInt32: ProcessRow] = [
            5201: ProcessRow(pid: 5201, comm: "qemu-guest", mmuNotifier: pn),
            5202: ProcessRow(pid: 5202, comm: "qemu-dest", userfaultfd: pf),
            5203: ProcessRow(pid: 5203, comm: "lazy-restore", umem: pm),
        ]
        var snap = Snapshot(monotonicNs: UInt64(r) * 1_000_000_000, wallNs: Int64(r) * 1_000_000_000,
                            umem: um, mmuNotifier: mn, userfaultfd: uf, processes: rows,
                            subscribers: [SubscriberKey(ops: 0xffff_ffff_c0a0_1000, owner: 5201, interval: false): kvm],
                            bpf: [.mmuNotifier: BPFRunStats(runTimeNs: 20_000, runCount: 50),
                                  .userfaultfd: BPFRunStats(runTimeNs: 1_000, runCount: 4)])
        snap.callbacks = ["kvm_mmu_notifier_invalidate_range_start": SubscriberCallback(
            name: "kvm", function: "kvm_mmu_notifier_invalidate_range_start", latency: hist([(2_500, 24)]))]
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
        var exporter = try UmmuMetricsExporter(path: path, config: UmmuMetricsConfig(topN: topN, bpfStats: true))
        var stuck = try Self.env("UMMU_METRICS_DEMO_STUCK_FILE").map {
            try UmmuMetricsExporter(path: $0, config: UmmuMetricsConfig(topN: topN, bpfStats: true))
        }
        let periodMs = Int(Self.env("UMMU_METRICS_DEMO_PERIOD_MS") ?? "") ?? 500
        let seconds = Double(Self.env("UMMU_METRICS_DEMO_SECONDS") ?? "") ?? 30
        let rounds = demo == nil ? 3 : Int.max
        let start = UmmuMetricsExporter.wallClock()
        var r = 0
        while r < rounds {
            r += 1
            try exporter.update(PrometheusSynthetic.interval(round: r))
            try stuck?.update(PrometheusSynthetic.stuckInterval(round: r))
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
            #expect(text.contains("ummu_umem_waiting_faults 2\n"))
            // The stock sources: pid 4105 has 3 * 6 * 5 MMU-notifier unmaps;
            // other has 4101, 4102 and the 2 lost rows: 3 * (6 + 12 + 2).
            #expect(text.contains("ummu_mmu_notifier_invalidations_total{reason=\"unmap\",pid=\"4105\",comm=\"rdma-agent\"} 90\n"))
            #expect(text.contains("ummu_mmu_notifier_invalidations_total{reason=\"unmap\",pid=\"other\",comm=\"other\"} 60\n"))
            #expect(text.contains("ummu_mmu_notifier_invalidations_by_cause_total{cause=\"kthread\",pid=\"other\",comm=\"other\"} 24\n"))
            // Subscriber series sum over processes: ummunotify of 4103 and 4105, 3 * (18 + 30).
            #expect(text.contains("ummu_mmu_notifier_subscriber_invalidations_total{subscriber=\"ummunotify\",reason=\"unmap\"} 144\n"))
            // Latencies by process: 4105's own, the rest of the totals in other.
            #expect(text.contains("ummu_mmu_notifier_callback_seconds_count{side=\"start\",pid=\"4105\",comm=\"rdma-agent\"} 90\n"))
            #expect(text.contains("ummu_mmu_notifier_callback_seconds_count{side=\"start\",pid=\"other\",comm=\"other\"} 210\n"))
            #expect(text.contains("ummu_umem_stall_latency_seconds_count{pid=\"4105\",comm=\"rdma-agent\"} 120\n"))
            #expect(text.contains("ummu_umem_stall_latency_seconds_count{pid=\"other\",comm=\"other\"} 180\n"))
            #expect(!text.contains("ummu_umem_stall_latency_seconds_count{pid=\"4103\""))
            #expect(text.contains("ummu_mmu_notifier_subscriber_callback_seconds_count{subscriber=\"gru\"} 120\n"))
            #expect(text.contains("ummu_userfaultfd_faults_total{kind=\"missing\",pid=\"4105\",comm=\"rdma-agent\"} 120\n"))
            #expect(text.contains("ummu_userfaultfd_stall_seconds_bucket{kind=\"missing\",le=\"0.033554431\"} 300\n"))
            #expect(text.contains("ummu_userfaultfd_ops_total{op=\"copy\"} 180\n"))
            #expect(text.contains("ummu_userfaultfd_waiting_faults 2\n"))
        }
        if let stuck {
            let s = try promReadFile(stuck.writer.path)
            #expect(s.contains("ummu_userfaultfd_waiting_faults 4\n"))
            #expect(s.contains("ummu_umem_waiting_faults 3\n"))
            #expect(s.contains("ummu_userfaultfd_ops_total{op=\"copy\"} 0\n"))
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
