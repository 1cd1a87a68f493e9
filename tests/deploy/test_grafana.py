"""deploy/grafana/mussel.json: every PromQL expression parses, and every metric and label
it names is one a real server exports (``scrape`` in conftest.py)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser

from tests.deploy.checks import DEPLOY
from tests.deploy.conftest import Scrape

DASHBOARD = DEPLOY / "grafana" / "mussel.json"

TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every scraped series (the server does not export them)."""

_GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}
_LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)$")


def load_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = _LABEL_VALUES.match(query.strip())
            assert m is not None, f"variable {var['name']}: only label_values(metric, label)"
            yield f"variable {var['name']}", f'{m.group(1)}{{{m.group(2)}=~".*"}}'


def _prepare(expr: str) -> str:
    """The expression as Prometheus receives it from Grafana."""
    for var, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    # dashboard variables ($namespace) only ever stand inside label matcher strings
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    assert "$" not in outside_strings, f"a Grafana variable outside a string: {expr}"
    return expr


def expression_problems(expr: str, scrape: Scrape) -> tuple[set[str], list[str]]:
    """(metric names used, problems): names the scrape lacks, labels their series lack."""
    try:
        ast = promql_parser.parse(_prepare(expr))
    except (ValueError, AssertionError) as exc:
        return set(), [f"does not parse: {exc}"]
    exported = scrape.sample_names()
    used: set[str] = set()
    problems: list[str] = []
    labels_in_use: set[str] = set(TARGET_LABELS)
    grouping: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names = [node.name] if node.name else []
            matchers = node.matchers.matchers if node.matchers is not None else []
            names += [m.value for m in matchers if m.name == "__name__"]
            for name in names:
                used.add(name)
                family = exported.get(name)
                if family is None:
                    problems.append(f"metric {name} is not exported")
                    continue
                known = family.labels | TARGET_LABELS
                if name.endswith("_bucket") and family.type == "histogram":
                    known = known | {"le"}
                labels_in_use.update(known)
                for m in matchers:
                    if m.name != "__name__" and m.name not in known:
                        problems.append(f"{name} has no label {m.name}")
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.extend(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                grouping.extend(matching.labels)

    promql_parser.walk(ast, pre_visit=visit)
    problems += [f"no metric it uses has label {g}" for g in grouping if g not in labels_in_use]
    return used, problems


def test_every_expression_names_only_exported_metrics_and_labels(scrape: Scrape) -> None:
    dashboard = load_dashboard()
    problems: list[str] = []
    used: set[str] = set()
    for where, expr in expressions(dashboard):
        names, found = expression_problems(expr, scrape)
        assert names, f"{where}: names no metric: {expr}"
        used |= names
        problems += [f"{where}: {p}" for p in found]
    assert problems == []
    # every family the server exports has a place on the dashboard
    families = {scrape.sample_names()[n].name for n in used}
    assert families == set(scrape.families)


def test_the_expression_check_can_fail(scrape: Scrape) -> None:
    rate = "rate(mussel_requests_total[$__rate_interval])"
    assert expression_problems(f"sum by (namespace) ({rate})", scrape)[1] == []
    assert expression_problems("rate(mussel_request_total[5m])", scrape)[1] == [
        "metric mussel_request_total is not exported"
    ]
    assert expression_problems("mussel_requests_total_bucket", scrape)[1]
    assert expression_problems("mussel_replay_lag_records_sum", scrape)[1]
    assert expression_problems('mussel_requests_total{status="500"}', scrape)[1] == [
        "mussel_requests_total has no label status"
    ]
    assert expression_problems(f"sum by (tenant) ({rate})", scrape)[1] == [
        "no metric it uses has label tenant"
    ]
    assert expression_problems(
        "mussel_requests_total / on (tenant) mussel_shed_requests_total", scrape
    )[1] == ["no metric it uses has label tenant"]
    assert expression_problems("sum(rate(mussel_requests_total[5m])", scrape)[1]  # a ( short
    broken = copy.deepcopy(load_dashboard())
    broken["panels"][1]["targets"][0]["expr"] = "sum(rate(mussel_reqs_total[5m]))"
    found = [p for _, e in expressions(broken) for p in expression_problems(e, scrape)[1]]
    assert found == ["metric mussel_reqs_total is not exported"]


def test_the_dashboard_covers_what_operators_watch() -> None:
    dashboard = load_dashboard()
    text = json.dumps(dashboard)
    titles = [p["title"] for p in all_panels(dashboard)]
    for needle in [
        "Requests per second",
        "Latency p50",
        "Latency p99",
        "Error responses",
        "Throttled",
        "Shed",
        "Replay lag",
        "Stored bytes per namespace",
        "expiration run",
    ]:
        assert any(needle.lower() in t.lower() for t in titles), needle
    assert "histogram_quantile(0.99" in text and "histogram_quantile(0.5" in text
    assert "by (le, namespace, operation)" in text


def test_the_dashboard_is_importable_json() -> None:
    """What Grafana's import needs: unique panel ids, positions, a Prometheus data source
    picked by a variable (no data source uid of someone else's Grafana)."""
    dashboard = load_dashboard()
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"]) == p["datasource"], p["title"]
