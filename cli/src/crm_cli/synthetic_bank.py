"""A synthetic retail bank for demos and benchmarks: customers (from `demo_data`), what they hold,
how they transact, what they consented to, and a churn pattern a model can learn.

Deterministic by seed: the same seed and size give the same bank, laid out back from the start
of the day it is generated, so "active in the last 30 days" means something on any day. Shapes,
each chosen so the platform's features have something to find:

- **Value is concentrated**: assets are log-normal (sigma 1.5), so the top 20 % of customers hold
  roughly three quarters of the value, as in a real retail book.
- **Products** follow wealth and age: every customer has a current account; savings, term
  deposits (maturing over the next year, some within 30 days), wealth products with risk levels
  R1-R5 in their product code, cards, personal loans and mortgages; about half take their
  salary here (monthly payroll credits).
- **Behaviour**: transactions and mobile logins over the last 180 days at a rate set by each
  customer's engagement.
- **Churn**: about 15 % of individuals are leaving. Their activity dies away over the last 90
  days, their payroll stops and some holdings close. That is the pattern a churn model learns.
- **Consents with gaps**: marketing opt-ins per channel at realistic rates, some opt-outs.
- **Feedback**: complaints (leavers complain more often) and answers to two demo surveys (a
  branch-visit NPS and a mobile-transfer CES), each about one of the customer's own branch or
  mobile transactions (`events/{event_id}`), leavers' scores lower.
- **Duplicates**: every 20th individual also registered on the mobile app under another id
  (`demo_data.mobile_duplicate`), for identity resolution to find.

Nothing here is a real person (see `demo_data`). Never dispatch campaigns to demo contacts.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, survey_pb2
from crm.profile.v1 import consent_pb2, customer_pb2, event_pb2, holding_pb2
from crm_cli import demo_data

SEED = demo_data.SEED
HISTORY_DAYS = 180
CHURN_SHARE = 0.15
# Leavers stop gradually over this many days before `today`.
CHURN_FADE_DAYS = 90
CURRENCY = "CNY"
SOURCE = "core-banking"
EVENT_NAMESPACE = uuid.UUID("0b7f4c8e-2d4a-4c1e-9a57-5d0d2b6f9a31")

# Marketing opt-in rate per channel (the rest: no decision recorded, or an opt-out).
OPT_IN_RATES = {consent_pb2.CONTACT_CHANNEL_SMS: 0.62, consent_pb2.CONTACT_CHANNEL_EMAIL: 0.41,
                consent_pb2.CONTACT_CHANNEL_WECHAT: 0.53, consent_pb2.CONTACT_CHANNEL_PHONE_CALL: 0.22,
                consent_pb2.CONTACT_CHANNEL_MOBILE_APP: 0.58}
OPT_OUT_RATE = 0.08
# Complaints: leavers complain more often (part of the churn pattern a model can learn).
COMPLAINT_RATE = 0.05
LEAVER_COMPLAINT_RATE = 0.3
_C = classification_pb2
COMPLAINTS = (  # (category, what the customer said)
    (_C.COMPLAINT_CATEGORY_FEES_AND_CHARGES, "I was charged the annual card fee twice this year."),
    (_C.COMPLAINT_CATEGORY_WAIT_TIME_AND_FACILITIES, "I waited over an hour at the branch to open a deposit."),
    (_C.COMPLAINT_CATEGORY_SERVICE_ATTITUDE, "The teller was rude when I asked about my term deposit."),
    (_C.COMPLAINT_CATEGORY_DIGITAL_CHANNELS, "The mobile app logs me out every time I try to transfer."),
    (_C.COMPLAINT_CATEGORY_PAYMENTS_AND_TRANSFERS, "My transfer to another bank took three days to arrive."),
    (_C.COMPLAINT_CATEGORY_MARKETING_CONTACT, "I keep getting sales calls after I asked you to stop."),
    (_C.COMPLAINT_CATEGORY_WEALTH_AND_INVESTMENT, "The wealth product I was sold was riskier than I was told."),
    (_C.COMPLAINT_CATEGORY_LOANS_AND_CREDIT, "My loan repayment was taken twice this month."),
)
COMPLAINT_CHANNELS = (channel_pb2.CHANNEL_BRANCH, channel_pb2.CHANNEL_CALL_CENTRE, channel_pb2.CHANNEL_MOBILE_APP,
                      channel_pb2.CHANNEL_WECHAT)
# Surveys: the share of customers with a branch (mobile) transaction who answer about it.
BRANCH_SURVEY_RATE = 0.3
MOBILE_SURVEY_RATE = 0.2
ASK = "\uff1f"  # the full-width question mark Chinese text ends a question with
BRANCH_SURVEY = "demo-branch-visit-nps"
MOBILE_SURVEY = "demo-mobile-transfer-ces"
REASONS = ("staff", "wait_time", "fees", "products", "app")  # the branch survey's options
COMMENTS = ("The queue was long and only one counter was open.", "The fees were not explained to me.",
            "Friendly staff, quick service.", "The transfer needed too many confirmation steps.")


def _question(question_id: str, kind: survey_pb2.QuestionType.ValueType, zh: str, en: str, *,
              options: tuple[str, ...] = (), required: bool = False) -> survey_pb2.SurveyQuestion:
    return survey_pb2.SurveyQuestion(
        question_id=question_id, type=kind, text={"zh-CN": zh, "en": en}, required=required,
        options=[survey_pb2.QuestionOption(option_id=o, text={"zh-CN": o.replace("_", " "), "en": o.replace("_", " ")})
                 for o in options])


def surveys() -> list[survey_pb2.Survey]:
    """The demo surveys the bank's customers answer, ACTIVE, the same for every seed."""
    return [
        survey_pb2.Survey(
            survey_id=BRANCH_SURVEY, display_name="Branch visit NPS (demo)", kind=survey_pb2.SURVEY_KIND_NPS,
            touchpoint="branch_visit", default_language_code="zh-CN", status=survey_pb2.SURVEY_STATUS_ACTIVE,
            description="Asked after a transaction at a branch counter.",
            channels=[channel_pb2.CHANNEL_BRANCH, channel_pb2.CHANNEL_MOBILE_APP, channel_pb2.CHANNEL_WECHAT],
            questions=[
                _question("recommend", survey_pb2.QUESTION_TYPE_SCORE, "您向朋友推荐我行的可能性有多大" + ASK,
                          "How likely are you to recommend us to a friend?", required=True),
                _question("main_reason", survey_pb2.QUESTION_TYPE_SINGLE_CHOICE, "最主要的原因是什么" + ASK,
                          "What is the main reason?", options=REASONS),
                _question("comment", survey_pb2.QUESTION_TYPE_FREE_TEXT, "还有什么想告诉我们的" + ASK,
                          "Anything else you want to tell us?")]),
        survey_pb2.Survey(
            survey_id=MOBILE_SURVEY, display_name="Mobile transfer effort (demo)", kind=survey_pb2.SURVEY_KIND_CES,
            touchpoint="mobile_transfer", default_language_code="zh-CN", status=survey_pb2.SURVEY_STATUS_ACTIVE,
            description="Asked in the app after a transfer.", channels=[channel_pb2.CHANNEL_MOBILE_APP],
            questions=[
                _question("easy", survey_pb2.QUESTION_TYPE_SCORE, "本行让我轻松完成了转账。",
                          "The bank made it easy for me to make my transfer.", required=True),
                _question("comment", survey_pb2.QUESTION_TYPE_FREE_TEXT, "还有什么想告诉我们的" + ASK,
                          "Anything else you want to tell us?")]),
    ]


