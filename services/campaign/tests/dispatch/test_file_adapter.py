"""The file adapter: JSON lines per channel, deduplicated by dispatch id across restarts and torn writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_campaign.dispatch.adapters.base import OutboundMessage, Receipt
from crm_campaign.dispatch.adapters.file import FileAdapter


def message(n: int, channel: str = "SMS") -> OutboundMessage:
    return OutboundMessage(dispatch_id=f"{n:032x}", campaign_id="spring", customer_id=f"c-{n}", offer_id="td-3y",
                           channel=channel, template_id="sms-1", headline="Renew")


def lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_each_channel_gets_its_own_file_of_json_lines(tmp_path: Path) -> None:
    adapter = FileAdapter(tmp_path)
    outcomes = await adapter.send([message(1), message(2, "EMAIL"), message(3)])
    await adapter.close()
    assert [o.provider_message_id for o in outcomes if isinstance(o, Receipt)] == [
        "sms.jsonl:1", "email.jsonl:1", "sms.jsonl:2"]
    sms = lines(tmp_path / "sms.jsonl")
    assert [row["customer"] for row in sms] == ["customers/c-1", "customers/c-3"]
    assert sms[0] == {"dispatch_id": f"{1:032x}", "campaign": "campaigns/spring", "customer": "customers/c-1",
                      "offer": "campaigns/spring/offers/td-3y", "channel": "SMS", "template_id": "sms-1",
                      "headline": "Renew"}
    assert [row["customer"] for row in lines(tmp_path / "email.jsonl")] == ["customers/c-2"]


async def test_a_dispatch_handed_over_again_is_not_written_again_even_after_a_restart(tmp_path: Path) -> None:
    first = FileAdapter(tmp_path)
    [receipt] = await first.send([message(1)])
    again = await first.send([message(1), message(2)])
    await first.close()
    restarted = FileAdapter(tmp_path)
    after_restart = await restarted.send([message(1), message(2), message(3)])
    await restarted.close()
    assert again[0] == Receipt(receipt.provider_message_id, duplicate=True)  # type: ignore[union-attr]
    assert [o.duplicate for o in after_restart if isinstance(o, Receipt)] == [True, True, False]
    assert [row["customer"] for row in lines(tmp_path / "sms.jsonl")] == ["customers/c-1", "customers/c-2",
                                                                          "customers/c-3"]


async def test_a_torn_last_line_from_a_crash_is_cut_and_that_message_written_whole(tmp_path: Path) -> None:
    adapter = FileAdapter(tmp_path)
    await adapter.send([message(1)])
    await adapter.close()
    with (tmp_path / "sms.jsonl").open("ab") as file:
        file.write(b'{"dispatch_id":"' + f"{2:032x}".encode())  # the crash came mid-line
    restarted = FileAdapter(tmp_path)
    [outcome] = await restarted.send([message(2)])
    await restarted.close()
    assert isinstance(outcome, Receipt) and not outcome.duplicate
    assert [row["customer"] for row in lines(tmp_path / "sms.jsonl")] == ["customers/c-1", "customers/c-2"]


async def test_a_second_process_cannot_write_the_same_directory(tmp_path: Path) -> None:
    owner = FileAdapter(tmp_path)
    await owner.send([message(1)])
    intruder = FileAdapter(tmp_path)
    with pytest.raises(RuntimeError, match="held by another dispatcher"):
        await intruder.send([message(2)])
    await owner.close()
    await intruder.close()
