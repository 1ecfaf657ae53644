#!/usr/bin/env python3
"""Static checks: the dashboard JSON parses and is importable as is; the
file the exporter wrote has exactly the families of docs/metrics.md (same
TYPE and HELP); the dashboard and the rules use only those families.

usage: check_names.py DOCS DASHBOARD RULES METRICS_FILE
"""

import os
import re
import sys

from ummu_prom_common import (METRIC_RE, Report, dashboard_queries, docs_families,
                              family_of, file_families, load_dashboard, rules_of)


def main():
    docs_path, dash_path, rules_path, metrics_path = sys.argv[1:5]
    r = Report()

    docs, dupes = docs_families(docs_path)
    r.check("docs/metrics.md lists families", len(docs) >= 10, f"found {len(docs)}")
    r.check("docs/metrics.md lists each family once", not dupes, f"duplicates: {dupes}")
    bad_suffix = [n for n, (t, _) in docs.items() if (t == "counter") != n.endswith("_total")]
    r.check("counters and only counters end in _total", not bad_suffix, str(bad_suffix))
    bad_unit = [n for n in docs if re.search(r"_(ms|us|ns|milliseconds|microseconds|nanoseconds|kb|mb|kib|mib)(_|$)", n)]
    r.check("names use base units", not bad_unit, str(bad_unit))

    written, samples = file_families(metrics_path)
    r.check("exporter file has every documented family", set(docs) <= set(written),
            f"missing: {sorted(set(docs) - set(written))}")
    r.check("exporter file has no undocumented family", set(written) <= set(docs),
            f"undocumented: {sorted(set(written) - set(docs))}")
    wrong = [n for n in docs if n in written and written[n] != docs[n]]
    r.check("TYPE and HELP in the file match docs/metrics.md", not wrong,
            "; ".join(f"{n}: file {written[n]} docs {docs[n]}" for n in wrong))
    hist = {n for n, (t, _) in docs.items() if t == "histogram"}
    empty = [n for n in written if not any(re.match(re.escape(n) + r"(_bucket|_sum|_count)?[{ ]", s) for s in samples)]
    r.check("every family in the file has samples", not empty, str(empty))

    try:
        dash = load_dashboard(dash_path)
        parsed = True
    except Exception as e:  # noqa: BLE001 - the message is the result
        parsed = False
        r.check("dashboard JSON parses", False, str(e))
    if parsed:
        r.check("dashboard JSON parses", True)
        r.check("dashboard has title, uid and schemaVersion",
                all(dash.get(k) for k in ("title", "uid", "schemaVersion")))
        r.check("dashboard is not an export with __inputs (imports with no prompts)", "__inputs" not in dash)
        names = [v.get("name") for v in dash.get("templating", {}).get("list", [])]
        r.check("dashboard variables: datasource, instance, process",
                all(n in names for n in ("datasource", "instance", "process")), str(names))
        panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
        ids = [p.get("id") for p in dash.get("panels", [])]
        r.check("panel ids unique", len(ids) == len(set(ids)), str(ids))
        no_ds = [p.get("title") for p in panels
                 if (p.get("datasource") or {}).get("uid") != "${datasource}"
                 or any((t.get("datasource") or {}).get("uid") != "${datasource}" for t in p.get("targets", []))]
        r.check("every panel and target uses the $datasource variable", not no_ds, str(no_ds))
        no_expr = [p.get("title") for p in panels if not any(t.get("expr") for t in p.get("targets", []))]
        r.check("every panel has a query", not no_expr, str(no_expr))
        off_grid = [p.get("title") for p in dash.get("panels", [])
                    if p["gridPos"]["x"] + p["gridPos"]["w"] > 24]
        r.check("panels fit the 24-column grid", not off_grid, str(off_grid))
        titles = " ".join(p.get("title", "") for p in panels).lower()
        wanted = ["invalidation rate by reason", "invalidation rate by process", "registrations held",
                  "events per read", "fault rate", "service latency", "stall latency", "pending requests"]
        r.check("dashboard has the issue's panels", all(w in titles for w in wanted),
                str([w for w in wanted if w not in titles]))
        wanted = ["mmu-notifier invalidation rate by reason", "mmu-notifier invalidation rate by cause",
                  "mmu-notifier invalidation rate by subscriber", "mmu-notifier callback time (start side)",
                  "mmu-notifier callback time (end side)", "mmu-notifier callback time p50 / p99",
                  "userfaultfd fault rate by kind", "userfaultfd stall p50 / p99 by kind",
                  "userfaultfd waiting faults", "userfaultfd resolving ops by op",
                  "userfaultfd resolved bytes by op"]
        r.check("dashboard has the stock sources' panels", all(w in titles for w in wanted),
                str([w for w in wanted if w not in titles]))
        by_title = {p.get("title", "").lower(): [t.get("expr", "") for t in p.get("targets", [])] for p in panels}
        # With several instances selected, a graph must not add them up:
        # every aggregation of a non-heatmap panel keeps `instance` (a
        # heatmap draws one distribution: the $instance choice filters it).
        merged = [t.get("expr", "") for p in panels if p.get("type") != "heatmap" for t in p.get("targets", [])
                  if re.search(r"\b(sum|max|min|avg|count)\s*\(", t.get("expr", ""))
                  or any("instance" not in g for g in re.findall(r"\b(?:sum|max|min|avg|count) by \(([^)]*)\)",
                                                                 t.get("expr", "")))]
        r.check("graph aggregations keep instance", not merged, str(merged[:3]))
        # Heatmaps of per-second rates, so that the scrape and rewrite
        # intervals do not scale the colours.
        heat_exprs = [t.get("expr", "") for p in panels if p.get("type") == "heatmap" for t in p.get("targets", [])]
        r.check("heatmaps use rate()", heat_exprs and all("rate(" in e and "increase(" not in e for e in heat_exprs),
                str(heat_exprs[:2]))
        cb = "ummu_mmu_notifier_callback_seconds_bucket"
        r.check("callback heatmaps select one side each",
                any('side="start"' in e and cb in e for e in by_title.get("mmu-notifier callback time (start side)", []))
                and any('side="end"' in e and cb in e
                        for e in by_title.get("mmu-notifier callback time (end side)", [])))
        q = by_title.get("mmu-notifier callback time p50 / p99", [])
        r.check("callback p50/p99 are by side",
                len(q) == 2 and all("histogram_quantile" in e and "by (instance, side, le)" in e for e in q), str(q))
        q = by_title.get("userfaultfd stall p50 / p99 by kind", [])
        r.check("userfaultfd stall p50/p99 are by kind",
                len(q) == 2 and all("histogram_quantile" in e and "by (instance, kind, le)" in e for e in q), str(q))
        heat = [p for p in panels if p.get("type") == "heatmap"]
        r.check("latency heatmaps read pre-bucketed series",
                len(heat) >= 2 and all(t.get("format") == "heatmap" for p in heat for t in p["targets"]))
        quant = [e for _, e in dashboard_queries(dash) if "histogram_quantile" in e]
        r.check("p50/p99 panels use histogram_quantile on _bucket by le",
                len(quant) >= 4 and all("_bucket" in e and "le" in e for e in quant))

        used = set()
        for where, expr in dashboard_queries(dash):
            for m in METRIC_RE.findall(expr):
                used.add(family_of(m, hist))
        unknown = sorted(used - set(docs))
        r.check("dashboard uses only documented families", not unknown, str(unknown))
        unwritten = sorted(used - set(written))
        r.check("dashboard uses only families the exporter writes", not unwritten, str(unwritten))
        r.check("dashboard uses the main families",
                len(used) >= 12, f"uses {len(used)}: {sorted(used)}")
        stock = sorted(n for n in docs if n.startswith(("ummu_mmu_notifier_", "ummu_userfaultfd_")))
        r.check("dashboard uses every stock-source family", stock and set(stock) <= used,
                str(sorted(set(stock) - used)))

    rules = rules_of(rules_path)
    r.check("rules file has alerts", any("alert" in x for _, x in rules))
    used = set()
    for _, rule in rules:
        for m in METRIC_RE.findall(rule["expr"]):
            used.add(family_of(m, hist))
    r.check("rules use only documented families", used <= set(docs), str(sorted(used - set(docs))))
    r.check("rules use only families the exporter writes", used <= set(written), str(sorted(used - set(written))))
    alerts = {x.get("alert") for _, x in rules}
    want = {"UmmuStallLatencyP99High", "UmmuUmemFaultsStuck", "UmmuExporterStale", "UmmuExporterAbsent",
            "UmmuTextfileScrapeError"}
    r.check("rules have the umem stall p99 and stuck-server alerts, and the stale, absent and unreadable-file alerts",
            want <= alerts, str(sorted(want - alerts)))
    want = {"UmmuMMUNotifierCallbackP99High", "UmmuUserfaultfdStallP99High", "UmmuUserfaultfdFaultsStuck"}
    r.check("rules have the callback p99, userfaultfd stall p99 and stuck-handler alerts", want <= alerts,
            str(sorted(want - alerts)))
    docs_text = open(docs_path, encoding="utf-8").read()
    undocumented = sorted(a for a in alerts if a and f"| `{a}` |" not in docs_text)
    r.check("every alert is in the alerts table of docs/metrics.md", not undocumented, str(undocumented))
    bare = [x.get("alert") for _, x in rules if x.get("alert")
            and not (x.get("labels", {}).get("severity") and x.get("annotations", {}).get("summary")
                     and x.get("annotations", {}).get("description"))]
    r.check("every alert has a severity, a summary and a description", not bare, str(bare))
    # Runbooks: docs/alerts.md next to docs/metrics.md, a section per alert.
    runbooks_path = os.path.join(os.path.dirname(docs_path), "alerts.md")
    anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"^#+ (.*)$", open(runbooks_path, encoding="utf-8").read(), re.M)}
    wrong = [x.get("alert") for _, x in rules if x.get("alert")
             and x.get("annotations", {}).get("runbook_url") != f"docs/alerts.md#{x['alert'].lower()}"]
    r.check("every alert's runbook_url is docs/alerts.md#<its name>", not wrong, str(wrong))
    missing = sorted(x["alert"] for _, x in rules if x.get("alert") and x["alert"].lower() not in anchors)
    r.check("docs/alerts.md has a section per alert", not missing, str(missing))
    r.finish()


if __name__ == "__main__":
    main()
