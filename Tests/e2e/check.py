#!/usr/bin/env python3
"""Assert on what Tests/e2e/guest.sh printed in a guest: ummutrace's counts
must equal what the workloads did (workloads/README.md says which counts are
exact per operation), its latency histograms must bracket the delay the
post-copy server injected, and every JSON object must match the documented
schema.  Usage: check.py GUEST_OUTPUT [SCHEMA]"""
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
from verdict import check, ndjson, one_line, prometheus_samples, report, sections, summary  # noqa: E402










def per_pid(intervals):
    """Sum the per-process rows over every interval, by pid."""
    rows = defaultdict(lambda: {"ummunotify": defaultdict(int), "reasons": defaultdict(int),
                                "bytes": defaultdict(int), "umem": defaultdict(int)})
    for iv in intervals:
        for p in iv.get("processes", []):
            r = rows[p["pid"]]
            un = p.get("ummunotify")
            if un:
                for k in ("reports_queued", "reports_merged", "reads", "events_read"):
                    r["ummunotify"][k] += un[k]
                for k, v in un["invalidations"].items():
                    r["reasons"][k] += v
                for k, v in un["invalidated_bytes"].items():
                    r["bytes"][k] += v
            um = p.get("umem")
            if um:
                for k in ("faults", "faults_waited", "pages_on_demand"):
                    r["umem"][k] += um[k]
    return rows


def subscriber_reasons(intervals, name):
    """The core source's invalidations reaching subscriber `name`, by pid and reason."""
    rows = defaultdict(lambda: defaultdict(int))
    for iv in intervals:
        for sub in iv.get("subscribers", []):
            if sub["name"] == name:
                for k, v in sub["invalidations"].items():
                    rows[sub["pid"]][k] += v
    return rows


def totals(intervals, side, key):
    return sum(iv[side][key] for iv in intervals if side in iv)


def merge_hist(intervals, side, key):
    buckets = defaultdict(int)
    for iv in intervals:
        h = iv.get(side, {}).get(key)
        for b in (h or {}).get("buckets", []):
            buckets[(b["min"], b["max"])] += b["count"]
    return buckets




