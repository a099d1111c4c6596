"""`crm triggers` against a real campaign process: a marketer creates trigger rules from flags and
from a file, lists, reads, disables, enables and deletes them; bad input is refused with the field
and the rule (exit 1) or as a bad argument (exit 2)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _json(result) -> object:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_trigger_rules_are_created_listed_disabled_enabled_and_deleted(crm_all, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    birthday_id, dormancy_id = f"birthday-{tag}", f"dormant-{tag}"
    created = _json(crm_all("triggers", "create", birthday_id, "--display-name", f"Birthday call {tag}",
                            "--event", "birthday", "--lead-days", "2", "--task", "birthday_greeting",
                            "--task-title", "Birthday greeting call", "--task-priority", "high",
                            "--cooldown-days", "300", "--output", "json"))
    assert created["name"] == f"triggerRules/{birthday_id}"
    assert created["state"] == "TRIGGER_RULE_STATE_ENABLED"
    assert created["event_type"] == "TRIGGER_EVENT_TYPE_BIRTHDAY"
    assert created["birthday"]["lead_time"] == "172800s"
    assert created["care_task_action"]["priority"] == "CARE_TASK_PRIORITY_HIGH"
    assert created["cooldown"] == f"{300 * 86400}s"

    rule_file = tmp_path / "dormancy.json"
    rule_file.write_text(json.dumps({
        "trigger_rule_id": dormancy_id, "display_name": f"Dormancy {tag}",
        "dormancy": {"inactive_for": f"{90 * 86400}s"},
        "care_task_action": {"kind": "CARE_TASK_KIND_REACTIVATION", "title": "Win back"}}), encoding="utf-8")
    from_file = crm_all("triggers", "create", "--file", str(rule_file), "--disabled")
    assert from_file.exit_code == 0, from_file.output
    assert dormancy_id in from_file.stdout and "disabled" in from_file.stdout

    table = crm_all("triggers", "list")
    assert table.exit_code == 0, table.output
    assert birthday_id in table.stdout and dormancy_id in table.stdout and "task birthday greeting" in table.stdout
    disabled = {r["trigger_rule_id"] for r in _json(crm_all("triggers", "list", "--state", "disabled",
                                                            "--output", "json"))}
    assert dormancy_id in disabled and birthday_id not in disabled
    dormancy_only = {r["trigger_rule_id"] for r in _json(crm_all("triggers", "list", "--event", "dormancy",
                                                                 "--output", "json"))}
    assert dormancy_id in dormancy_only and birthday_id not in dormancy_only

    assert _json(crm_all("triggers", "disable", birthday_id, "--output", "json"))["state"] == \
        "TRIGGER_RULE_STATE_DISABLED"
    got = _json(crm_all("triggers", "get", birthday_id, "--output", "json"))
    assert got["state"] == "TRIGGER_RULE_STATE_DISABLED"
    assert _json(crm_all("triggers", "enable", birthday_id, "--etag", got["etag"], "--output", "json"))["state"] \
        == "TRIGGER_RULE_STATE_ENABLED"
    stale = crm_all("triggers", "update", birthday_id, "--disable", "--etag", got["etag"])
    assert stale.exit_code == 1 and "ABORTED" in stale.output
    renamed = _json(crm_all("triggers", "update", birthday_id, "--display-name", f"Birthday {tag}",
                            "--output", "json"))
    assert renamed["display_name"] == f"Birthday {tag}" and renamed["state"] == "TRIGGER_RULE_STATE_ENABLED"

    deleted = crm_all("triggers", "delete", birthday_id)
    assert deleted.exit_code == 0 and f"triggerRules/{birthday_id}" in deleted.stdout
    gone = crm_all("triggers", "get", birthday_id)
    assert gone.exit_code == 1 and "NOT_FOUND" in gone.output


def test_bad_trigger_rules_name_the_field_and_rule_or_exit_2(crm_all, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    refused = crm_all("triggers", "create", f"bad-{tag}", "--event", "birthday", "--lead-days", "45",
                      "--task", "birthday_greeting", "--task-title", "Call")
    assert refused.exit_code == 1, refused.output
    assert "INVALID_ARGUMENT" in refused.output
    assert "trigger_rule.display_name" in refused.output
    assert "trigger_rule.birthday.lead_time" in refused.output and "0 to 30" in refused.output
    no_action = crm_all("triggers", "create", f"bad-{tag}", "--display-name", "No action", "--event", "payroll")
    assert no_action.exit_code == 1 and "trigger_rule.action" in no_action.output

    batch_campaign = f"batch-{tag}"
    assert crm_all("campaigns", "create", batch_campaign, "--display-name", "Batch", "--segment", "s1",
                   "--channel", "sms").exit_code == 0
    not_triggered = crm_all("triggers", "create", f"offer-{tag}", "--display-name", "Offer", "--event",
                            "card_application", "--approved-only", "--offer-campaign", batch_campaign)
    assert not_triggered.exit_code == 1 and "FAILED_PRECONDITION" in not_triggered.output

    stray = crm_all("triggers", "create", f"bad-{tag}", "--display-name", "x", "--event", "birthday",
                    "--inactive-days", "90", "--task", "other", "--task-title", "x")
    assert stray.exit_code == 2 and "--inactive-days" in stray.output
    assert crm_all("triggers", "create").exit_code == 2
    assert crm_all("triggers", "create", "x", "--event", "whenever").exit_code == 2
    assert crm_all("triggers", "update", f"bad-{tag}").exit_code == 2
    broken = tmp_path / "rule.json"
    broken.write_text("{not json", encoding="utf-8")
    assert crm_all("triggers", "create", "--file", str(broken)).exit_code == 2
    assert crm_all("triggers", "list").exit_code == 0
