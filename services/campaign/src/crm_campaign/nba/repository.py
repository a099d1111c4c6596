"""All SQL of next best action: one customer's facts from the read models and campaign's own
records, and the decisions. Never commits a caller's unit of work.

The answer is on the hot path of a customer waiting at a counter or in the app, so its two
statements (the customer's facts, the stored decision) are hand-written SQL on `Database.raw()`
(crmkit.db's documented exception): one round trip each, no BEGIN, no SQLAlchemy bridge. The
facts are one statement, so they come from one snapshot. The stamp of the running campaigns rides
along, so the service's catalogue of them (`catalogue.RunningCampaigns`) is checked per request.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_campaign.audience.inputs import ARBITRATION_WINDOW, PENDING, PLANNED_OR_MADE
from crm_campaign.campaigns.model import CampaignState, CampaignType, Money
from crm_campaign.engagement.model import ResponseType
from crm_campaign.nba.model import Action, CustomerFacts, Decision, Excluded, Reason
from crm_campaign.nba.rules import TRIGGERED_FOLLOW_UP
from crm_campaign.nba.tables import nba_decision as t
from crm_campaign.propensity.model import LatestVersion
from crmkit.db import UnitOfWork

RUNNING = int(CampaignState.RUNNING)
TRIGGERED = int(CampaignType.TRIGGERED)
SHOWN, DECLINED, OPTED_OUT = int(ResponseType.SHOWN), int(ResponseType.DECLINED), int(ResponseType.OPTED_OUT)

# $1 customer id, $2 dispatch states that are or will be contacts, $3 start of the caps' horizon,
# $4 pending dispatch states, $5 start of the arbitration window, $6 start of the triggered
# offers' follow-up window.
_FACTS = f"""
SELECT c.customer_id IS NOT NULL OR b.customer_id IS NOT NULL AS has_contact,
       coalesce(c.do_not_contact, false) AS do_not_contact,
       coalesce(c.consented_channels, '{{}}') AS consented_channels,
       coalesce(c.preferred_channel, 0) AS preferred_channel,
       coalesce(c.held_products, '{{}}') AS held_products,
       coalesce(b.relationship_manager_id, '') AS relationship_manager_id,
       EXISTS (SELECT 1 FROM open_complaint o WHERE o.customer_id = $1) AS open_complaint,
       ARRAY(SELECT m.segment_id FROM segment_member m WHERE m.customer_id = $1) AS segments,
       (SELECT string_agg(k.campaign_id || ':' || k.version, ',' ORDER BY k.campaign_id)
          FROM campaign k WHERE k.state = {RUNNING}) AS running_stamp,
       (SELECT json_agg(json_build_array(d.campaign_id, d.channel, coalesce(d.sent_at, d.created_at)))
          FROM dispatch d
         WHERE d.customer_id = $1 AND d.state = ANY($2::smallint[])
           AND coalesce(d.sent_at, d.created_at) > $3) AS contacts,
       (SELECT json_agg(json_build_array(r.campaign_id, r.channel, r.type, r.response_time))
          FROM offer_response r
         WHERE r.customer_id = $1
           AND (r.type IN ({DECLINED}, {OPTED_OUT}) OR (r.type = {SHOWN} AND r.response_time > $3))) AS responses,
       (SELECT json_agg(json_build_array(d.campaign_id, d.offer_id, d.state,
                                          coalesce(d.arbitration_score, f.priority * f.expected_value_amount)))
          FROM dispatch d
          JOIN campaign k ON k.campaign_id = d.campaign_id
          JOIN offer f ON f.campaign_id = d.campaign_id AND f.offer_id = d.offer_id
         WHERE d.customer_id = $1 AND k.state = {RUNNING}
           AND (d.state = ANY($4::smallint[]) OR (d.state = ANY($2::smallint[]) AND d.sent_at > $5))) AS rivals,
       (SELECT json_agg(json_build_array(d.campaign_id, d.offer_id, d.channel, coalesce(d.sent_at, d.created_at)))
          FROM dispatch d
          JOIN campaign k ON k.campaign_id = d.campaign_id
         WHERE d.customer_id = $1 AND k.state = {RUNNING} AND k.type = {TRIGGERED}
           AND d.state = ANY($2::smallint[]) AND coalesce(d.sent_at, d.created_at) > $6) AS triggered,
       (SELECT features::text FROM customer_feature WHERE customer_id = $1) AS features,
       (SELECT json_agg(json_build_array(p.offer_type, p.version, p.artifact_sha256))
          FROM (SELECT DISTINCT ON (offer_type) offer_type, version, artifact_sha256
                  FROM propensity_model ORDER BY offer_type, version DESC) AS p) AS models
  FROM (SELECT 1) AS one
  LEFT JOIN customer_contact c ON c.customer_id = $1
  LEFT JOIN customer_manager b ON b.customer_id = $1