@dataclass
class BankCustomer:
    """One customer and everything loaded about them."""

    customer: customer_pb2.Customer
    assets: int  # CNY, the latent wealth the holdings split
    engagement: float  # expected transactions per week
    leaving: bool
    as_of: date  # the day the bank is laid out from
    holdings: list[holding_pb2.Holding] = field(default_factory=list)
    events: list[event_pb2.CustomerEvent] = field(default_factory=list)
    consents: list[consent_pb2.ConsentRecord] = field(default_factory=list)
    complaints: list[complaint_pb2.Complaint] = field(default_factory=list)  # filed through feedback
    # (survey id, response) submitted through feedback; each about one of the customer's events.
    survey_answers: list[tuple[str, survey_pb2.SurveyResponse]] = field(default_factory=list)
    # The same person registered again on the mobile app under another id (`demo_data`).
    duplicates: list[customer_pb2.Customer] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"customers/{self.customer.customer_id}"


def _money(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code=CURRENCY, units=units)


def _day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _holdings(rng: random.Random, who: BankCustomer, today: date, age: int) -> list[holding_pb2.Holding]:
    customer_id, assets = who.customer.customer_id, who.assets
    opened_floor = max(30, (today - date(today.year - 12, 1, 1)).days)
    made: list[holding_pb2.Holding] = []

    def hold(kind: holding_pb2.ProductType.ValueType, code: str, share: float, *,
             maturity: date | None = None) -> None:
        opened = today - timedelta(days=rng.randint(30, opened_floor))
        holding = holding_pb2.Holding(
            holding_id=f"{customer_id}-{len(made) + 1:02d}", product_code=code, product_type=kind,
            currency=CURRENCY, balance=_money(max(1, int(assets * share))),
            open_date=_day(opened), status=holding_pb2.HOLDING_STATUS_ACTIVE, source_system=SOURCE)
        if maturity is not None:
            holding.maturity_date.CopyFrom(_day(maturity))
        made.append(holding)

    wealthy = assets > 500_000
    hold(holding_pb2.PRODUCT_TYPE_CURRENT_ACCOUNT, "CA-CNY", 0.08)
    if rng.random() < 0.6:
        hold(holding_pb2.PRODUCT_TYPE_SAVINGS_ACCOUNT, "SAV-CNY", 0.22)
    if rng.random() < (0.6 if age >= 45 else 0.35):
        hold(holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT, f"TD-{rng.choice((3, 6, 12, 24))}M", 0.35,
             maturity=today + timedelta(days=rng.randint(1, 365)))
    if rng.random() < (0.7 if wealthy else 0.18):
        level = rng.choices((1, 2, 3, 4, 5), weights=(2, 4, 4, 2, 1) if wealthy else (4, 4, 2, 1, 0))[0]
        hold(holding_pb2.PRODUCT_TYPE_WEALTH_MANAGEMENT, f"WM-R{level}", 0.3,
             maturity=today + timedelta(days=rng.randint(30, 540)))
    if wealthy and rng.random() < 0.35:
        hold(holding_pb2.PRODUCT_TYPE_FUND, f"FUND-R{rng.randint(2, 5)}", 0.15)
    if rng.random() < (0.55 if age < 60 else 0.3):
        hold(holding_pb2.PRODUCT_TYPE_CREDIT_CARD, rng.choice(("CC-CLASSIC", "CC-GOLD", "CC-PLATINUM")), 0.0)
    if 25 <= age <= 55 and rng.random() < 0.15:
        hold(holding_pb2.PRODUCT_TYPE_PERSONAL_LOAN, "PL-CNY", 0.05)
    if 28 <= age <= 50 and rng.random() < 0.12:
        hold(holding_pb2.PRODUCT_TYPE_MORTGAGE, "MTG-CNY", 0.1)
    if who.leaving and len(made) > 1:
        # A leaver has started to move money out: some products already closed.
        for holding in made[1:]:
            if rng.random() < 0.5:
                opened = date(holding.open_date.year, holding.open_date.month, holding.open_date.day)
                closed = max(today - timedelta(days=rng.randint(1, CHURN_FADE_DAYS)), min(opened + timedelta(days=1),
                                                                                           today))
                holding.status = holding_pb2.HOLDING_STATUS_CLOSED
                holding.close_date.CopyFrom(_day(closed))
                holding.balance.CopyFrom(_money(0))
                if holding.HasField("maturity_date"):
                    holding.ClearField("maturity_date")
    return made


