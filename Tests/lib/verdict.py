"""Helpers of the host-side checkers of guest scenarios (Tests/e2e/check.py,
Tests/stock/check.py): parse the "=== BEGIN name ... === END name rc=N"
sections the guest scripts print, collect named checks, print TAP-like
lines and a count."""
import json
import re
from collections import defaultdict

results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def sections(text):
    out = {}
    for m in re.finditer(r"^=== BEGIN (\S+)\n(.*?)^=== END \1 rc=(\d+)$", text, re.S | re.M):
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def ndjson(body):
    return [json.loads(line) for line in (s.strip() for s in body.splitlines()) if line.startswith("{")]


def summary(secs, name):
    """The last JSON object a workload printed in its section, and its rc."""
    body, rc = secs.get(name, ("", -1))
    objs = [o for o in ndjson(body) if "program" in o or "pid" in o]
    return (objs[-1] if objs else {}), rc


def one_line(body):
    lines = [line for line in body.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else None


def prometheus_samples(body):
    """{(name, labels): value} summed over a Prometheus text file's samples."""
    samples = defaultdict(float)
    for line in body.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            samples[(m.group(1), m.group(2) or "")] += float(m.group(3))

    def total_of(name, **labels):
        want = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(v for (n, lab), v in samples.items() if n == name and all(w in lab for w in want))
    return total_of


def report():
    failed = 0
    for i, (name, ok, detail) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} {name}" + ("" if ok else f"  # {detail}"))
        failed += not ok
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
