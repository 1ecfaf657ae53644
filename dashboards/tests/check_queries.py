#!/usr/bin/env python3
"""Runs every PromQL expression of the dashboard (variables substituted)
and of the rules through a Prometheus server's HTTP API and requires data.

usage: check_queries.py PROM_URL DASHBOARD RULES [--expect-firing SPEC]
                        [--expect-silent SPEC] [--optional PREFIX,...]
                        [--rate-interval 20s] [--instance REGEX] [--process REGEX]

SPEC: comma-separated alerts, each `Name` or `Name{label=value,...}`.

- dashboard targets: non-empty result with at least one finite value;
- query variables label_values(SELECTOR, LABEL): `count by (LABEL) (SELECTOR)`
  non-empty;
- alerts named in --expect-firing: the full expression returns data, and
  the server (which loaded the same rules file) lists them pending/firing,
  with those labels when given;
- alerts in --expect-silent: no pending or firing alert of that name (with
  those labels when given) on the server;
- other alerts: the expression without its top-level threshold comparison
  (the signal; for `absent(A)`, A) returns data; for `A > x and on (l) B == y` each operand's
  signal (A, B) must;
- every rule the server loaded is healthy (evaluated without error).

--optional PREFIX,...: a dashboard expression over a family with one of
these prefixes that the server has not seen, or has seen only at 0 (the
source is not loaded, or the workload never used it), is skipped with a
"# skip" line instead of failing (for replayed live series).
"""

import argparse
import json
import math
import re
import urllib.parse
import urllib.request

from ummu_prom_common import Report, dashboard_queries, load_dashboard, rules_of


def query(base, expr):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    return body["data"], ""


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return json.load(resp)["data"]


def finite_values(data):
    if data["resultType"] == "vector":
        vals = [float(s["value"][1]) for s in data["result"]]
    elif data["resultType"] == "matrix":
        vals = [float(v[1]) for s in data["result"] for v in s["values"]]
    else:
        vals = [float(data["result"][1])]
    return [v for v in vals if math.isfinite(v)]


def substitute(expr, args):
    out = expr
    for var, val in (("__rate_interval", args.rate_interval), ("__interval", "5s"),
                     ("__range", "1m"), ("instance", args.instance), ("process", args.process)):
        out = out.replace("${" + var + "}", val).replace("$" + var, val)
    return out


def signal_of(expr):
    """`A > 0.01` -> `A`: the expression without a trailing top-level
    comparison; `absent(A)` -> `A` (present, so that absent() is empty)."""
    a = re.match(r"^absent\((.*)\)$", expr.strip(), re.S)
    if a:
        return a.group(1)
    m = re.match(r"^(.*?)\s*(>|<|>=|<=|==|!=)\s*(bool\s+)?[-+]?[0-9.eE+-]+\s*$", expr.strip(), re.S)
    return m.group(1) if m else expr


SET_OP = re.compile(r"\s+(and|or|unless)(\s+(on|ignoring)\s*\([^)]*\))?\s+")