"""  # noqa: S608 (constants only; every value is a parameter)

_INSERT = f"""
INSERT INTO {t.name} (decision_id, customer_id, channel, requester, degraded_reasons, actions, excluded, created_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)
"""  # noqa: S608 (constants only)


class DecisionRepository:
    async def facts(self, connection: asyncpg.Connection, customer_id: str, *, now: datetime, horizon: timedelta
                    ) -> tuple[CustomerFacts, str]:
        """The customer's facts (`known` False when neither profile's nor segment's feed has named
        them; the manager is the books', `customer_manager`), with their contacts within `horizon`,
        and the stamp of the running campaigns."""
        row = await connection.fetchrow(_FACTS, customer_id, list(PLANNED_OR_MADE), now - horizon, list(PENDING),
                                        now - ARBITRATION_WINDOW, now - TRIGGERED_FOLLOW_UP)
        assert row is not None  # one row, always
        segments = frozenset(f"segments/{s}" for s in row["segments"])
        contacts = [(c, ch, datetime.fromisoformat(at)) for c, ch, at in json.loads(row["contacts"] or "[]")]
        opted_out: set[int] = set()
        declined: set[str] = set()
        for campaign_id, channel, type_, at in json.loads(row["responses"] or "[]"):
            if type_ == SHOWN:
                contacts.append((campaign_id, channel, datetime.fromisoformat(at)))
            elif type_ == DECLINED:
                declined.add(campaign_id)
            else:
                opted_out.add(channel)
        facts = CustomerFacts(
            customer_id=customer_id, known=row["has_contact"] or bool(segments),
            relationship_manager_id=row["relationship_manager_id"], segments=segments,
            held_products=frozenset(row["held_products"]), do_not_contact=row["do_not_contact"],
            open_complaint=row["open_complaint"], consented_channels=frozenset(row["consented_channels"]),
            preferred_channel=row["preferred_channel"], contacts=tuple(contacts),
            opted_out_channels=frozenset(opted_out), declined_campaigns=frozenset(declined),
            dispatched=tuple((c, o, float(score), state not in PENDING)
                             for c, o, state, score in json.loads(row["rivals"] or "[]")),
            triggered=tuple((c, o, ch, datetime.fromisoformat(at))
                            for c, o, ch, at in json.loads(row["triggered"] or "[]")),
            features=json.loads(row["features"]) if row["features"] is not None else None,
            models=tuple(LatestVersion(t, v, sha) for t, v, sha in json.loads(row["models"] or "[]")))
        return facts, row["running_stamp"] or ""

    async def insert(self, connection: asyncpg.Connection, decision: Decision, now: datetime) -> Decision:
        """One statement on its own (autocommit): the decision is durable before it is answered."""
        await connection.execute(
            _INSERT, decision.decision_id, decision.customer_id, decision.channel, decision.requester,
            list(decision.degraded_reasons), json.dumps([_action_to_json(a) for a in decision.actions]),
            json.dumps([_excluded_to_json(e) for e in decision.excluded]), now)
        return dataclasses.replace(decision, created_at=now)

    async def get(self, uow: UnitOfWork, decision_id: str) -> Decision | None:
        row = (await uow.execute(sa.select(t).where(t.c.decision_id == decision_id))).first()
        if row is None:
            return None
        return Decision(decision_id=row.decision_id, customer_id=row.customer_id, channel=row.channel,
                        requester=row.requester, actions=tuple(_action_from_json(a) for a in row.actions),
                        excluded=tuple(Excluded(**e) for e in row.excluded),
                        degraded_reasons=tuple(row.degraded_reasons), created_at=row.created_at)


def _action_to_json(action: Action) -> dict[str, Any]:
    value = action.expected_value
    return {"rank": action.rank, "campaign_id": action.campaign_id, "offer_id": action.offer_id,
            "product_code": action.product_code, "headline": action.headline, "template_id": action.template_id,
            "score": action.score,
            "expected_value": [value.currency_code, str(value.amount)] if value is not None else None,
            "reasons": [[r.code, r.description, r.weight] for r in action.reasons],
            "propensity": action.propensity, "propensity_model": action.propensity_model}


def _action_from_json(data: dict[str, Any]) -> Action:
    value = data["expected_value"]
    return Action(rank=data["rank"], campaign_id=data["campaign_id"], offer_id=data["offer_id"],
                  product_code=data["product_code"], headline=data["headline"], template_id=data["template_id"],
                  score=data["score"], expected_value=Money(value[0], Decimal(value[1])) if value else None,
                  reasons=tuple(Reason(code, description, weight) for code, description, weight in data["reasons"]),
                  propensity=data.get("propensity", 0.0), propensity_model=data.get("propensity_model", ""))


def _excluded_to_json(excluded: Excluded) -> dict[str, Any]:
    return {"campaign_id": excluded.campaign_id, "offer_id": excluded.offer_id,
            "product_code": excluded.product_code, "reason": excluded.reason, "description": excluded.description}
