#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The dashboard and the alerts of k8s/monitoring, offline
(tests/integration/test-monitoring.sh):

  rules PROMETHEUSRULE OUT       the PrometheusRule's spec.groups as a plain
                                 rules file (for promtool check/test rules)
  dashboard-rules DASHBOARD OUT  each panel query as a recording rule (Grafana's
                                 $__rate_interval and co. as 5m), so that
                                 promtool checks their PromQL too
  names FILE...                  the metric names the rules or dashboards use
  check METRICS FILE...          every metric name FILE uses is exported: a
                                 family of a # TYPE line of METRICS (the
                                 verifier's /metrics text; a histogram's
                                 _bucket, _sum and _count), or `up` (made by
                                 Prometheus for each target)
  tested RULES TESTS             every alert of RULES has a unit test in
                                 TESTS that expects it firing and one that
                                 expects it silent

Metric names are found by a small PromQL scan, not a full parser: strings,
label matchers {...}, ranges [...] and the label lists of by, without, on,
ignoring, group_left and group_right are dropped; what remains of the
identifiers, less keywords, functions (an identifier before "(") and
numbers, are metric names. Input files are bounded (MAX_FILE_BYTES)."""
import json
import re
import sys

import yaml

MAX_FILE_BYTES = 4 << 20
# Made by Prometheus for every scrape target, not by the verifier.
PROMETHEUS_MADE = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan", "atan2"}
LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
GRAFANA_VARS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


def read(path):
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        sys.exit(f"{path}: over {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8")


def groups_of(path):
    """A plain rules file's groups, or a PrometheusRule's spec.groups."""
    doc = yaml.safe_load(read(path))
    if not isinstance(doc, dict):
        sys.exit(f"{path}: not a YAML mapping")
    if doc.get("kind") == "PrometheusRule":
        doc = doc.get("spec") or {}
    groups = doc.get("groups")
    if not isinstance(groups, list):
        sys.exit(f"{path}: no groups")
    return groups


def dashboard_exprs(path):
    """(panel title, expr) of every target of every panel, rows' panels too."""
    d = json.loads(read(path))
    out = []

    def walk(panels):
        for p in panels or []:
            walk(p.get("panels"))
            for t in p.get("targets") or []:
                if "expr" in t:
                    out.append((p.get("title", "?"), t["expr"]))
    walk(d.get("panels"))
    return out


def exprs_of(path):
    if path.endswith(".json"):
        return dashboard_exprs(path)
    return [(r.get("alert") or r.get("record") or "?", r["expr"])
            for g in groups_of(path) for r in g.get("rules") or [] if "expr" in r]


def metric_names(expr):
    e = GRAFANA_VARS.sub("5m", str(expr))
    e = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", '""', e)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\[\]]*\]", " ", e)
    e = LABEL_LISTS.sub(" ", e)
    names = set()
    for m in IDENT.finditer(e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        before = e[:m.start()]
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # a number's exponent or unit, like 1e3
        names.add(word)
    return names


def exported(metrics_path):
    fams = set()
    for line in read(metrics_path).splitlines():
        m = re.match(r"# TYPE ([A-Za-z_:][A-Za-z0-9_:]*) (\w+)", line)
        if m:
            fams.add(m.group(1))
            if m.group(2) == "histogram":
                fams.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
    return fams


def cmd_check(metrics_path, files):
    have = exported(metrics_path)
    if not have:
        sys.exit(f"{metrics_path}: no # TYPE line: not a /metrics text")
    bad, n = 0, 0
    for f in files:
        for where, expr in exprs_of(f):
            for name in sorted(metric_names(expr)):
                n += 1
                if name not in have and name not in PROMETHEUS_MADE:
                    print(f"FAIL: {f}: {where}: metric {name} is not exported by the verifier")
                    bad += 1
    print(f"{n} metric references checked, {bad} unknown")
    return 1 if bad or n == 0 else 0


def cmd_tested(rules_path, tests_path):
    alerts = [r["alert"] for g in groups_of(rules_path) for r in g.get("rules") or []
              if "alert" in r]
    tests = yaml.safe_load(read(tests_path)).get("tests") or []
    firing, silent = set(), set()
    for t in tests:
        for a in t.get("alert_rule_test") or []:
            (firing if a.get("exp_alerts") else silent).add(a.get("alertname"))
    bad = 0
    for a in alerts:
        for what, seen in (("firing", firing), ("silent", silent)):
            if a not in seen:
                print(f"FAIL: alert {a} has no unit test expecting it {what}")
                bad += 1
    print(f"{len(alerts)} alerts, {bad} missing tests")
    return 1 if bad or not alerts else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "rules":
        groups = groups_of(argv[1])
        with open(argv[2], "w") as f:
            yaml.safe_dump({"groups": groups}, f, sort_keys=False, width=1 << 20)
        return 0
    if len(argv) == 3 and argv[0] == "dashboard-rules":
        rules = [{"record": "kima_dashboard:panel_%d" % i, "expr": GRAFANA_VARS.sub("5m", e)}
                 for i, (_, e) in enumerate(dashboard_exprs(argv[1]))]
        with open(argv[2], "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        return 0 if rules else 1
    if len(argv) >= 2 and argv[0] == "names":
        for n in sorted(set().union(*(metric_names(e) for f in argv[1:] for _, e in exprs_of(f)))):
            print(n)
        return 0
    if len(argv) >= 3 and argv[0] == "check":
        return cmd_check(argv[1], argv[2:])
    if len(argv) == 3 and argv[0] == "tested":
        return cmd_tested(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
