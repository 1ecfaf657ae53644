#!/usr/bin/env python3
"""Assert on what Tests/stock/guest.sh printed in a guest with no ummu
driver: ummutrace's stock-kernel sources must report exactly what the KVM
and userfaultfd workloads did (per process, reason, subscriber and cause),
cover what the kernel's own userfaultfd selftests report, and every JSON
object must match the schema.  Usage: check.py GUEST_OUTPUT [SCHEMA]"""
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

try:
    import jsonschema
except ImportError:
    sys.exit("check.py: python3 module jsonschema missing (scripts/setup-host installs it)")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests/lib"))
from verdict import check, ndjson, prometheus_samples, report, sections, summary  # noqa: E402
PAGE = 4096










class Sums:
    """Per-pid, per-subscriber and per-cause sums over a run's intervals."""

    def __init__(self, intervals):
        self.mn = defaultdict(lambda: defaultdict(int))     # pid -> reason/cause/... -> n
        self.uf = defaultdict(lambda: defaultdict(int))     # pid -> key -> n
        self.subs = defaultdict(lambda: defaultdict(int))   # (pid, name) -> reason -> n
        self.causes = defaultdict(int)                       # (pid, cause, comm, reason) -> n
        self.callbacks = defaultdict(lambda: defaultdict(int))  # (name, function) -> calls/failed
        self.total = defaultdict(int)
        self.stall_min = {}                                  # pid -> smallest bucket min
        for iv in intervals:
            for p in iv.get("processes", []):
                m = p.get("mmu_notifier")
                if m:
                    r = self.mn[p["pid"]]
                    for k, v in m["invalidations"].items():
                        r[k] += v
                    for k, v in m["by_cause"].items():
                        r["cause:" + k] += v
                    r["releases"] += m["releases"]
                    r["start_samples"] += m["start_latency_ns"]["count"]
                u = p.get("userfaultfd")
                if u:
                    r = self.uf[p["pid"]]
                    for k, v in u["faults"].items():
                        r[k] += v
                    for k, v in u["outcomes"].items():
                        r["outcome:" + k] += v
                    for k, v in u["ops"].items():
                        r["op:" + k] += v["count"]
                        r["bytes:" + k] += v["bytes"]
                    r["waiting"] = u["waiting"]
                    r["stall_samples"] += u["stall_ns"]["count"]
                    for b in u["stall_ns"]["buckets"]:
                        self.stall_min[p["pid"]] = min(self.stall_min.get(p["pid"], b["min"]), b["min"])
            for s in iv.get("subscribers", []):
                r = self.subs[(s["pid"], s["name"])]
                for k, v in s["invalidations"].items():
                    r[k] += v
                r["releases"] += s["releases"]
            for cb in iv.get("subscriber_callbacks", []):
                r = self.callbacks[(cb["name"], cb["function"])]
                r["calls"] += cb["latency_ns"]["count"]
                r["failed"] += cb["failed"]
                r["nonzero"] += sum(b["count"] for b in cb["latency_ns"]["buckets"] if b["min"] > 0)
            for c in iv.get("causes", []):
                self.causes[(c["pid"], c["cause"], c["cause_comm"], c["reason"])] += c["invalidations"]
            uf = iv.get("userfaultfd")
            if uf:
                for k, v in uf["faults"].items():
                    self.total["uf:" + k] += v
                for k, v in uf["outcomes"].items():
                    self.total["uf_outcome:" + k] += v
                self.total["uf_start_lost"] += uf["start_lost"]
                self.total["uf_overflow"] += uf["overflow"]["processes"]
            mn = iv.get("mmu_notifier")
            if mn:
                self.total["mn_start_lost"] += mn["start_lost"]
                self.total["mn_overflow"] += sum(mn["overflow"].values())


