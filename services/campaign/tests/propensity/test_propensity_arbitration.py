"""Propensity models feeding arbitration, channel choice and next best action, through the
service: two campaigns compete for the same customers; students take loans (on the app) and
retired customers take deposits, as a small deterministic contact history says. Before the models
are trained the observed-rate fallback gives the deposit (worth more) to everyone; afterwards the
models give students the loan, on the app, naming the model on each dispatch and action. A model
version whose bytes fail their hash check is refused and the build goes on with the fallback."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from google.type import decimal_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import contact_import_pb2 as ci
from crm.campaign.v1 import propensity_pb2 as pp
from crm.common.v1 import audit_pb2, change_event_pb2, operation_pb2
from crm.profile.v1 import customer_pb2
from crm_campaign.propensity import customer_features
from crmkit.auth import Role
from crmkit.testing import bearer

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
APP_USER = bearer(Role.CHANNEL_APP, subject="mobile-app")
SMS, APP = campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_MOBILE_APP
S = audience_pb2
BY_RESPONSE = campaign_pb2.CHANNEL_STRATEGY_PREFERENCE_AND_RESPONSE
NO_HOLDOUT = campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))


def occupation(i: int) -> str:
    return "student" if i % 2 == 0 else "retired"


def history(tag: str) -> tuple[str, str]:
    """(deposit calls, loan calls): 800 each, outcomes fixed by position.
    Deposits: retired accept 3 in 5, students 1 in 5, by SMS only.
    Loans: students accept 4 in 5 on the app and 1 in 5 by SMS, retired 1 in 10 on either."""
    deposit, loan = ["id;channel;y\n"], ["id;channel;y\n"]
    for i in range(800):
        k = (i // 2) % 10
        took = k < 6 if occupation(i) == "retired" else k < 2
        deposit.append(f"{tag}-d{i};sms;{'yes' if took else 'no'}\n")
        on_app = (i // 20) % 2 == 0
        took = (k < 8 if on_app else k < 2) if occupation(i) == "student" else k < 1
        loan.append(f"{tag}-l{i};{'app' if on_app else 'sms'};{'yes' if took else 'no'}\n")
    return "".join(deposit), "".join(loan)


async def finished(campaigns: Any, started: operation_pb2.Operation) -> operation_pb2.Operation:
    final = started
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=ANALYST,
                                                 timeout=180):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    return final


async def import_calls(campaigns: Any, content: str, offer_type: str) -> None:
    channels = {"sms": "SMS", "app": "MOBILE_APP"}
    columns = [ci.ContactColumnMapping(column="channel", field="channel", value_map=channels),
               ci.ContactColumnMapping(column="y", field="outcome", value_map={"yes": "ACCEPTED", "no": "DECLINED"})]
    started = (await campaigns.ImportContactHistory(ci.ImportContactHistoryRequest(
        file_name="calls.csv", content=content.encode(), csv_options=ci.ContactCsvOptions(delimiter=";"),
        mapping=ci.ContactImportMapping(customer_id=ci.ContactCustomerIdMapping(column="id"), offer_type=offer_type,
                                        columns=columns),
        mode=ci.CONTACT_IMPORT_MODE_STRICT, source_system="test-arbitration"), metadata=MARKETER)).operation
    await finished(campaigns, started)


async def train(campaigns: Any, offer_type: str) -> pp.PropensityModel:
    started = (await campaigns.TrainPropensityModel(pp.TrainPropensityModelRequest(
        offer_type=offer_type, seed=1, request_id=str(uuid.uuid4())), metadata=ANALYST)).operation
    model = pp.PropensityModel()
    assert (await finished(campaigns, started)).response.Unpack(model)
    return model


async def set_features(runtime: Any, customers: dict[str, str]) -> None:
    """Customer events from profile, as campaign's follower applies them: each one's occupation."""
    async with runtime.db.unit_of_work() as uow:
        for customer_id, job in customers.items():
            packed = any_pb2.Any()
            packed.Pack(customer_pb2.Customer(name=f"customers/{customer_id}", customer_id=customer_id,
                                              occupation=job))
            await customer_features.apply(uow, change_event_pb2.ChangeEvent(
                resource_type=customer_features.CUSTOMER_TYPE, resource_name=f"customers/{customer_id}",
                change_type=change_event_pb2.CHANGE_TYPE_UPDATED, payload=packed))


async def build(campaigns: Any, name: str) -> audience_pb2.AudienceBuild:
    started = (await campaigns.BuildAudience(pb.BuildAudienceRequest(name=name, request_id=str(uuid.uuid4())),
                                             metadata=MARKETER)).operation
    result = audience_pb2.AudienceBuild()
    assert (await finished(campaigns, started)).response.Unpack(result)
    return result


async def dispatches(campaigns: Any, name: str) -> dict[str, audience_pb2.Dispatch]:
    found = (await campaigns.ListDispatches(pb.ListDispatchesRequest(parent=name, page_size=1000),
                                            metadata=ANALYST)).dispatches
    return {d.customer.removeprefix("customers/"): d for d in found}


def winner_of(lost: audience_pb2.Dispatch) -> str:
    info = error_details_pb2.ErrorInfo()
    assert lost.last_error.details[0].Unpack(info)
    return info.metadata["winner_offer"]


async def compete(campaigns: Any, running_campaign: Any, new_campaign: Any, new_offer: Any, cny: Any,
                  seed_read_models: Any, runtime: Any, tag: str, round_: str, types: tuple[str, str]
                  ) -> tuple[tuple[str, str], tuple[str, str], list[str]]:
    """A deposit campaign built first, then a loan campaign, on a fresh segment of 10 customers
    (even ones students); the two campaigns' and offers' names and the customers."""
    segment = f"seg-{tag}-{round_}"
    customers = [f"{tag}-{round_}-{n}" for n in range(10)]
    await seed_read_models(segment, customers)
    await set_features(runtime, {c: occupation(n) for n, c in enumerate(customers)})
    made = []
    for offer_type, value in ((types[0], 100), (types[1], 80)):
        campaign, [offer] = await running_campaign(
            new_campaign(segment=f"segments/{segment}", control_group=NO_HOLDOUT,
                         contact_policy=campaign_pb2.ContactPolicy(channels=[SMS, APP], channel_strategy=BY_RESPONSE)),
            new_offer(priority=50, expected_value=cny(value), offer_type=offer_type))
        await build(campaigns, campaign.name)
        made.append((campaign.name, offer.name))
    return made[0], made[1], customers


async def test_models_change_the_arbitration_winner_and_the_channel(
        campaigns, campaign_service, running_campaign, new_campaign, new_offer, cny, seed_read_models) -> None:
    _, runtime = campaign_service
    tag = uuid.uuid4().hex[:8]
    types = (f"dep-{tag}", f"loan-{tag}")
    args = (campaigns, running_campaign, new_campaign, new_offer, cny, seed_read_models, runtime, tag)

    # No model yet: the observed rate (the default: nothing sent yet) decides, so priority x value: the deposit.
    (deposit1, deposit_offer1), (loan1, _), customers1 = await compete(*args, "before", types)
    for customer in customers1:
        kept, lost = (await dispatches(campaigns, deposit1))[customer], (await dispatches(campaigns, loan1))[customer]
        assert (kept.state, kept.propensity_model, kept.channel) == (S.DISPATCH_STATE_QUEUED, "", SMS)
        assert (lost.suppression_reason, winner_of(lost)) == (S.SUPPRESSION_REASON_ARBITRATION_LOST, deposit_offer1)

    deposit_calls, loan_calls = history(tag)
    await import_calls(campaigns, deposit_calls, types[0])
    await import_calls(campaigns, loan_calls, types[1])
    await set_features(runtime, {f"{tag}-{kind}{i}": occupation(i) for i in range(800) for kind in "dl"})
    deposit_model, loan_model = await train(campaigns, types[0]), await train(campaigns, types[1])
    assert "customer.occupation" in loan_model.features and "channel" in loan_model.features
    assert "channel" not in deposit_model.features  # every deposit call was by SMS

    # With the models: students get the loan, on the app the model prefers; retired customers keep the deposit.
    (deposit2, deposit_offer2), (loan2, loan_offer2), customers2 = await compete(*args, "after", types)
    deposits, loans = await dispatches(campaigns, deposit2), await dispatches(campaigns, loan2)
    for n, customer in enumerate(customers2):
        if occupation(n) == "student":
            assert (loans[customer].state, loans[customer].channel, loans[customer].channel_reason) == (
                S.DISPATCH_STATE_QUEUED, APP, S.CHANNEL_CHOICE_REASON_RESPONSE_PROPENSITY)
            assert loans[customer].propensity_model == loan_model.name
            assert deposits[customer].suppression_reason == S.SUPPRESSION_REASON_ARBITRATION_LOST
            assert winner_of(deposits[customer]) == loan_offer2, "the queued deposit was displaced"
        else:
            assert deposits[customer].state == S.DISPATCH_STATE_QUEUED
            assert deposits[customer].propensity_model == deposit_model.name
            assert winner_of(loans[customer]) == deposit_offer2

    # Next best action scores with the same function and the stored scores of rival dispatches.
    student, retired = customers2[0], customers2[1]
    answer = await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{student}", channel=APP, audit=audit_pb2.AuditContext(
            purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)), metadata=APP_USER)
    [action] = answer.actions
    assert (action.offer, action.propensity_model) == (loan_offer2, loan_model.name)
    assert 0.5 < action.propensity < 1 and abs(action.score - 50 * 80 * action.propensity) < 1e-6
    assert "RESPONSE_PROPENSITY" in [r.code for r in action.reasons]
    assert {e.offer: e.reason for e in answer.excluded} == {deposit_offer2: "ARBITRATION_LOST"}
    answer = await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
        customer=f"customers/{retired}", channel=APP, audit=audit_pb2.AuditContext(
            purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)), metadata=APP_USER)
    assert [(a.offer, a.propensity_model) for a in answer.actions] == [(deposit_offer2, deposit_model.name)]

    # A newer loan version whose bytes do not match its registered hash: refused, never unpickled;
    # the build goes on with the observed rate for the loan: a probability like the model's (the
    # bank-wide default, no loan has been sent yet), so the deposit model's scores keep every customer.
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.text(
            "INSERT INTO propensity_model (offer_type, version, algorithm, features, metrics, data_fingerprint, seed, "
            "artifact, artifact_sha256, creator) SELECT offer_type, version + 1, algorithm, features, metrics, "
            "data_fingerprint, seed, artifact, repeat('0', 64), creator FROM propensity_model "
            "WHERE offer_type = :t AND version = 1"), {"t": types[1]})
    (deposit3, _), (loan3, _), customers3 = await compete(*args, "refused", types)
    loans = await dispatches(campaigns, loan3)
    assert {(d.state, d.suppression_reason, d.propensity_model) for d in loans.values()} == {
        (S.DISPATCH_STATE_SUPPRESSED, S.SUPPRESSION_REASON_ARBITRATION_LOST, "")}
    assert len(loans) == len(customers3)
    deposits = await dispatches(campaigns, deposit3)
    assert {(d.state, d.propensity_model) for d in deposits.values()} == {(S.DISPATCH_STATE_QUEUED, deposit_model.name)}
