"""Synthetic demo customers: deterministic, valid, and shaped like a Chinese retail bank's book.

The same seed gives the same customers, so loading them again is a no-op (ALREADY_EXISTS is
ignored), and a bank is a prefix of any larger one of its seed: customer N is the same whatever the
size (`make run`'s 36 are the first 36 of `crm demo load --customers 1000`). Each seed has its own
ids (`id_prefix`): `DEMO0001`... for the platform's own seed, `DEMO7-0001`... for seed 7, so banks
of two seeds never claim one id with two bodies. Nothing here is a real person: names are drawn from common
surnames and given names, identity numbers carry valid check characters but random sequence
numbers, mobile numbers use a `0000` middle block (UK ones the Ofcom drama range), e-mail
addresses use the reserved `example.*` domains. Never dispatch campaigns to demo contacts.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import grpc
from google.type import date_pb2, postal_address_pb2

from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_cli import output

SEED = 20_250_630
AS_OF = date(2025, 6, 30)  # demo data does not depend on the day it is generated
COUNT = 36
ORGANISATIONS = 3
FOREIGNERS = 5
ID_PREFIX = "DEMO"  # the ids of the platform's own seed (SEED)
# Where the few organisations and expatriates sit: every 12th customer is an organisation and every
# 7th otherwise an expatriate, within the first 36, so the make-run bank has them all and a larger
# bank of the same seed starts with the same customers.
ORGANISATION_EVERY = 12
FOREIGNER_EVERY = 7
REQUEST_NAMESPACE = uuid.UUID("6f1c3a52-6a0e-4a8e-9d55-3c1f0e0d5a11")
# Every 20th customer, when an individual, also registered on the mobile app under another id
# (`duplicate_id`): the same person twice, for identity resolution to find.
DUPLICATE_EVERY = 20
DUPLICATE_MARK = "M"  # duplicate ids are `<seed prefix>M<index>`, apart from the seed's own ids
MOBILE_SOURCE = "mobile-banking"

Choice = TypeVar("Choice")
RELATIONSHIP_MANAGERS = ("rm-1001", "rm-1002", "rm-1003", "rm-1004")
LOAD_CONCURRENCY = 8
CALL_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class City:
    name: str
    province: str
    district: str
    division_code: str  # GB/T 2260 code of the district, the first 6 characters of an ID number
    postal_code: str
    branch_id: str
    streets: tuple[str, ...]


CITIES = (
    City("北京市", "北京市", "朝阳区", "110105", "100020", "BJ-001", ("建国路88号", "光华路1号", "东三环中路7号")),
    City("上海市", "上海市", "浦东新区", "310115", "200120", "SH-001",
         ("世纪大道100号", "陆家嘴环路1000号", "张杨路500号")),
    City("深圳市", "广东省", "南山区", "440305", "518052", "SZ-001", ("深南大道9968号", "高新南一道6号")),
    City("广州市", "广东省", "天河区", "440106", "510620", "GZ-001", ("天河路385号", "花城大道85号")),
    City("杭州市", "浙江省", "西湖区", "330106", "310012", "HZ-001", ("文三路259号", "天目山路176号")),
    City("成都市", "四川省", "武侯区", "510107", "610041", "CD-001", ("人民南路四段12号", "科华北路65号")),
)
# Surname, pinyin, relative frequency (the commonest Chinese surnames).
SURNAMES = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4), ("陈", "chen", 4.5),
    ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0), ("吴", "wu", 1.9), ("周", "zhou", 1.9),
    ("徐", "xu", 1.5), ("孙", "sun", 1.4), ("马", "ma", 1.3), ("朱", "zhu", 1.2), ("胡", "hu", 1.1),
    ("郭", "guo", 1.1), ("何", "he", 1.0), ("林", "lin", 0.9), ("罗", "luo", 0.9), ("高", "gao", 0.9),
)
GIVEN_MALE = (("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
              ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("浩", "hao"), ("宇", "yu"))
GIVEN_FEMALE = (("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("婷", "ting"),
                ("雪", "xue"), ("琳", "lin"), ("颖", "ying"), ("倩", "qian"), ("佳", "jia"), ("欣", "xin"))
OCCUPATIONS = (("Software engineer", 3), ("Teacher", 3), ("Physician", 1), ("Civil servant", 2),
               ("Business owner", 2), ("Retired", 3), ("Accountant", 2), ("Sales manager", 2),
               ("Nurse", 1), ("Lawyer", 1), ("Factory worker", 2), ("Student", 1))
RISK_TOLERANCES = (  # C1..C5 as a retail book typically spreads
    (customer_pb2.RISK_TOLERANCE_CONSERVATIVE, 15), (customer_pb2.RISK_TOLERANCE_MODERATELY_CONSERVATIVE, 25),
    (customer_pb2.RISK_TOLERANCE_BALANCED, 35), (customer_pb2.RISK_TOLERANCE_MODERATELY_AGGRESSIVE, 18),
    (customer_pb2.RISK_TOLERANCE_AGGRESSIVE, 7),
)
KYC_STATUSES = ((customer_pb2.KYC_STATUS_VERIFIED, 90), (customer_pb2.KYC_STATUS_PENDING, 5),
                (customer_pb2.KYC_STATUS_EXPIRED, 5))
MOBILE_PREFIXES = ("135", "136", "138", "139", "150", "158", "177", "186", "188", "189", "199")
# Expatriates living in China: name, e-mail local part, nationality, passport number form, phone.
FOREIGN = (
    ("Olivia Martin", "olivia.martin", "GB", "1{d8}", "+447700900{d3}", "en-GB"),
    ("Lukas Schneider", "lukas.schneider", "DE", "C{d8}", None, "de"),
    ("Camille Laurent", "camille.laurent", "FR", "{d2}AB{d5}", None, "fr"),
    ("Kenji Sato", "kenji.sato", "JP", "TK{d7}", None, "ja"),
    ("Priya Nair", "priya.nair", "IN", "P{d7}", None, "en-IN"),
)
ORGANISATION_NAMES = (
    ("上海浦江精密机械有限公司", "Manufacturing", "pujiang-machinery"),
    ("深圳前海云帆科技有限公司", "Information technology", "yunfan-tech"),
    ("杭州西溪茶业贸易有限公司", "Wholesale and retail", "xixi-tea"),
)

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def cn_resident_id(division_code: str, birth: date, sequence: int) -> str:
    """PRC resident identity card number with its ISO 7064 MOD 11-2 check character."""
    body = f"{division_code}{birth:%Y%m%d}{sequence:03d}"
    return body + _CN_ID_CHECK[sum(int(d) * w for d, w in zip(body, _CN_ID_WEIGHTS, strict=True)) % 11]


def unified_social_credit_code(division_code: str, organisation_digits: str) -> str:
    """An 18-character unified social credit code (GB 32100-2015) with both check characters."""
    organisation_check = 11 - sum(int(d) * w for d, w in zip(organisation_digits, _ORG_CODE_WEIGHTS,
                                                              strict=True)) % 11
    organisation = organisation_digits + {10: "X", 11: "0"}.get(organisation_check, str(organisation_check))
    body = f"91{division_code}{organisation}"  # 9: registered with market regulation, 1: a company
    return body + uscc_check_character(body)


def uscc_check_character(body: str) -> str:
    """The 18th character of a unified social credit code from its first 17 (GB 32100-2015)."""
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


def _fill(template: str, rng: random.Random) -> str:
    return template.format(**{f"d{n}": _digits(rng, n) for n in range(1, 10)})


def _weighted(rng: random.Random, pairs: Sequence[tuple[Choice, float]]) -> Choice:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _birth_date(rng: random.Random, *, youngest: int = 20, oldest: int = 82, mode: int = 42) -> date:
    age = rng.triangular(youngest, oldest, mode)
    return AS_OF - timedelta(days=int(age * 365.25))


def _adult(birth: date) -> date:
    return birth + timedelta(days=int(18 * 365.25))


def _address(rng: random.Random, city: City) -> postal_address_pb2.PostalAddress:
    line = f"{city.district}{rng.choice(city.streets)}{rng.randint(1, 30)}栋{rng.randint(1, 28)}0{rng.randint(1, 8)}室"
    return postal_address_pb2.PostalAddress(
        region_code="CN", postal_code=city.postal_code, administrative_area=city.province,
        locality=city.name, sublocality=city.district, address_lines=[line],
    )


def _relationship(rng: random.Random, customer: customer_pb2.Customer, earliest: date, index: int,
                  seed: int) -> None:
    """Bank-side fields: RM book, KYC, risk tolerance, lifecycle dates (the relationship starts
    on or after `earliest`, and not before 2008), core-banking id."""
    customer.kyc_status = _weighted(rng, KYC_STATUSES)
    customer.risk_tolerance = _weighted(rng, RISK_TOLERANCES)
    # Most customers are unmanaged mass retail; every third one has a relationship manager.
    if index % 3 == 0:
        customer.relationship_manager_id = RELATIONSHIP_MANAGERS[(index // 3) % len(RELATIONSHIP_MANAGERS)]
    earliest = max(date(2008, 1, 1), earliest)
    onboarded = earliest + timedelta(days=rng.randrange(max(1, (AS_OF - earliest).days)))
    customer.onboarded_on.CopyFrom(_date(onboarded))
    if rng.random() < 0.1:  # a churned customer: every account closed
        closed = onboarded + timedelta(days=rng.randrange(max(1, (AS_OF - onboarded).days)))
        customer.closed_on.CopyFrom(_date(closed))
    # Per seed, as the customer ids are: profile refuses an external id another customer holds.
    core_id = f"CB{62_000_000 + index * 7919:010d}"
    customer.external_ids.add(source_system="core-banking", id=core_id if seed == SEED else f"{core_id}-{seed}")


def _individual(rng: random.Random, index: int, seed: int) -> customer_pb2.Customer:
    city = rng.choice(CITIES)
    surname, surname_pinyin, _ = rng.choices(SURNAMES, weights=[s[2] for s in SURNAMES])[0]
    male = rng.random() < 0.5
    given_pool = GIVEN_MALE if male else GIVEN_FEMALE
    given = rng.sample(given_pool, k=rng.choice((1, 2)))
    birth = _birth_date(rng)
    sequence = rng.randrange(0, 999, 2) + (1 if male else 0)  # the 17th digit is odd for men
    given_pinyin = "".join(p for _, p in given)
    customer = customer_pb2.Customer(
        customer_id=customer_id(index, seed),
        customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
        full_name=surname + "".join(c for c, _ in given),
        gender=customer_pb2.GENDER_MALE if male else customer_pb2.GENDER_FEMALE,
        nationality="CN",
        id_document=customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_NATIONAL_ID, issuing_country="CN",
            number=cn_resident_id(city.division_code, birth, sequence),
            expires_on=_date(date(AS_OF.year + rng.randint(1, 19), birth.month, min(birth.day, 28))),
        ),
        mobile_phone=f"+86{rng.choice(MOBILE_PREFIXES)}0000{_digits(rng, 4)}",
        email=f"{given_pinyin}.{surname_pinyin}{rng.randint(1, 99)}@example.cn",
        address=_address(rng, city),
        occupation=str(_weighted(rng, OCCUPATIONS)) if birth.year > AS_OF.year - 62 else "Retired",
        branch_id=city.branch_id,
        preferred_language="zh-CN",
    )
    customer.birth_date.CopyFrom(_date(birth))
    _relationship(rng, customer, _adult(birth), index, seed)
    return customer


def _foreigner(rng: random.Random, index: int, seed: int, which: int) -> customer_pb2.Customer:
    name, local_part, country, passport, phone, language = FOREIGN[which]
    city = rng.choice(CITIES[:4])
    birth = _birth_date(rng, youngest=25, oldest=60, mode=38)
    customer = customer_pb2.Customer(
        customer_id=customer_id(index, seed),
        customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
        full_name=name,
        gender=customer_pb2.GENDER_FEMALE if which in (0, 2, 4) else customer_pb2.GENDER_MALE,
        nationality=country,
        id_document=customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT, issuing_country=country, number=_fill(passport, rng),
            expires_on=_date(date(AS_OF.year + rng.randint(1, 9), rng.randint(1, 12), rng.randint(1, 28))),
        ),
        mobile_phone=_fill(phone, rng) if phone else f"+86{rng.choice(MOBILE_PREFIXES)}0000{_digits(rng, 4)}",
        email=f"{local_part}@example.com",
        address=_address(rng, city),
        occupation=rng.choice(("Consultant", "Engineer", "Teacher", "Executive")),
        branch_id=city.branch_id,
        preferred_language=language,
    )
    customer.birth_date.CopyFrom(_date(birth))
    _relationship(rng, customer, _adult(birth), index, seed)
    return customer


def _organisation(rng: random.Random, index: int, seed: int, which: int) -> customer_pb2.Customer:
    name, industry, mailbox = ORGANISATION_NAMES[which]
    city = CITIES[(1, 2, 4)[which]]
    founded = date(rng.randint(1998, 2020), rng.randint(1, 12), rng.randint(1, 28))
    customer = customer_pb2.Customer(
        customer_id=customer_id(index, seed),
        customer_type=customer_pb2.CUSTOMER_TYPE_ORGANISATION,
        full_name=name,
        nationality="CN",
        id_document=customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_BUSINESS_REGISTRATION, issuing_country="CN",
            number=unified_social_credit_code(city.division_code, _digits(rng, 8)),
        ),
        mobile_phone=f"+86{rng.choice(MOBILE_PREFIXES)}0000{_digits(rng, 4)}",
        email=f"finance@{mailbox}.example.cn",
        address=_address(rng, city),
        occupation=industry,
        branch_id=city.branch_id,
        preferred_language="zh-CN",
    )
    customer.birth_date.CopyFrom(_date(founded))
    _relationship(rng, customer, founded, index, seed)
    return customer


def id_prefix(seed: int = SEED) -> str:
    """The prefix of a seed's customer ids."""
    return ID_PREFIX if seed == SEED else f"{ID_PREFIX}{seed}-"