def run_section(secs, validator, name, driver_lines=True):
    body, rc = secs.get(name, ("", -1))
    objs = ndjson(body)
    check(f"{name}: ummutrace exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    bad = [e.message for o in objs for e in validator.iter_errors(o)]
    check(f"{name}: every object matches the schema", objs and not bad, "; ".join(bad[:3]))
    check_stderr(secs, name, 2 if driver_lines else 0)
    return objs


def check_stderr(secs, name, lines=2):
    """No driver is loaded: one line each (none when only stock sources were
    asked for), nothing about the stock sources."""
    body, _ = secs.get(f"{name}.stderr", (None, -1))
    err = [x for x in (body or "").splitlines() if x.strip()]
    check(f"{name}: on stderr exactly {lines} lines (absent drivers), the stock sources attached",
          body is not None and len(err) == lines and
          all(re.match(r"^ummutrace: (ummunotify|umem) not loaded ", x) and
              x.endswith("tracing mmu_notifier, userfaultfd") for x in err), f"{err}")


def check_kvm(secs, validator):
    intervals = run_section(secs, validator, "kvm")
    s = Sums(intervals)
    wl, rc = summary(secs, "kvm_churn")
    check("kvm_churn: the workload ran", rc == 0 and wl, f"rc={rc} {secs.get('kvm_churn', ('', 0))[0][:300]}")
    if wl:
        pid = wl["pid"]
        want = {"clear": wl["dontneed"], "protection_vma": wl["mprotect"], "unmap": wl["munmap"]}
        kvm = s.subs.get((pid, "kvm"))
        check("kvm_churn: KVM is named as the subscriber", kvm is not None,
              f"subscribers of {pid}: {[k for k in s.subs if k[0] == pid]}")
        if kvm:
            for reason, n in want.items():
                check(f"kvm_churn: {n} {reason} invalidations reached KVM", kvm[reason] == n, f"got {kvm[reason]}")
            check("kvm_churn: nothing else reached KVM", kvm["total"] == sum(want.values()), f"total {kvm['total']}")
            check("kvm_churn: KVM's release counted once", kvm["releases"] == 1, f"got {kvm['releases']}")
        row = s.mn.get(pid, {})
        for reason, n in want.items():
            # The exit's own unmap comes after KVM's release: the process
            # has one or more unmaps beyond the churn's.
            ok = row.get(reason, 0) >= n if reason == "unmap" else row.get(reason, 0) == n
            check(f"kvm_churn: the process has {n} {reason} invalidations", ok, f"got {row.get(reason)}")
        check("kvm_churn: all caused by the process itself",
              row.get("cause:self", 0) == row.get("total", -1) and row.get("total", 0) > 0, f"{dict(row)}")
        check("kvm_churn: one start-side callback time per invalidation",
              row.get("total", 0) > 0 and row.get("start_samples") == row.get("total"), f"{row.get('start_samples')} vs {row.get('total')}")
        for reason, n in want.items():
            got = s.causes.get((pid, "self", "", reason), 0)
            check(f"kvm_churn: causes list self/{reason}", got >= n, f"got {got}")
    ext, _ = summary(secs, "kvm_external")
    check("kvm_external: its summary is there", ext)
    if ext:
        pid = ext["pid"]
        sd = s.causes.get((pid, "other", "sh", "soft_dirty"), 0)
        check("kvm_external: 7 clear_refs writes by another process are its invalidations",
              sd == ext["clear_refs_writes"], f"got {sd}; causes {[k for k in s.causes if k[0] == pid]}")
        kvm = s.subs.get((pid, "kvm"), {})
        check("kvm_external: they reached KVM", kvm.get("soft_dirty", 0) == ext["clear_refs_writes"],
              f"got {kvm.get('soft_dirty')}")
        kh = sum(n for (p, cause, comm, _), n in s.causes.items() if p == pid and cause == "kthread" and comm == "khugepaged")
        check("kvm_external: khugepaged collapsed a huge page in the guest", ext["thp_collapsed"] > 0,
              f"thp_collapse_alloc moved by {ext['thp_collapsed']}")
        check("kvm_external: khugepaged's collapses are attributed to it, a kernel thread", kh > 0,
              f"causes {[(k, v) for k, v in s.causes.items() if k[0] == pid]}")
        cb = s.callbacks.get(("kvm", "kvm_mmu_notifier_invalidate_range_start"), {})
        # Timed from before this VM existed: each of its invalidations that
        # reached KVM, plus the probe VMs' after timing began, no more.
        all_kvm = sum(r["total"] for (p, name), r in s.subs.items() if name == "kvm")
        check("kvm_external: KVM's own callback was timed for each invalidation reaching it",
              kvm.get("total", -1) <= cb.get("calls", 0) <= all_kvm and cb.get("calls", 0) >= ext["clear_refs_writes"],
              f"callbacks {dict(cb)}, this VM's KVM invalidations {kvm.get('total')}, all VMs' {all_kvm}; "
              f"timed: {list(s.callbacks)}")
        check("kvm_external: KVM's callback never failed, took time", cb.get("failed") == 0
              and cb.get("nonzero") == cb.get("calls"), f"{dict(cb)}")
        check("kvm_external: no invalidation of it blamed on itself but its own",
              s.mn[pid].get("cause:other", 0) == ext["clear_refs_writes"], f"{dict(s.mn[pid])}")
    check("kvm: no start time lost, no map full",
          s.total["mn_start_lost"] == 0 and s.total["mn_overflow"] == 0, f"{dict(s.total)}")


def check_uffd(secs, validator):
    intervals = run_section(secs, validator, "uffd")
    s = Sums(intervals)
    wl, rc = summary(secs, "uffd_pair")
    check("uffd_pair: the workload ran clean", rc == 0 and wl.get("exact") is True,
          f"rc={rc} {secs.get('uffd_pair', ('', 0))[0][:300]}")
    if not wl:
        return
    row = s.uf.get(wl["pid_client"], {})
    asked = {"missing": 64, "wp": 32, "minor": 32}  # Tests/stock/guest.sh
    for kind, n in asked.items():
        check(f"uffd_pair: {kind} faults = what the server read, at least the {n} touched",
              row.get(kind) == wl["faults"][kind] and wl["faults"][kind] >= n,
              f"got {row.get(kind)} server read {wl['faults'][kind]}")
    faults = sum(wl["faults"].values())
    check("uffd_pair: every fault returned resolved", row.get("outcome:resolved") == faults,
          f"{ {k: v for k, v in row.items() if k.startswith('outcome:')} }")
    check("uffd_pair: none still waiting", row.get("waiting") == 0, f"{row.get('waiting')}")
    check("uffd_pair: one stall sample per fault", row.get("stall_samples") == faults,
          f"{row.get('stall_samples')} vs {faults}")
    delay = wl["delay_ms"] * 1_000_000
    # Log2 buckets: a stall >= delay lies in a bucket starting above
    # delay/2 (the events section checks each stall against the delay).
    check("uffd_pair: no stall in a bucket below the injected delay's",
          s.stall_min.get(wl["pid_client"], 0) >= delay // 2,
          f"smallest bucket starts at {s.stall_min.get(wl['pid_client'])} ns, delay {delay} ns")
    io, dup = wl["ioctls"], wl["duplicates"]
    check("uffd_pair: UFFDIO_COPY count", row.get("op:copy") == io["copy"], f"{row.get('op:copy')} vs {io['copy']}")
    check("uffd_pair: UFFDIO_COPY bytes", row.get("bytes:copy") == (io["copy"] - dup["missing"]) * PAGE,
          f"{row.get('bytes:copy')}")
    wp = io["wp_unprotect"] + io["wp_protect"]
    check("uffd_pair: UFFDIO_WRITEPROTECT count (protect and resolve)", row.get("op:writeprotect") == wp,
          f"{row.get('op:writeprotect')} vs {wp}")
    check("uffd_pair: UFFDIO_WRITEPROTECT bytes: the un-protecting calls only",
          row.get("bytes:writeprotect") == (io["wp_unprotect"] - dup["wp"]) * PAGE,
          f"{row.get('bytes:writeprotect')}")
    check("uffd_pair: UFFDIO_CONTINUE count", row.get("op:continue") == io["continue"],
          f"{row.get('op:continue')} vs {io['continue']}")
    check("uffd_pair: UFFDIO_CONTINUE bytes", row.get("bytes:continue") == (io["continue"] - dup["minor"]) * PAGE,
          f"{row.get('bytes:continue')}")


def check_pid_reuse(secs, validator):
    intervals = run_section(secs, validator, "reuse", driver_lines=False)
    old, orc = summary(secs, "reuse_old")
    new, nrc = summary(secs, "reuse_new")
    check("reuse: both workloads ran clean", orc == 0 and nrc == 0 and old and new, f"rc {orc} {nrc}")
    if not old or not new:
        return
    pid = new["pid_client"]
    check("reuse: the second client took the first one's pid", old["pid_client"] == pid,
          f"{old['pid_client']} then {pid}")
    got, stalls = 0, 0
    for iv in intervals:
        for p in iv.get("processes", []):
            u = p.get("userfaultfd")
            if p["pid"] == pid and u and p["comm"] == "uffdreuse":
                got += u["faults"]["missing"]
                stalls += u["stall_ns"]["count"]
    want = new["faults"]["missing"]
    check(f"reuse: the new process's row has its own {want} faults, under its own name", got == want,
          f"got {got}")
    check("reuse: its stall histogram only its own faults", stalls == want, f"{stalls} samples")
    total = sum(iv.get("userfaultfd", {}).get("faults", {}).get("missing", 0) for iv in intervals)
    both = old["faults"]["missing"] + want
    check(f"reuse: the totals count both ({both})", total == both, f"{total}")


def check_events(secs, validator):
    body, rc = secs.get("events", ("", -1))
    events = ndjson(body)
    check("events: exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    bad = [e.message for o in events for e in validator.iter_errors(o)]
    check("events: every object matches the schema", events and not bad, "; ".join(bad[:3]))
    drops = [o for o in events if o.get("type") == "drops"]
    check("events: none dropped", drops and all(d["dropped_events"] == 0 for d in drops), f"{drops[:2]}")
    kvm, _ = summary(secs, "ev_kvm")
    check("ev_kvm: its summary is there", kvm)
    if kvm:
        n = sum(1 for o in events if o.get("event") == "mmu_notifier_invalidate" and o["pid"] == kvm["pid"]
                and o["reason"] == 1)
        check("events: one mmu_notifier_invalidate (clear) per DONTNEED", n == kvm["dontneed"], f"{n}")
    uf, _ = summary(secs, "ev_uffd")
    check("ev_uffd: its summary is there", uf)
    if uf:
        fl = [o for o in events if o.get("event") == "userfaultfd_fault" and o["pid"] == uf["pid_client"]]
        check("events: one userfaultfd_fault per missing fault", len(fl) == uf["faults"]["missing"], f"{len(fl)}")
        lat = [o.get("latency_ns", 0) for o in fl]
        check("events: each carries its stall >= the delay", lat and min(lat) >= uf["delay_ms"] * 1_000_000,
              f"min {min(lat) if lat else None}")
        ops = [o for o in events if o.get("event") == "userfaultfd_op" and o["pid"] == uf["pid_client"]
               and o["op"] == 0]
        check("events: one userfaultfd_op (copy) per UFFDIO_COPY", len(ops) == uf["ioctls"]["copy"], f"{len(ops)}")


def selftest_counts(body):
    """Sums of the userfault counts the selftests printed (lower bounds)."""
    want = defaultdict(int)
    for line in body.splitlines():
        if not re.match(r"^=== .*: PASS", line):
            continue
        for m in re.finditer(r"(\d+) missing, (\d+) wp, (\d+) minor", line):
            want["missing"] += int(m.group(1))
            want["wp"] += int(m.group(2))
            want["minor"] += int(m.group(3))
    return want


def check_selftests(secs, validator):
    intervals = run_section(secs, validator, "selftests", driver_lines=False)
    s = Sums(intervals)
    body, rc = secs.get("selftests_run", ("", -1))
    check("selftests: the kernel's userfaultfd selftests pass under the tracer", rc == 0,
          "\n".join(line for line in body.splitlines() if line.startswith("=== "))[-1500:])
    fails = [line for line in body.splitlines() if re.match(r"^=== .*: FAIL", line)]
    check("selftests: no test failed", not fails, "; ".join(fails))
    want = selftest_counts(body)
    check("selftests: they reported missing and wp faults", want["missing"] > 0 and want["wp"] > 0,
          body[-500:])
    for kind in ("missing", "wp", "minor"):
        got = s.total["uf:" + kind]
        check(f"selftests: traced {kind} faults >= the {want[kind]} the tests counted", got >= want[kind],
              f"got {got}")
    entered = sum(s.total["uf:" + k] for k in ("missing", "wp", "minor"))
    returned = sum(v for k, v in s.total.items() if k.startswith("uf_outcome:"))
    check("selftests: every traced fault returned", entered == returned, f"{entered} entered, {returned} returned")
    check("selftests: no stall lost, no map full", s.total["uf_start_lost"] == 0 and s.total["uf_overflow"] == 0,
          f"{dict(s.total)}")


def check_text_and_metrics(secs):
    body, rc = secs.get("text", ("", -1))
    check("text: exits 0", rc == 0, f"rc={rc}")
    for label in ("mmu_notifier (", "userfaultfd (", "usecs (userfaultfd missing stall)", "SUBSCRIBER", "CAUSED BY"):
        check(f"text: shows {label!r}", label in body, body[:400])
    body, rc = secs.get("metrics", ("", -1))
    check("metrics: the exporter exits 0", rc == 0, f"rc={rc}")
    check_stderr(secs, "metrics")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=body, text=True, capture_output=True)
        check("metrics: promtool check metrics accepts the file", p.returncode == 0, p.stdout + p.stderr)
    total_of = prometheus_samples(body)

    kvm, _ = summary(secs, "mx_kvm")
    check("mx_kvm: its summary is there", kvm)
    if kvm:
        got = total_of("ummu_mmu_notifier_invalidations_total", reason="clear", pid=kvm["pid"])
        check("metrics: the VM's DONTNEEDs counted per process", got == kvm["dontneed"], f"got {got}")
        got = total_of("ummu_mmu_notifier_subscriber_invalidations_total", subscriber="kvm", reason="clear")
        check("metrics: and per subscriber (kvm)", got >= kvm["dontneed"], f"got {got}")
    uf, _ = summary(secs, "mx_uffd")
    check("mx_uffd: its summary is there", uf)
    if uf:
        got = total_of("ummu_userfaultfd_faults_total", kind="missing", pid=uf["pid_client"])
        check("metrics: userfaultfd missing faults per process", got == uf["faults"]["missing"], f"got {got}")
        got = total_of("ummu_userfaultfd_stall_seconds_count", kind="missing")
        check("metrics: one stall sample per fault", got == uf["faults"]["missing"], f"got {got}")


def check_no_driver(secs):
    body, rc = secs.get("nodriver_lines", ("", -1))
    lines = [line for line in body.splitlines() if line.strip()]
    check("no driver: exit 0, tracing the stock sources", rc == 0, f"rc={rc} {body!r}")
    check("no driver: one line per absent driver",
          len(lines) == 2 and any("ummunotify not loaded" in x for x in lines)
          and any("umem not loaded" in x for x in lines), f"{lines}")
    body, rc = secs.get("nodriver_selected", ("", -1))
    lines = [line for line in body.splitlines() if line.strip()]
    check("--umem without its driver: one line, exit 4", rc == 4 and len(lines) == 1 and "umem not loaded" in body,
          f"rc={rc} {body!r}")


def main():
    text = Path(sys.argv[1]).read_text(errors="replace").replace("\r", "")
    schema_path = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/ummutrace.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    secs = sections(text)
    setup = secs.get("setup", ("", -1))[0]
    check("setup: no ummu module loaded", "ummunotify" not in setup and "umem" not in setup, setup)
    check("setup: /dev/kvm exists", "/dev/kvm" in setup, setup)
    check_kvm(secs, validator)
    check_uffd(secs, validator)
    check_pid_reuse(secs, validator)
    check_events(secs, validator)
    check_selftests(secs, validator)
    check_text_and_metrics(secs)
    check_no_driver(secs)
    return report()


if __name__ == "__main__":
    sys.exit(main())
