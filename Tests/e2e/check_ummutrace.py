#!/usr/bin/env python3
"""Checks the output of Tests/e2e/ummutrace-guest.sh (read from stdin or a
file): ummutrace's counts must equal what the workloads did, its latency
histograms must bracket the injected delay, every NDJSON line must match
docs/ummutrace.schema.json. Prints "ok N name" / "not ok N name" lines and a
final "N passed, N failed"; exit status 1 on any failure."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("ok" if cond else "not ok"), len(results), name, "" if cond else "-- " + str(detail))


def sections(text):
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("==== "):
            cur = line[5:].strip()
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return out


def ndjson(lines):
    recs = []
    for l in lines:
        l = l.strip()
        if l:
            recs.append(json.loads(l))
    return recs


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    s = sections(text)
    for k in ("agg.json", "ev.json", "rc.json", "pc.json", "text.txt", "filtered.json"):
        check(f"section {k} present", k in s, "missing; guest output:\n" + text[-3000:])
    if not all(k in s for k in ("agg.json", "ev.json", "rc.json", "pc.json")):
        return finish()
    for rc in ("regcache", "postcopy", "ummutrace-json", "ummutrace-events", "ummutrace-text", "ummutrace-filtered"):
        check(f"{rc} exit status 0", f"{rc} rc=0" in text)
    check("no ummutrace stderr", not any(l.strip() for l in s.get("agg.err", []) + s.get("ev.err", [])),
          s.get("agg.err", []) + s.get("ev.err", []))

    agg = ndjson(s["agg.json"])
    ev = ndjson(s["ev.json"])
    rc = json.loads("\n".join(s["rc.json"]))
    pc = json.loads("\n".join(s["pc.json"]))

    # Schema, when python3-jsonschema is there (the Swift tests validate the
    # same schema with a built-in validator).
    try:
        import jsonschema
        schema = json.load(open(os.path.join(ROOT, "docs/ummutrace.schema.json")))
        v = jsonschema.Draft202012Validator(schema)
        bad = [e.message for r in agg + ev + ndjson(s["filtered.json"]) for e in v.iter_errors(r)]
        check("every NDJSON line matches the schema", not bad, bad[:3])
    except ImportError:
        print("# python3 jsonschema not installed: schema check left to the Swift tests")

    ints = [r for r in agg if r["type"] == "interval"]
    check("intervals are one second apart", all(0.9e9 < r["duration_ns"] < 3e9 for r in ints[:-1]),
          [r["duration_ns"] for r in ints])

    def total(side, key, sub=None):
        n = 0
        for r in ints:
            v = r.get(side, {}).get(key, 0)
            n += v[sub] if sub else v
        return n

    # ummunotify vs regcache's own counts (its generation counter is +1 per
    # invalidation that hit a registration).
    check("invalidations == regcache generation", total("ummunotify", "invalidations", "total") == rc["generation"],
          (total("ummunotify", "invalidations", "total"), rc["generation"]))
    check("reports queued == INVAL events read", total("ummunotify", "reports_queued") == rc["inval"],
          (total("ummunotify", "reports_queued"), rc["inval"]))
    check("events read == regcache events", total("ummunotify", "events_read") == rc["events"],
          (total("ummunotify", "events_read"), rc["events"]))
    check("reads == regcache reads", total("ummunotify", "reads") == rc["reads"], (total("ummunotify", "reads"), rc["reads"]))
    check("registers == regcache registers", total("ummunotify", "registers") == rc["registers"],
          (total("ummunotify", "registers"), rc["registers"]))
    check("unregisters == regcache unregisters", total("ummunotify", "unregisters") == rc["unregisters"],
          (total("ummunotify", "unregisters"), rc["unregisters"]))
    held = [r["ummunotify"]["registrations_held"] for r in ints if r["ummunotify"]["registers"] > 0]
    check("registrations held at the end of regcache's interval", held and held[-1] == rc["registrations"],
          (held, rc["registrations"]))
    rows = [p for r in ints for p in r["processes"] if p["pid"] == rc["pid"] and "ummunotify" in p]
    check("regcache has a process row with its invalidations",
          sum(p["ummunotify"]["invalidations"]["total"] for p in rows) == rc["generation"] and
          all(p["comm"] == "regcache" for p in rows), rows[:1])
    check("no overflow, no drops", total("ummunotify", "overflow", "processes") == 0 and
          sum(r["dropped_events"] for r in ints) == 0)

    # umem vs postcopy (threads split the pages: one waiting fault per
    # requested page).
    served, pushed, delay_ns = pc["faults_served"], pc["pages_pushed"], pc["delay_us"] * 1000
    check("pages on demand == faults served", total("umem", "pages_on_demand") == served,
          (total("umem", "pages_on_demand"), served))
    check("pages pushed == postcopy pushes", total("umem", "pages_pushed") == pushed, (total("umem", "pages_pushed"), pushed))
    check("faults waited == faults served", total("umem", "faults_waited") == served, (total("umem", "faults_waited"), served))
    check("offsets handed == requests", total("umem", "offsets_handed") == pc["requests"],
          (total("umem", "offsets_handed"), pc["requests"]))
    check("no service/stall mismatch", total("umem", "service_unmatched") == 0 and total("umem", "stall_unmatched") == 0)

    def merged(key):
        buckets, count, ssum = {}, 0, 0
        for r in ints:
            h = r["umem"][key]
            count += h["count"]
            ssum += h["sum"]
            for b in h["buckets"]:
                buckets[(b["min"], b["max"])] = buckets.get((b["min"], b["max"]), 0) + b["count"]
        return buckets, count, ssum

    for key in ("service_latency_ns", "stall_latency_ns"):
        b, count, ssum = merged(key)
        check(f"{key}: one sample per served fault", count == served, (count, served))
        lo = min(b) if b else (0, 0)
        check(f"{key}: lowest bucket {lo} reaches the injected delay", b and lo[1] >= delay_ns, (lo, delay_ns))
        check(f"{key}: mean between the delay and 50x it", count and delay_ns <= ssum / count <= 50 * delay_ns,
              ssum / max(count, 1))
    rows = [p for r in ints for p in r["processes"] if p["pid"] == pc["pid_client"] and "umem" in p]
    check("postcopy client row carries its faults and service samples",
          sum(p["umem"]["faults_waited"] for p in rows) == served and
          sum(p["umem"]["service_latency_ns"]["count"] for p in rows) == served, rows[:1])

    # --events stream.
    events = [r for r in ev if r["type"] == "event"]
    drops = [r for r in ev if r["type"] == "drops"]
    check("drops record every interval, none dropped", drops and sum(d["dropped_events"] for d in drops) == 0)
    check("delivered counts add up", sum(d["delivered_events"] for d in drops) == len(events),
          (sum(d["delivered_events"] for d in drops), len(events)))
    by = {}
    for e in events:
        by[e["event"]] = by.get(e["event"], 0) + 1
    check("one ummunotify_register event per registration", by.get("ummunotify_register", 0) == rc["registers"],
          (by.get("ummunotify_register"), rc["registers"]))
    waited = sum(1 for e in events if e["event"] == "umem_fault" and e["must_wait"] == 1)
    check("umem_fault events that waited == faults served", waited == served, (waited, served))
    writes = [e for e in events if e["event"] == "umem_write"]
    check("umem_write events == pages served + pushed", len(writes) == served + pushed, (len(writes), served + pushed))
    lat = [e["latency_ns"] for e in writes if e["on_demand"] == 1]
    check("every on-demand write carries a latency >= the delay", lat and min(lat) >= delay_ns, lat[:5])

    # Text mode and the PID filter.
    t = "\n".join(s["text.txt"])
    check("text mode prints both sides", "ummunotify (" in t and "umem (" in t, t[:300])
    f = ndjson([l for l in s["filtered.json"] if l.startswith("{")])
    check("-p with an idle pid counts nothing", f and f[-1]["umem"]["faults"] == 0 and "ummunotify" not in f[-1], f[-1:])
    return finish()


def finish():
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