def customer_id(index: int, seed: int = SEED) -> str:
    return f"{id_prefix(seed)}{index:04d}"


def duplicate_id(index: int, seed: int = SEED) -> str:
    """The id of the mobile-app duplicate of customer `index`: its own range (`DEMOM0020`,
    `DEMO7-M0020`), so a bank stays the prefix of any larger one of its seed."""
    return f"{id_prefix(seed)}{DUPLICATE_MARK}{index:04d}"


def has_duplicate(customer: customer_pb2.Customer, index: int) -> bool:
    return index % DUPLICATE_EVERY == 0 and customer.customer_type == customer_pb2.CUSTOMER_TYPE_INDIVIDUAL


def mobile_duplicate(customer: customer_pb2.Customer, index: int, seed: int = SEED) -> customer_pb2.Customer:
    """The same person as `customer`, registered again through the mobile app: another id, no
    relationship manager, an app user id instead of the core-banking one, a later start, and one
    of three variations a matcher must see through (deterministic by seed and index):

    0. the same national ID number, a new email, no address: an exact match on the ID;
    1. no ID document, the same mobile phone: an exact match on the phone;
    2. no ID document, another phone, the birth date's day and month swapped when both are at
       most 12 (a typing slip), else one day off: only a fuzzy match on name and birth date.
    """
    rng = random.Random(f"{seed}/duplicate/{index}")  # noqa: S311 - synthetic data; apart from the bank's draws
    twin = customer_pb2.Customer()
    twin.CopyFrom(customer)
    twin.customer_id = duplicate_id(index, seed)
    twin.ClearField("relationship_manager_id")
    twin.ClearField("closed_on")
    twin.kyc_status = customer_pb2.KYC_STATUS_PENDING
    del twin.external_ids[:]
    app_user = uuid.uuid5(REQUEST_NAMESPACE, twin.customer_id).hex[:12]
    twin.external_ids.add(source_system=MOBILE_SOURCE, id=f"APP{app_user}")
    registered = as_date(customer.onboarded_on) + timedelta(days=rng.randint(30, 900))
    twin.onboarded_on.CopyFrom(_date(min(registered, AS_OF)))
    variant = (index // DUPLICATE_EVERY) % 3
    if variant == 0:
        local, _, domain = customer.email.partition("@")
        twin.email = f"{local}.app{rng.randint(1, 9)}@{domain}"
        twin.ClearField("address")
    else:
        twin.ClearField("id_document")
    if variant == 2:
        twin.mobile_phone = f"+86{rng.choice(MOBILE_PREFIXES)}0000{_digits(rng, 4)}"
        born = as_date(customer.birth_date)
        slipped = (date(born.year, born.day, born.month) if born.day <= 12 and born.day != born.month
                   else born + timedelta(days=1))
        twin.birth_date.CopyFrom(_date(slipped))
    return twin


def as_date(value: date_pb2.Date) -> date:
    return date(value.year, value.month, value.day)


def customers(count: int = COUNT, *, seed: int = SEED) -> list[customer_pb2.Customer]:
    """The first `count` demo customers of a seed: mostly individuals, with three organisations and
    five expatriates among the first 36."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    result: list[customer_pb2.Customer] = []
    for index in range(1, count + 1):
        organisation, foreigner = divmod(index, ORGANISATION_EVERY), divmod(index, FOREIGNER_EVERY)
        if organisation[1] == 0 and organisation[0] <= len(ORGANISATION_NAMES):
            result.append(_organisation(rng, index, seed, organisation[0] - 1))
        elif foreigner[1] == 0 and foreigner[0] <= len(FOREIGN):
            result.append(_foreigner(rng, index, seed, foreigner[0] - 1))
        else:
            result.append(_individual(rng, index, seed))
    return result


@dataclass
class LoadResult:
    created: int = 0
    existing: int = 0
    # (customer id, gRPC status name, message): never a customer's personal data.
    failed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.existing + len(self.failed)


def request_id(customer_id: str) -> str:
    """A stable idempotency key per demo customer, so a retried create replays instead of failing."""
    return str(uuid.uuid5(REQUEST_NAMESPACE, customer_id))


async def load(channel: grpc.aio.Channel, token: str, demo: Iterable[customer_pb2.Customer],
               on_done: Callable[[], None] | None = None) -> LoadResult:
    """CreateCustomer for each, ignoring ALREADY_EXISTS. `on_done()` is called after each one."""
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    result = LoadResult()
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)
    # A repeated request_id replays the first answer instead of ALREADY_EXISTS: tell the two
    # apart by when the customer was created. The loader and the service share a clock here, so
    # no margin: with one, a load repeated within the margin counted every replay as created.
    # (Against a remote profile with a skewed clock the two counts are approximate.)
    started = datetime.now(UTC)

    async def create(customer: customer_pb2.Customer) -> None:
        async with gate:
            try:
                reply = await stub.CreateCustomer(
                    profile_service_pb2.CreateCustomerRequest(customer=customer,
                                                              request_id=request_id(customer.customer_id)),
                    metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
                created_at = reply.customer.create_time.ToDatetime(tzinfo=UTC)
                if reply.customer.HasField("create_time") and created_at < started:
                    result.existing += 1
                else:
                    result.created += 1
            except grpc.aio.AioRpcError as exc:
                # Only the customer id being taken means "already there"; an identifier another
                # customer holds (EXTERNAL_ID_TAKEN) is a refusal to report.
                if exc.code() is grpc.StatusCode.ALREADY_EXISTS and output.error_reason(exc) == "CUSTOMER_EXISTS":
                    result.existing += 1
                else:
                    result.failed.append((customer.customer_id, exc.code().name, exc.details() or ""))
            if on_done is not None:
                on_done()

    await asyncio.gather(*(create(c) for c in demo))
    return result
