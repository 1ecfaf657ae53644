// The stock-kernel sources on this host. Their fentry/fexit programs cannot
// load here (the kernel refuses fentry), so what is tested here is what
// needs no attachment: the objects' declarations and layouts, the one-line
// refusal, symbol naming and the model. Their counts are tested in guests
// by scripts/test-stock, attached to the real kernel functions.
import Glibc
import Testing
import UmmuBPF
@testable import UmmuKit

@Suite("stock-kernel sources")
struct StockTests {
    @Test func objectsTraceExactlyTheDocumentedKernelFunctions() throws {
        let mn = try BPFObject.declarations(.mmuNotifier)
        #expect(Set(mn.programs.values) == [
            "fentry/__mmu_notifier_invalidate_range_start", "fexit/__mmu_notifier_invalidate_range_start",
            "fentry/__mmu_notifier_invalidate_range_end", "fexit/__mmu_notifier_invalidate_range_end",
            "fentry/__mmu_notifier_release", "fentry/__mmu_notifier_clear_flush_young",
            "fentry/__mmu_notifier_clear_young", "fentry/__mmu_notifier_test_young",
        ])
        let uf = try BPFObject.declarations(.userfaultfd)
        #expect(Set(uf.programs.values) == ["fentry/handle_userfault", "fexit/handle_userfault",
                                            "fexit/userfaultfd_ioctl"])
    }

    @Test func callbackTimerIsRetargetableAndItsLayoutMatches() throws {
        let cb = try BPFObject.declarations(.mnCallback)
        #expect(Set(cb.programs.values) == ["fentry", "fexit"])
        #expect(cb.maps[map: .cbStats]?.value == MemoryLayout<mn_cb>.size)
    }

    @Test func mapLayoutsMatchTheSharedHeader() throws {
        let mn = try BPFObject.declarations(.mmuNotifier).maps
        #expect(mn[map: .mnTotals]?.value == MemoryLayout<mn_totals>.size)
        #expect(mn[map: .mnProcs]?.value == MemoryLayout<mn_proc>.size)
        #expect(mn[map: .mnHists]?.value == MemoryLayout<ummu_hist>.size)
        #expect(mn[map: .mnCauses]?.key == MemoryLayout<mn_cause_key>.size)
        #expect(MemoryLayout<CauseMapKey>.size == MemoryLayout<mn_cause_key>.size)
        #expect(mn[map: .mnCauses]?.value == MemoryLayout<mn_cause_val>.size)
        #expect(mn[map: .mnSubs]?.key == MemoryLayout<mn_sub_key>.size)
        #expect(MemoryLayout<SubscriberMapKey>.size == MemoryLayout<mn_sub_key>.size)
        #expect(mn[map: .mnSubs]?.value == MemoryLayout<mn_sub>.size)
        let uf = try BPFObject.declarations(.userfaultfd).maps
        #expect(uf[map: .ufTotals]?.value == MemoryLayout<uf_totals>.size)
        #expect(uf[map: .ufProcs]?.value == MemoryLayout<uf_proc>.size)
        #expect(uf[map: .ufHists]?.value == MemoryLayout<ummu_hist>.size)
        // The enums the model indexes with match the C ones.
        #expect(Int(UF_NR_OPS.rawValue) == UffdOp.count && Int(UF_NR_KINDS.rawValue) == UffdKind.count)
        #expect(Int(UF_NR_OUTCOMES.rawValue) == UffdOutcome.count && Int(MN_NR_CAUSES.rawValue) == CauseKind.count)
        #expect(Int(MN_NR_YOUNG.rawValue) == YoungKind.count)
    }

    /// Where fentry is refused (this host), each stock source is left out
    /// with one line naming it and the reason, and a failed load must not
    /// crash (it freed the libbpf object twice before).
    @Test(.enabled(if: isRoot, rootReason))
    func aRefusedSourceIsOneLineNamingItAndTheReason() throws {
        do {
            let t = try Tracer(sources: [.mmuNotifier, .userfaultfd], required: false)
            t.detach()  // fentry works on this kernel: nothing to refuse
        } catch let e as UmmuError {
            #expect(e.kind == .driverAbsent)
            #expect(e.message.hasPrefix("nothing to trace: mmu_notifier: "))
            #expect(e.message.contains("; userfaultfd: "))
            #expect(!e.message.contains("\n"))
            if lockdownMode() != nil || access("/sys/kernel/btf/vmlinux", R_OK) == 0 {
                #expect(e.message.contains("fentry refused"))
            }
        }
        // A map size for a map no loaded object has is a usage error (umem
        // loads here, unattached; mn_procs is mmu_notifier's).
        #expect(throws: UmmuError(.usage, "no map named \(BPFMapName.mnProcs.rawValue) in the loaded BPF objects")) {
            _ = try Tracer(sources: [.umem], required: true, options: LoadOptions(mapSizes: [.mnProcs: 4]),
                           attach: false)
        }
    }

    @Test func missingBTFIsTheReasonGiven() {
        #expect(stockKernelUnavailable(btfPath: "/nonexistent/vmlinux")
            == "no BTF: /nonexistent/vmlinux is missing (needs CONFIG_DEBUG_INFO_BTF)")
        #expect(stockKernelUnavailable(btfPath: "/proc/self/status") == nil)
    }

    @Test func subscribersAreNamedFromKallsyms() throws {
        var path = Array("/tmp/ummu-kallsyms-XXXXXX".utf8CString)
        let fd = mkstemp(&path)
        try #require(fd >= 0)
        let name = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { unlink(name) }
        let text = """
            ffffffffc0a1b000 t kvm_mmu_notifier_invalidate_range_start\t[kvm]
            ffffffffc0a1b2c0 t some_alias\t[kvm]
            ffffffffc0a1b2c0 r kvm_mmu_notifier_ops\t[kvm]
            ffffffff82000000 d iommu_mn\n
            """
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let syms = KernelSymbols(path: name)
        let r = syms.resolve([0xffffffffc0a1b2c0, 0xffffffff82000000, 0x1234])
        #expect(r[0xffffffffc0a1b2c0] == .init(name: "kvm_mmu_notifier_ops", module: "kvm"))
        #expect(r[0xffffffffc0a1b2c0]?.subscriberName == "kvm")
        #expect(r[0xffffffff82000000]?.subscriberName == "iommu_mn")
        #expect(r[0x1234] == nil)
    }

    @Test func intervalsCarrySubscriberAndCauseDifferences() {
        let kvm = SubscriberKey(ops: 0xffffffffc0a1b2c0, owner: 100, interval: false)
        let idle = SubscriberKey(ops: 0xffffffffc0a1b2c0, owner: 200, interval: false)
        var row = SubscriberRow()
        row.name = "kvm"
        row.invalidations[Reason.clear.rawValue] = 10
        var a = Snapshot(monotonicNs: 0)
        a.subscribers = [kvm: row, idle: row]
        var b = Snapshot(monotonicNs: 1_000_000_000)
        var row2 = row
        row2.invalidations[Reason.clear.rawValue] = 25
        b.subscribers = [kvm: row2, idle: row]
        let selfCause = CauseKey(owner: 100, kind: .owner, causePID: 100, causeComm: "", reason: .clear)
        let kswapd = CauseKey(owner: 100, kind: .kernelThread, causePID: 40, causeComm: "kswapd0", reason: .clear)
        a.causes = [selfCause: CauseCounts(invalidations: 5, bytes: 4096 * 5)]
        b.causes = [selfCause: CauseCounts(invalidations: 8, bytes: 4096 * 8),
                    kswapd: CauseCounts(invalidations: 7, bytes: 4096 * 7)]
        let i = Interval(from: a, to: b)
        #expect(i.subscribers.map(\.key) == [kvm])
        #expect(i.subscribers.first?.row.invalidations[Reason.clear.rawValue] == 15)
        #expect(i.causes.map(\.key) == [kswapd, selfCause])
        #expect(i.causes.map(\.counts.invalidations) == [7, 3])
    }

    @Test func waitingIsEntriesMinusReturnsNeverNegative() {
        #expect(waitingFaults([5, 1, 0], [3, 1, 0, 0]) == 2)
        #expect(waitingFaults([1, 0, 0], [2, 0, 0, 0]) == 0)
    }
}
