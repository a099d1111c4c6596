"""deploy/monitoring/prometheus-rules.yaml is a rule file a Prometheus loads (the structure
`promtool check rules` checks: groups, one of record/alert per rule, valid names and durations,
balanced expressions), its alerts state the SLOs of docs/operations.md, every metric it reads is one
the platform emits (or is named as not emitted yet and watched by an absent() alert), and every
runbook link lands on a heading of docs/operations.md. With `promtool` on the PATH it also runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_deploy_components import collector_config

REPOSITORY = Path(__file__).resolve().parents[2]
RULES = REPOSITORY / "deploy" / "monitoring" / "prometheus-rules.yaml"
OPERATIONS = REPOSITORY / "docs" / "operations.md"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
# Emitted by the kit's peer-feed follower (crm.peer_feed.lag, seconds): main's crmkit.peer_feed.
PEER_FEED_LAG = "crm_peer_feed_lag_seconds"


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_file_has_the_shape_prometheus_loads() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names)), "group names are unique"
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert group["rules"]
        if "interval" in group:
            assert DURATION.match(group["interval"])
        for rule in group["rules"]:
            assert ("record" in rule) != ("alert" in rule), rule
            allowed = {"record", "expr", "labels"} if "record" in rule else {
                "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert set(rule) <= allowed, rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
            assert rule["expr"].count("{") == rule["expr"].count("}"), rule["expr"]
            if "record" in rule:
                assert METRIC_NAME.match(rule["record"]) and rule["record"].count(":") == 2, rule["record"]
            else:
                assert re.fullmatch(r"Crm[A-Z][A-Za-z0-9]+", rule["alert"])
                assert "for" not in rule or DURATION.match(rule["for"])
                assert rule["labels"]["severity"] in {"page", "ticket"}
                assert rule["annotations"]["summary"]


def test_alerts_read_only_recorded_series_and_emitted_metrics() -> None:
    text = RULES.read_text()
    recorded = {r["record"] for r in rules() if "record" in r}
    namespace = collector_config()["connectors"]["spanmetrics"]["namespace"]
    emitted = {f"{namespace}_calls_total", f"{namespace}_duration_milliseconds_bucket", PEER_FEED_LAG}
    not_yet = set(re.findall(r"^#\s+(\w+)\s+NOT EMITTED YET", text, flags=re.MULTILINE))
    assert not_yet == {"crm_feedback_complaint_sla_breaches_total", "crm_risk_alert_sla_breaches_total"}
    for rule in rules():
        expression = re.sub(r'"[^"]*"', '""', rule["expr"])  # label values are not metric names
        for name in re.findall(r"(?<![\w:])(crm[a-zA-Z0-9_:]*[a-zA-Z0-9_])", expression):
            assert name in recorded | emitted | not_yet, f"{rule.get('alert') or rule['record']} reads unknown {name}"
    watched = next(r for r in rules() if r.get("alert") == "CrmSlaMetricMissing")["expr"]
    assert all(f"absent({name})" in watched for name in not_yet), "a missing metric must not go unnoticed"


def test_the_slos_are_stated() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    budget = "0.001"  # 99.9 % availability
    assert budget in alerts["CrmAvailabilityFastBurn"]["expr"] and "14.4" in alerts["CrmAvailabilityFastBurn"]["expr"]
    assert budget in alerts["CrmAvailabilitySlowBurn"]["expr"]
    assert alerts["CrmAvailabilityFastBurn"]["labels"]["severity"] == "page"
    assert re.search(r"> 500$", alerts["CrmRouteLatencyP99"]["expr"].strip())
    p99 = next(r for r in rules() if r.get("record") == "crm:server_latency_p99_ms:rate5m")["expr"]
    assert "histogram_quantile(0.99" in p99 and "span_name" in p99, "p99 per route"
    assert "crm_peer_feed_lag_seconds" in alerts["CrmChangeFeedLagging"]["expr"]
    assert "complaint_sla" in alerts["CrmComplaintSlaBreached"]["expr"]
    assert "alert_sla" in alerts["CrmAlertSlaBreached"]["expr"]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_link_lands_on_a_heading() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    for rule in rules():
        if "alert" in rule:
            url = rule["annotations"]["runbook_url"]
            path, _, anchor = url.partition("#")
            assert path == "docs/operations.md" and anchor in anchors, f"{rule['alert']}: {url} leads nowhere"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed: the file's shape is "
                    "checked above, not by Prometheus itself")
def test_promtool_loads_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