def main():
    text = Path(sys.argv[1]).read_text(errors="replace").replace("\r", "")
    schema_path = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/ummutrace.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    secs = sections(text)

    # --- intervals: counts per pid equal what each workload did
    body, rc = secs.get("intervals", ("", -1))
    intervals = ndjson(body)
    check("intervals: ummutrace exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    check("intervals: at least 2 objects", len(intervals) >= 2, f"{len(intervals)}")
    bad = [e.message for o in intervals for e in validator.iter_errors(o)]
    check("intervals: every object matches the schema", not bad, "; ".join(bad[:3]))
    rows = per_pid(intervals)
    core = subscriber_reasons(intervals, "ummunotify")

    exact = {  # name, reason, invalidations per op, reports merged per op
        "wl_unmap": ("unmap", 1, 0),
        "wl_dontneed": ("clear", 1, 0),
        "wl_mprotect": ("protection_vma", 1, 0),
        "wl_mremap": ("unmap", 2, 1),
    }
    for name, (reason, per_op, merged_per_op) in exact.items():
        wl, wrc = summary(secs, name)
        check(f"{name}: workload ran clean", wrc == 0 and wl.get("exact") is True, f"rc={wrc} {wl.get('errors')}")
        if not wl:
            continue
        ops = wl["ops_total"]
        row = rows.get(wl["pid"])
        check(f"{name}: a row for pid {wl['pid']}", row is not None)
        if row is None:
            continue
        got = row["reasons"][reason]
        check(f"{name}: {reason} invalidations = {per_op}*{ops}", got == per_op * ops, f"got {got}")
        check(f"{name}: no other reason", row["reasons"]["total"] == got, f"total {row['reasons']['total']}")
        span = wl["pages_per_buffer"] * wl["page_size"]
        check(f"{name}: invalidated bytes = invalidations * buffer size",
              row["bytes"][reason] == per_op * ops * span, f"got {row['bytes'][reason]}")
        check(f"{name}: reports queued = INVAL read", row["ummunotify"]["reports_queued"] == wl["inval"],
              f"queued {row['ummunotify']['reports_queued']} inval {wl['inval']}")
        check(f"{name}: reports merged = {merged_per_op}*ops",
              row["ummunotify"]["reports_merged"] == merged_per_op * ops,
              f"got {row['ummunotify']['reports_merged']}")
        check(f"{name}: events read = workload's events", row["ummunotify"]["events_read"] == wl["events"],
              f"got {row['ummunotify']['events_read']} want {wl['events']}")
        # The stock kernel's MMU-notifier core sees the same invalidations
        # reach the ummunotify subscriber of that process.
        check(f"{name}: the core source agrees: {reason} invalidations reaching ummunotify",
              core[wl["pid"]][reason] == got, f"core {dict(core[wl['pid']])} driver {got}")

    # --- totals over the whole window equal the sums of the workloads
    wls = [summary(secs, n)[0] for n in exact]
    wls = [w for w in wls if w]
    for key in ("registers", "unregisters", "reads", "events"):
        want = sum(w[key] for w in wls)
        got = totals(intervals, "ummunotify", "events_read" if key == "events" else key)
        check(f"totals: ummunotify {key} = the workloads' sum", got == want, f"got {got} want {want}")
    err = secs.get("intervals.stderr", ("", 0))[0]
    check("intervals: nothing on stderr", not err.strip(), err[:300])
    check("intervals: about one second apart",
          all(0.9e9 < iv["duration_ns"] < 3e9 for iv in intervals[:-1]),
          f"{[iv['duration_ns'] for iv in intervals]}")

    # --- umem: faults and latency bracket the injected delay
    pc, prc = summary(secs, "wl_postcopy")
    check("wl_postcopy: workload ran clean", prc == 0 and pc.get("exact") is True, f"rc={prc}")
    if pc:
        waited, pushed, touches = pc["faults_served"], pc["pages_pushed"], pc["touches"]
        delay_ns = pc["delay_us"] * 1000
        check("umem: pages served on demand = faults served",
              totals(intervals, "umem", "pages_on_demand") == waited,
              f"got {totals(intervals, 'umem', 'pages_on_demand')} want {waited}")
        check("umem: pages pushed ahead", totals(intervals, "umem", "pages_pushed") == pushed,
              f"got {totals(intervals, 'umem', 'pages_pushed')} want {pushed}")
        check("umem: faults = touches", totals(intervals, "umem", "faults") == touches,
              f"got {totals(intervals, 'umem', 'faults')} want {touches}")
        check("umem: faults that waited = pages served on demand",
              totals(intervals, "umem", "faults_waited") == waited,
              f"got {totals(intervals, 'umem', 'faults_waited')}")
        client = rows.get(pc["pid_client"])
        check("umem: a row for the faulting client", client is not None and client["umem"]["faults_waited"] == waited,
              f"{client and dict(client['umem'])}")
        check("umem: offsets handed to the server = its requests",
              totals(intervals, "umem", "offsets_handed") == pc["requests"],
              f"got {totals(intervals, 'umem', 'offsets_handed')} want {pc['requests']}")
        service = merge_hist(intervals, "umem", "service_latency_ns")
        n = sum(service.values())
        below = sum(c for (lo, hi), c in service.items() if hi < delay_ns)
        check("umem: one service latency sample per on-demand page", n == waited, f"{n} vs {waited}")
        check("umem: no service latency below the injected delay", below == 0, f"{below} samples below {delay_ns} ns")
        p50s = [iv["umem"]["service_latency_ns"]["p50"] for iv in intervals
                if iv["umem"]["service_latency_ns"]["count"]]
        check("umem: service p50 within [delay, 50*delay]",
              p50s and all(delay_ns / 2 <= p <= 50 * delay_ns for p in p50s), f"{p50s}")
        stall = merge_hist(intervals, "umem", "stall_latency_ns")
        long_stalls = sum(c for (lo, hi), c in stall.items() if hi >= delay_ns)
        check("umem: every waited fault stalled at least the delay", long_stalls >= waited,
              f"{long_stalls} stalls >= delay, want {waited}")

    # --- the event stream
    body, rc = secs.get("events", ("", -1))
    events = ndjson(body)
    check("events: exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    bad = [e.message for o in events for e in validator.iter_errors(o)]
    check("events: every object matches the schema", not bad, "; ".join(bad[:3]))
    drops = [o for o in events if o.get("type") == "drops"]
    check("events: a drops record per interval, none dropped",
          drops and all(d["dropped_events"] == 0 for d in drops), f"{drops[:2]}")
    delivered = sum(d["delivered_events"] for d in drops)
    n_events = sum(1 for o in events if o.get("type") == "event")
    check("events: delivered counts add up", delivered == n_events, f"{delivered} vs {n_events}")
    ev_un, _ = summary(secs, "ev_unmap")
    if ev_un:
        n = sum(1 for o in events if o.get("event") == "ummunotify_notify" and o["pid"] == ev_un["pid"])
        check("events: one notify event per munmap", n == ev_un["ops_total"], f"{n} vs {ev_un['ops_total']}")
        regs = sum(1 for o in events if o.get("event") == "ummunotify_register" and o["pid"] == ev_un["pid"])
        check("events: one register event per registration", regs == ev_un["registers"], f"{regs}")
    ev_pc, _ = summary(secs, "ev_postcopy")
    if ev_pc:
        writes = [o for o in events if o.get("event") == "umem_write"]
        check("events: one umem_write per page", len(writes) == ev_pc["pages"], f"{len(writes)}")
        lat = [o.get("latency_ns", 0) for o in writes]
        check("events: umem_write carries service latency >= delay",
              lat and min(lat) >= ev_pc["delay_us"] * 1000, f"min {min(lat) if lat else None}")
        faults = sum(1 for o in events if o.get("event") == "umem_fault" and o["pid"] == ev_pc["pid_client"])
        check("events: one umem_fault per touch, from the client", faults == ev_pc["touches"], f"{faults}")

    # --- text output
    body, rc = secs.get("text", ("", -1))
    check("text: exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    check("text: biolatency-style histogram", re.search(r"usecs( \([^)]*\))?\s+: count\s+distribution", body)
          and re.search(r"\|\*+", body), body[:300])
    check("text: -T prints timestamps", re.search(r"^\d\d:\d\d:\d\d", body, re.M), body[:200])
    body, rc = secs.get("textms", ("", -1))
    check("text: -m prints milliseconds", rc == 0 and re.search(r"msecs( \([^)]*\))?\s+: count\s+distribution", body), body[:300])

    # --- the exporter's file: promtool accepts it, and it carries the workloads
    body, rc = secs.get("metrics", ("", -1))
    check("metrics: the exporter exits 0 on Ctrl-C", rc == 0, f"rc={rc}")
    promtool = shutil.which("promtool")
    check("metrics: promtool is installed", promtool)
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=body, text=True, capture_output=True)
        check("metrics: promtool check metrics accepts the file", p.returncode == 0, p.stdout + p.stderr)
    total_of = prometheus_samples(body)

    mx, _ = summary(secs, "mx_unmap")
    if mx:
        got = total_of("ummu_ummunotify_invalidations_total", reason="unmap", pid=mx["pid"])
        check("metrics: regcache's unmap invalidations counted", got == mx["ops_total"], f"got {got}")
    mp, _ = summary(secs, "mx_postcopy")
    if mp:
        got = total_of("ummu_umem_service_latency_seconds_count")
        check("metrics: one service latency sample per on-demand page", got == mp["faults_served"],
              f"got {got} want {mp['faults_served']}")
        got = total_of("ummu_umem_pages_served_total", how="pushed")
        check("metrics: pushed pages counted", got == mp["pages_pushed"], f"got {got} want {mp['pages_pushed']}")
    check("metrics: last write timestamp set", total_of("ummu_exporter_last_write_timestamp_seconds") > 1e9)
    check("metrics: no ummu_bpf_run_* without --bpf-stats (absent, not zero)", "ummu_bpf_run_" not in body)

    # --- the default mode over a long run: one object, every process listed
    body, rc = secs.get("summary", ("", -1))
    objs = ndjson(body)
    check("summary: exits 0 on Ctrl-C with one object", rc == 0 and len(objs) == 1, f"rc={rc} objects={len(objs)}")
    err, _ = secs.get("summary.stderr", ("", -1))
    check("summary: nothing on stderr", not err.strip(), err[:300])
    if len(objs) == 1:
        check("summary: the object matches the schema", not list(validator.iter_errors(objs[0])))
        check("summary: it spans more than two maintenance periods (20 s)", objs[0]["duration_ns"] > 20e9,
              f"{objs[0].get('duration_ns')}")
        srows = per_pid(objs)
        ops = 0
        for i in range(1, 5):
            wl, wrc = summary(secs, f"sm_unmap_{i}")
            if not wl:
                check(f"sm_unmap_{i}: workload ran", False, f"rc={wrc}")
                continue
            ops += wl["ops_total"]
            got = srows.get(wl["pid"], {}).get("reasons", {}).get("unmap")
            check(f"summary: exited process {i} listed with its {wl['ops_total']} unmaps", got == wl["ops_total"],
                  f"pid {wl['pid']}: {got}")
        got = objs[0]["ummunotify"]["invalidations"].get("unmap")
        check("summary: total unmaps = the four processes'", got == ops, f"got {got} want {ops}")

    # --- PID filter
    body, rc = secs.get("filtered", ("", -1))
    filt = ndjson(body)
    check("filter: -p 1 sees no invalidation and no process row",
          filt and all(o["ummunotify"]["invalidations"]["total"] == 0 and not o["processes"] for o in filt),
          f"{len(filt)} objects")
    check("filter: the filtered events are counted", totals(filt, "ummunotify", "filtered") > 0)

    # --- interval and count
    body, rc = secs.get("count", ("", -1))
    check("count: 'ummutrace --json 0.5 3' prints 3 objects and exits 0",
          rc == 0 and len(ndjson(body)) == 3, f"rc={rc} n={len(ndjson(body))}")

    # --- failures: one clear line, non-zero exit
    body, rc = secs.get("unprivileged", ("", -1))
    line = one_line(body)
    check("unprivileged: one line naming the privilege, non-zero exit",
          rc != 0 and line and re.search(r"root|CAP_BPF", line), f"rc={rc} {body!r}")
    body, rc = secs.get("nodrivers", ("", -1))
    lines = [x for x in body.splitlines() if x.strip() and not x.startswith("{")]
    objs = ndjson(body)
    check("no drivers: the stock sources still trace (exit 0, one object with mmu_notifier)",
          rc == 0 and len(objs) == 1 and "mmu_notifier" in objs[0], f"rc={rc} {body[:300]!r}")
    check("no drivers: one line per absent driver saying it is not loaded",
          len(lines) == 2 and all("not loaded" in x for x in lines), f"{lines}")
    body, rc = secs.get("nodrivers_selected", ("", -1))
    line = one_line(body)
    check("--ummunotify without its driver: one line, non-zero exit",
          rc != 0 and line and "ummunotify" in line, f"rc={rc} {body!r}")
    body, rc = secs.get("umem_only", ("", -1))
    check("umem driver alone: traces umem, says ummunotify is absent",
          rc == 0 and len(ndjson(body)) == 1 and "ummunotify" in body, f"rc={rc} {body[:200]!r}")

    return report()


if __name__ == "__main__":
    sys.exit(main())
