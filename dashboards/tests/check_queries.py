#!/usr/bin/env python3
"""Runs every PromQL expression of the dashboard (variables substituted)
and of the rules through a Prometheus server's HTTP API and requires data.

usage: check_queries.py PROM_URL DASHBOARD RULES [--expect-firing A,B,...]
                        [--rate-interval 20s] [--instance REGEX] [--process REGEX]

- dashboard targets: non-empty result with at least one finite value;
- query variables label_values(SELECTOR, LABEL): `count by (LABEL) (SELECTOR)`
  non-empty;
- alerts named in --expect-firing: the full expression returns data, and
  the server (which loaded the same rules file) lists them pending/firing;
- other alerts: the expression without its top-level threshold comparison
  (the signal) returns data;
- every rule the server loaded is healthy (evaluated without error).
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
    """`A > 0.01` -> `A`: the expression without a trailing top-level comparison."""
    m = re.match(r"^(.*?)\s*(>|<|>=|<=|==|!=)\s*(bool\s+)?[-+]?[0-9.eE+-]+\s*$", expr.strip(), re.S)
    return m.group(1) if m else expr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prom")
    ap.add_argument("dashboard")
    ap.add_argument("rules")
    ap.add_argument("--expect-firing", default="")
    ap.add_argument("--rate-interval", default="20s")
    ap.add_argument("--instance", default=".*")
    ap.add_argument("--process", default=".*")
    args = ap.parse_args()
    base = args.prom.rstrip("/")
    r = Report()

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
        r.check(f"dashboard {where}: {n} series", n > 0 and bool(fin),
                f"{'empty result' if n == 0 else 'no finite value'} for {q}")

    expect = {a for a in args.expect_firing.split(",") if a}
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
            sig = signal_of(rule["expr"])
            sdata, err = query(base, sig)
            r.check(f"rule {name}: signal returns data (condition false, as expected)",
                    sdata is not None and len(sdata["result"]) > 0 and sig != rule["expr"],
                    err or f"empty result for {sig}")

    loaded = [x for g in get(base, "/api/v1/rules")["groups"] for x in g["rules"]]
    names = {x["name"] for x in loaded}
    want = {(x.get("alert") or x.get("record")) for _, x in rules_of(args.rules)}
    r.check("server loaded every rule of the file", want <= names, str(sorted(want - names)))
    bad = [(x["name"], x.get("health"), x.get("lastError")) for x in loaded if x.get("health") != "ok"]
    r.check("every loaded rule evaluated without error", not bad, str(bad))
    active = {a["labels"]["alertname"]: a["state"] for a in get(base, "/api/v1/alerts")["alerts"]}
    for a in sorted(expect):
        r.check(f"alert {a} is pending or firing on the server", active.get(a) in ("pending", "firing"),
                f"state {active.get(a)}; active: {active}")
    r.finish()


if __name__ == "__main__":
    main()