def _events(rng: random.Random, who: BankCustomer, now: datetime) -> list[event_pb2.CustomerEvent]:
    events: list[event_pb2.CustomerEvent] = []
    customer_id = who.customer.customer_id
    account = f"customers/{customer_id}/holdings/{customer_id}-01"

    def add(kind: event_pb2.EventType.ValueType, at: datetime, channel: event_pb2.EventChannel.ValueType,
            **detail: Message) -> None:
        event_id = f"demo:{uuid.uuid5(EVENT_NAMESPACE, f'{customer_id}/{len(events)}')}"
        event = event_pb2.CustomerEvent(event_id=event_id, customer=who.name, event_type=kind, channel=channel,
                                        occur_time=_timestamp(at), source_system=SOURCE)
        for name, value in detail.items():
            getattr(event, name).CopyFrom(value)
        events.append(event)

    def alive(days_ago: float) -> bool:
        """A leaver's activity fades linearly over the last CHURN_FADE_DAYS."""
        return not who.leaving or days_ago > CHURN_FADE_DAYS or rng.random() < days_ago / CHURN_FADE_DAYS

    weeks = HISTORY_DAYS / 7
    for _ in range(_poisson(rng, who.engagement * weeks)):
        days_ago = rng.uniform(0, HISTORY_DAYS)
        if not alive(days_ago):
            continue
        debit = rng.random() < 0.7
        amount = max(10, int(rng.lognormvariate(math.log(max(who.assets, 1000) * 0.01), 1.0)))
        add(event_pb2.EVENT_TYPE_TRANSACTION, now - timedelta(days=days_ago),
            rng.choice((event_pb2.EVENT_CHANNEL_MOBILE_BANKING, event_pb2.EVENT_CHANNEL_MOBILE_BANKING,
                        event_pb2.EVENT_CHANNEL_WEB_BANKING, event_pb2.EVENT_CHANNEL_BRANCH)),
            transaction=event_pb2.TransactionDetail(
                amount=_money(amount),
                direction=event_pb2.TRANSACTION_DIRECTION_DEBIT if debit else event_pb2.TRANSACTION_DIRECTION_CREDIT,
                kind=rng.choice((event_pb2.TRANSACTION_KIND_CARD_PAYMENT, event_pb2.TRANSACTION_KIND_TRANSFER,
                                 event_pb2.TRANSACTION_KIND_BILL_PAYMENT)) if debit
                else event_pb2.TRANSACTION_KIND_TRANSFER,
                holding=account))
    for _ in range(_poisson(rng, who.engagement * weeks * 0.8)):
        days_ago = rng.uniform(0, HISTORY_DAYS)
        if alive(days_ago):
            add(event_pb2.EVENT_TYPE_LOGIN, now - timedelta(days=days_ago), event_pb2.EVENT_CHANNEL_MOBILE_BANKING,
                login=event_pb2.LoginDetail(success=True, method=rng.choice(("password", "face", "sms-otp"))))
    if rng.random() < 0.5:  # takes their salary here
        salary = max(3000, int(who.assets * 0.02))
        for month in range(HISTORY_DAYS // 30):
            days_ago = month * 30 + 5
            if who.leaving and days_ago < CHURN_FADE_DAYS // 2:
                continue  # the payroll moved to another bank
            add(event_pb2.EVENT_TYPE_PAYROLL_CREDIT, now - timedelta(days=days_ago),
                event_pb2.EVENT_CHANNEL_BRANCH,
                transaction=event_pb2.TransactionDetail(amount=_money(salary),
                                                        direction=event_pb2.TRANSACTION_DIRECTION_CREDIT,
                                                        kind=event_pb2.TRANSACTION_KIND_SALARY, holding=account))
    return events


def _consents(rng: random.Random, now: datetime) -> list[consent_pb2.ConsentRecord]:
    records = []
    for channel, rate in OPT_IN_RATES.items():
        draw = rng.random()
        if draw < rate:
            decision = consent_pb2.CONSENT_DECISION_OPT_IN
        elif draw < rate + OPT_OUT_RATE:
            decision = consent_pb2.CONSENT_DECISION_OPT_OUT
        else:
            continue  # never asked: a gap
        effective = now - timedelta(days=rng.randint(1, 700))
        records.append(consent_pb2.ConsentRecord(
            purpose=consent_pb2.CONSENT_PURPOSE_MARKETING, channel=channel, decision=decision,
            evidence=consent_pb2.ConsentEvidence(source=consent_pb2.CONSENT_SOURCE_BRANCH_FORM,
                                                 effective_time=_timestamp(effective), text_version="MKT-2024-1",
                                                 recorded_by="demo-loader")))
    return records


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal approximation for large ones."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _age(customer: customer_pb2.Customer, today: date) -> int:
    born = customer.birth_date
    return today.year - born.year if born.year else 40


def generate(count: int, *, seed: int = SEED, now: datetime | None = None) -> Iterator[BankCustomer]:
    """The bank's customers, one at a time (a large bank need not fit in memory twice), laid out
    back from `now` (default: the start of today, UTC, so a reload the same day is the same bank)."""
    now = now or datetime.combine(datetime.now(UTC).date(), time(0), UTC)
    today = now.date()
    rng = random.Random(seed + 1)  # noqa: S311 - synthetic data, not security
    voices = random.Random(seed + 2)  # noqa: S311 - complaints draw apart, so the rest stays as it was
    answers = random.Random(seed + 3)  # noqa: S311 - and surveys apart again
    for index, customer in enumerate(demo_data.customers(count, seed=seed), start=1):
        individual = customer.customer_type == customer_pb2.CUSTOMER_TYPE_INDIVIDUAL
        assets = int(rng.lognormvariate(math.log(120_000 if individual else 2_000_000), 1.5))
        who = BankCustomer(customer=customer, assets=assets, engagement=rng.lognormvariate(math.log(0.8), 0.8),
                           leaving=individual and rng.random() < CHURN_SHARE, as_of=today)
        who.holdings = _holdings(rng, who, today, _age(customer, today))
        who.events = _events(rng, who, now)
        who.consents = _consents(rng, now)
        who.complaints = _complaints(voices, who)
        who.survey_answers = _survey_answers(answers, who)
        if demo_data.has_duplicate(customer, index):
            who.duplicates = [demo_data.mobile_duplicate(customer, index, seed)]
        yield who


def _complaints(rng: random.Random, who: BankCustomer) -> list[complaint_pb2.Complaint]:
    """Nothing for most customers; one or two complaints for some, more often for leavers."""
    if rng.random() >= (LEAVER_COMPLAINT_RATE if who.leaving else COMPLAINT_RATE):
        return []
    filed = []
    for _ in range(1 + (rng.random() < 0.25)):
        category, text = rng.choice(COMPLAINTS)
        filed.append(complaint_pb2.Complaint(customer=who.name, description=text, category=category,
                                             channel=rng.choice(COMPLAINT_CHANNELS),
                                             branch_id=who.customer.branch_id))
    return filed


def _survey_answers(rng: random.Random, who: BankCustomer) -> list[tuple[str, survey_pb2.SurveyResponse]]:
    """Some customers answer the branch survey about their latest branch transaction, some the
    mobile survey about their latest app transfer; leavers score lower."""
    made: list[tuple[str, survey_pb2.SurveyResponse]] = []

    def latest(channel: event_pb2.EventChannel.ValueType) -> event_pb2.CustomerEvent | None:
        found = [e for e in who.events if e.event_type == event_pb2.EVENT_TYPE_TRANSACTION and e.channel == channel]
        return max(found, key=lambda e: e.occur_time.ToNanoseconds(), default=None)

    branch_draw, mobile_draw, mood, pick = rng.random(), rng.random(), rng.random(), rng.random()
    branch = latest(event_pb2.EVENT_CHANNEL_BRANCH)
    if branch is not None and branch_draw < BRANCH_SURVEY_RATE:
        score = int(mood * 7) if who.leaving else 6 + int(mood * 5)  # leavers 0-6, others 6-10
        reason = (("wait_time", "fees") if score < 7 else ("staff", "products"))[int(pick * 2)]
        answers = [survey_pb2.Answer(question_id="recommend", score=score),
                   survey_pb2.Answer(question_id="main_reason", choice=survey_pb2.ChoiceAnswer(option_ids=[reason]))]
        if score < 7:
            answers.append(survey_pb2.Answer(question_id="comment", text=COMMENTS[int(pick * 2)]))
        made.append((BRANCH_SURVEY, survey_pb2.SurveyResponse(
            customer=who.name, channel=channel_pb2.CHANNEL_BRANCH, subject=f"events/{branch.event_id}",
            answers=answers, language_code="zh-CN", branch_id=who.customer.branch_id)))
    mobile = latest(event_pb2.EVENT_CHANNEL_MOBILE_BANKING)
    if mobile is not None and mobile_draw < MOBILE_SURVEY_RATE:
        score = 1 + int(mood * 4) if who.leaving else 4 + int(mood * 4)  # CES 1-7: leavers 1-4, others 4-7
        answers = [survey_pb2.Answer(question_id="easy", score=score)]
        if score <= 3:
            answers.append(survey_pb2.Answer(question_id="comment", text=COMMENTS[3]))
        made.append((MOBILE_SURVEY, survey_pb2.SurveyResponse(
            customer=who.name, channel=channel_pb2.CHANNEL_MOBILE_APP, subject=f"events/{mobile.event_id}",
            answers=answers, language_code="zh-CN", branch_id=who.customer.branch_id)))
    return made