def operands(expr):
    """`A and on (x) B unless C` -> [A, B, C]: split at top-level set operators."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = SET_OP.match(expr, i)
            if m:
                out.append(expr[start:i])
                start = i = m.end()
                continue
        i += 1
    out.append(expr[start:])
    return [o.strip() for o in out]


def parse_alerts(spec):
    """`A,B{x=1,y=2}` -> [("A", {}), ("B", {"x": "1", "y": "2"})]."""
    out = []
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)(\{([^}]*)\})?", spec or ""):
        labels = {}
        for kv in (m.group(3) or "").split(","):
            if kv.strip():
                k, _, v = kv.partition("=")
                labels[k.strip()] = v.strip().strip('"')
        out.append((m.group(1), labels))
    return out


def show(name, labels):
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prom")
    ap.add_argument("dashboard")
    ap.add_argument("rules")
    ap.add_argument("--expect-firing", default="")
    ap.add_argument("--expect-silent", default="")
    ap.add_argument("--optional", default="")
    ap.add_argument("--rate-interval", default="20s")
    ap.add_argument("--instance", default=".*")
    ap.add_argument("--process", default=".*")
    args = ap.parse_args()
    base = args.prom.rstrip("/")
    r = Report()

    optional = tuple(p for p in args.optional.split(",") if p)
    idle_cache = {}

    def idle_family(expr):
        """An optional family of expr the server never saw above 0, or None."""
        for name in sorted(set(re.findall(r"\bummu_[a-z0-9_]+\b", expr))):
            if not name.startswith(optional):
                continue
            if name not in idle_cache:
                fam = re.sub(r"_(bucket|sum|count)$", "", name)
                d, _ = query(base, f'max(max_over_time({{__name__=~"{fam}|{fam}_count"}}[1h]))')
                idle_cache[name] = d is None or not d["result"] or float(d["result"][0]["value"][1]) == 0
            if idle_cache[name]:
                return name
        return None

    dash = load_dashboard(args.dashboard)
    for where, expr in dashboard_queries(dash):
        m = re.match(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", expr, re.S)
        if m:
            q = f"count by ({m.group(2)}) ({substitute(m.group(1), args)})"
        else:
            q = substitute(expr, args)
        if "$" in q:
            r.check(f"dashboard {where}: all variables substituted", False, q)
            continue
        data, err = query(base, q)
        if data is None:
            r.check(f"dashboard {where}: query accepted", False, f"{err} in {q}")
            continue
        n = len(data["result"])
        fin = finite_values(data)
        if not (n > 0 and fin) and optional and idle_family(q):
            print(f"# skip dashboard {where}: {idle_family(q)} absent or always 0 in these series")
            continue
        r.check(f"dashboard {where}: {n} series", n > 0 and bool(fin),
                f"{'empty result' if n == 0 else 'no finite value'} for {q}")

    firing = parse_alerts(args.expect_firing)
    silent = parse_alerts(args.expect_silent)
    expect = {a for a, _ in firing}
    for group, rule in rules_of(args.rules):
        name = rule.get("alert") or rule.get("record")
        data, err = query(base, rule["expr"])
        if data is None:
            r.check(f"rule {name}: query accepted", False, err)
            continue
        if name in expect:
            r.check(f"rule {name}: condition holds for the synthetic workload ({len(data['result'])} series)",
                    len(data["result"]) > 0, f"empty result for {rule['expr']}")
        elif data["result"]:
            r.check(f"rule {name}: returns data", True)
        else:
            parts = operands(rule["expr"])
            for i, part in enumerate(parts):
                sig = signal_of(part)
                sdata, err = query(base, sig)
                what = "signal" if len(parts) == 1 else f"signal of operand {i + 1}/{len(parts)}"
                r.check(f"rule {name}: {what} returns data (condition false, as expected)",
                        sdata is not None and len(sdata["result"]) > 0 and (sig != part or len(parts) > 1),
                        err or f"empty result for {sig}")

    loaded = [x for g in get(base, "/api/v1/rules")["groups"] for x in g["rules"]]
    names = {x["name"] for x in loaded}
    want = {(x.get("alert") or x.get("record")) for _, x in rules_of(args.rules)}
    r.check("server loaded every rule of the file", want <= names, str(sorted(want - names)))
    bad = [(x["name"], x.get("health"), x.get("lastError")) for x in loaded if x.get("health") != "ok"]
    r.check("every loaded rule evaluated without error", not bad, str(bad))
    alerts = get(base, "/api/v1/alerts")["alerts"]

    def matching(name, labels):
        return [a for a in alerts if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in labels.items())
                and a["state"] in ("pending", "firing")]

    summary = sorted(show(a["labels"]["alertname"], {k: v for k, v in a["labels"].items()
                                                     if k in ("instance", "kind", "map")}) + ":" + a["state"]
                     for a in alerts)
    for a, labels in firing:
        r.check(f"alert {show(a, labels)} is pending or firing on the server", bool(matching(a, labels)),
                f"active: {summary}")
    for a, labels in silent:
        r.check(f"alert {show(a, labels)} is silent on the server", not matching(a, labels),
                f"active: {summary}")
    r.finish()


if __name__ == "__main__":
    main()
