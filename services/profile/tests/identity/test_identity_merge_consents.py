"""The consent-aware merge against its contract (`ConsentConflict` in identity.proto), for every
combination of the two customers' states: first the pure reconciliation, then one merge through
the real server with each combination on its own purpose x channel, and its exact unmerge."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import audit_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import identity_pb2 as i
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.consents import rules
from crm_profile.consents.model import OPT_IN, OPT_OUT, SOURCE_MERGE, ConsentEvidence, ConsentRecord
from crmkit.auth import Role
from crmkit.testing import bearer

IN, OUT, EXP = c.CONSENT_STATUS_OPTED_IN, c.CONSENT_STATUS_OPTED_OUT, c.CONSENT_STATUS_EXPIRED
SURVIVOR, SOURCE = "survivor", "source"  # whose deciding record took effect later


class Case(NamedTuple):
    survivor: int | None  # the survivor's status before the merge; None: no record
    source: int | None
    later: str | None  # whose record took effect later, when both have one
    conflict_result: int | None  # the reported conflict's result_status; None: no conflict
    merge_opt_out: bool  # a MERGE-sourced opt-out is appended to the survivor's ledger
    after: int  # the survivor's status after the merge


CASES = [
    Case(IN, None, None, OUT, True, OUT),  # absence beats an opt-in
    Case(OUT, None, None, None, False, OUT),
    Case(EXP, None, None, None, False, EXP),
    Case(None, IN, None, OUT, True, OUT),
    Case(None, OUT, None, None, False, OUT),
    Case(None, EXP, None, None, False, EXP),
    Case(IN, IN, SURVIVOR, None, False, IN),
    Case(IN, IN, SOURCE, None, False, IN),
    Case(IN, OUT, SURVIVOR, OUT, True, OUT),
    Case(IN, OUT, SOURCE, OUT, True, OUT),  # issue 9 #11: the ledger must say why it changed
    Case(IN, EXP, SURVIVOR, OUT, True, OUT),
    Case(IN, EXP, SOURCE, OUT, True, OUT),
    Case(OUT, IN, SURVIVOR, OUT, False, OUT),  # the survivor's own later opt-out still decides
    Case(OUT, IN, SOURCE, OUT, True, OUT),  # the source's later opt-in must not widen consent
    Case(EXP, IN, SURVIVOR, EXP, False, EXP),
    Case(EXP, IN, SOURCE, OUT, True, OUT),
    Case(OUT, OUT, SURVIVOR, None, False, OUT),
    Case(OUT, OUT, SOURCE, None, False, OUT),
    Case(OUT, EXP, SURVIVOR, None, False, OUT),
    Case(OUT, EXP, SOURCE, None, False, EXP),
    Case(EXP, OUT, SURVIVOR, None, False, EXP),
    Case(EXP, OUT, SOURCE, None, False, OUT),
    Case(EXP, EXP, SURVIVOR, None, False, EXP),
    Case(EXP, EXP, SOURCE, None, False, EXP),
]
PAIRS = list(itertools.product(range(1, 6), range(1, 9)))  # every purpose x channel
assert len(CASES) <= len(PAIRS)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EARLIER, LATER = timedelta(days=20), timedelta(days=10)  # how long ago each record took effect
EXPIRED_AGO = timedelta(days=2)


def _ago(case: Case, side: str) -> timedelta:
    return EARLIER if case.later not in (None, side) else LATER


def _record(customer_id: str, pair: tuple[int, int], status: int, ago: timedelta, *, now: datetime,
            seq: int) -> ConsentRecord:
    effective = now - ago
    return ConsentRecord(
        customer_id=customer_id, purpose=pair[0], channel=pair[1], decision=OPT_OUT if status == OUT else OPT_IN,
        evidence=ConsentEvidence(source=1, source_reference="FORM-1", effective_at=effective,
                                 text_version="MKT-1", recorded_by="emp-1"),
        expire_at=now - EXPIRED_AGO if status == EXP else None, record_id=uuid.uuid4(), recorded_at=effective,
        seq=seq)


@pytest.mark.parametrize("case", CASES, ids=lambda x: f"{x.survivor}-{x.source}-{x.later}")
def test_reconcile_follows_the_contract_on_every_combination(case: Case) -> None:
    pair = (1, 1)
    mine = [_record("K", pair, case.survivor, _ago(case, SURVIVOR), now=NOW, seq=1)] if case.survivor else []
    theirs = [_record("S", pair, case.source, _ago(case, SOURCE), now=NOW, seq=2)] if case.source else []
    merged = rules.reconcile(mine, theirs, now=NOW)

    expected = [] if case.conflict_result is None else [
        (case.survivor or 0, case.source or 0, case.conflict_result)]
    assert [(x.survivor_status, x.source_status, x.result_status) for x in merged.conflicts] == expected
    assert merged.opt_outs == ((pair,) if case.merge_opt_out else ())
    appended = [ConsentRecord(customer_id="K", purpose=p, channel=ch, decision=OPT_OUT, evidence=ConsentEvidence(
        source=SOURCE_MERGE, source_reference="merge", effective_at=NOW, text_version="", recorded_by="steward"),
        recorded_at=NOW, seq=3) for p, ch in merged.opt_outs]
    assert rules.derive([*mine, *theirs, *appended], now=NOW)[pair].status == case.after


# --- the same table through MergeCustomers and UnmergeCustomers ------------------------------------

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="DQ-2026-7")
ADMIN = bearer(Role.ADMIN, Role.AUDITOR, subject="steward-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def _message(pair: tuple[int, int], status: int, ago: timedelta, now: datetime) -> c.ConsentRecord:
    record = c.ConsentRecord(
        purpose=pair[0], channel=pair[1],  # type: ignore[arg-type]
        decision=c.CONSENT_DECISION_OPT_OUT if status == OUT else c.CONSENT_DECISION_OPT_IN,
        evidence=c.ConsentEvidence(source=c.CONSENT_SOURCE_BRANCH_FORM, effective_time=_stamp(now - ago),
                                   text_version="MKT-1", recorded_by="emp-1"))
    if status == EXP:
        record.expire_time.CopyFrom(_stamp(now - EXPIRED_AGO))
    return record


async def _ledger(profile, parent):  # type: ignore[no-untyped-def]
    states = await profile.ListConsents(c.ListConsentsRequest(parent=parent, page_size=1000, audit=AUDIT),
                                        metadata=ADMIN)
    history = await profile.ListConsentHistory(c.ListConsentHistoryRequest(parent=parent, page_size=1000,
                                                                           audit=AUDIT), metadata=ADMIN)
    return {(s.purpose, s.channel): s.status for s in states.states}, list(history.consents)


async def test_a_merge_and_its_unmerge_follow_the_contract_on_every_purpose_and_channel(profile,
                                                                                         new_customer) -> None:
    survivor, source = [(await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer(
        full_name=f"Consent Table {uuid.uuid4().hex[:6]}", mobile_phone="", email="")), metadata=RM)).customer
        for _ in range(2)]
    now = datetime.now(UTC)
    placed = list(zip(PAIRS, CASES, strict=False))
    for customer, side in ((survivor, SURVIVOR), (source, SOURCE)):
        records = [_message(pair, getattr(case, side), _ago(case, side), now) for pair, case in placed
                   if getattr(case, side)]
        await profile.RecordConsent(c.RecordConsentRequest(parent=customer.name, consents=records, audit=AUDIT),
                                    metadata=RM)
    before = {x.name: await _ledger(profile, x.name) for x in (survivor, source)}

    merge = (await profile.MergeCustomers(i.MergeCustomersRequest(
        name=survivor.name, source_customer=source.name, audit=AUDIT), metadata=ADMIN)).merge

    states, history = await _ledger(profile, survivor.name)
    assert states == {pair: case.after for pair, case in placed}
    assert {(x.purpose, x.channel, x.survivor_status, x.source_status, x.result_status)
            for x in merge.consent_conflicts} == {
        (*pair, case.survivor or 0, case.source or 0, case.conflict_result)
        for pair, case in placed if case.conflict_result is not None}
    merge_records = [x for x in history if x.evidence.source == c.CONSENT_SOURCE_MERGE]
    assert sorted((x.purpose, x.channel) for x in merge_records) == [
        pair for pair, case in placed if case.merge_opt_out]
    assert all(x.decision == c.CONSENT_DECISION_OPT_OUT and x.evidence.source_reference == merge.name
               for x in merge_records)

    await profile.UnmergeCustomers(i.UnmergeCustomersRequest(name=source.name, audit=AUDIT), metadata=ADMIN)
    assert {x.name: await _ledger(profile, x.name) for x in (survivor, source)} == before
