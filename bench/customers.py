"""Synthetic, valid customers for benchmarks: deterministic for a seed, varied like real ones."""

from __future__ import annotations

import random
from collections.abc import Iterator

from google.type import date_pb2, postal_address_pb2

from crm.profile.v1 import customer_pb2

_SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
             "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Gao", "Luo")
_GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie",
          "Tao", "Ming", "Chao", "Xiu Ying", "Hui", "Xia", "Gang")
# (city, administrative area, 6-digit region code of the resident identity card, postcode)
_CITIES = (("Beijing", "Beijing", "110105", "100020"), ("Shanghai", "Shanghai", "310104", "200030"),
           ("Guangzhou", "Guangdong", "440106", "510630"), ("Shenzhen", "Guangdong", "440305", "518052"),
           ("Chengdu", "Sichuan", "510107", "610041"), ("Hangzhou", "Zhejiang", "330106", "310012"))
_OCCUPATIONS = ("engineer", "teacher", "civil servant", "business owner", "physician", "retired", "student",
                "sales", "accountant", "farmer")
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


def cn_resident_id(region: str, year: int, month: int, day: int, sequence: int) -> str:
    """A PRC resident identity card number with a correct ISO 7064 MOD 11-2 check character."""
    body = f"{region}{year:04d}{month:02d}{day:02d}{sequence % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, _CN_ID_WEIGHTS, strict=True))
    return body + _CN_ID_CHECK[total % 11]


def synthetic_customers(count: int, *, seed: int = 1, id_prefix: str = "BENCH",
                        relationship_manager_id: str = "rm-bench") -> Iterator[customer_pb2.Customer]:
    rng = random.Random(seed)
    for n in range(count):
        surname, given = rng.choice(_SURNAMES), rng.choice(_GIVEN)
        city, area, region, postcode = rng.choice(_CITIES)
        year, month, day = rng.randint(1940, 2004), rng.randint(1, 12), rng.randint(1, 28)
        gender = rng.choice((customer_pb2.GENDER_FEMALE, customer_pb2.GENDER_MALE))
        yield customer_pb2.Customer(
            customer_id=f"{id_prefix}{n:08d}",
            customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
            full_name=f"{surname} {given}",
            birth_date=date_pb2.Date(year=year, month=month, day=day),
            gender=gender,
            nationality="CN",
            id_document=customer_pb2.IdDocument(
                type=customer_pb2.ID_DOCUMENT_TYPE_NATIONAL_ID, issuing_country="CN",
                number=cn_resident_id(region, year, month, day, n)),
            mobile_phone=f"+86{rng.choice((133, 135, 138, 139, 150, 186, 188))}{rng.randrange(10**8):08d}",
            email=f"{given.replace(' ', '').lower()}.{surname.lower()}{n}@example.com",
            address=postal_address_pb2.PostalAddress(
                region_code="CN", administrative_area=area, locality=city, postal_code=postcode,
                address_lines=[f"{rng.randint(1, 999)} {rng.choice(('Renmin', 'Jiefang', 'Zhongshan'))} Road"]),
            occupation=rng.choice(_OCCUPATIONS),
            kyc_status=customer_pb2.KYC_STATUS_VERIFIED,
            risk_tolerance=rng.randint(1, 5),
            relationship_manager_id=relationship_manager_id,
            branch_id=f"{region[:2]}-{rng.randint(1, 40):03d}",
            preferred_language=rng.choice(("zh-CN", "zh-CN", "zh-CN", "en")),
        )
