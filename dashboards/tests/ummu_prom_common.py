"""Shared helpers of the dashboard/rules checks: the docs/metrics.md
catalogue, the exposition file, the dashboard's and rules' PromQL, and a
tiny "ok N name" / "N passed, N failed" reporter like kmod/tests/ktest.h."""

import json
import re
import sys

import yaml

METRIC_RE = re.compile(r"\bummu_[a-z0-9_]+\b")
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


class Report:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        self.n += 1
        if ok:
            print(f"ok {self.n} {name}")
        else:
            self.failed += 1
            print(f"not ok {self.n} {name}" + (f": {detail}" if detail else ""))
        return ok

    def finish(self):
        print(f"{self.n - self.failed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def docs_families(path):
    """{name: (type, help)} from the families table of docs/metrics.md."""
    fams = {}
    dupes = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\| `(ummu_[a-z0-9_]+)` \| (counter|gauge|histogram) \|[^|]*\|[^|]*\| (.*) \|\s*$", line)
        if m:
            if m.group(1) in fams:
                dupes.append(m.group(1))
            fams[m.group(1)] = (m.group(2), m.group(3))
    return fams, dupes


def file_families(path):
    """{name: (type, help)} and the sample lines of a text-format file."""
    helps, types, samples = {}, {}, []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            helps[name] = text.replace("\\n", "\n").replace("\\\\", "\\")
        elif line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            types[name] = t
        elif line and not line.startswith("#"):
            samples.append(line)
    return {n: (types.get(n), helps.get(n)) for n in set(helps) | set(types)}, samples


def dashboard_queries(dash):
    """[(where, expr)] of every panel target and every query variable."""
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((f"panel '{p.get('title')}' {t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query")
            out.append((f"variable ${v['name']}", q))
    return out


def rules_of(path):
    """[(group, rule dict)] of a Prometheus rule file."""
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    return [(g["name"], r) for g in doc.get("groups", []) for r in g.get("rules", [])]


def family_of(name, hist_names):
    """The family a series name belongs to (histogram suffixes stripped)."""
    for s in HIST_SUFFIXES:
        if name.endswith(s) and name[: -len(s)] in hist_names:
            return name[: -len(s)]
    return name


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
