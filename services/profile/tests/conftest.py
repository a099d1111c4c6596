"""Profile test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import pytest
from google.type import date_pb2, postal_address_pb2

from crm.profile.v1 import customer_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC
from crmkit.testing import service_fixtures, with_overrides

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
INDEX_KEY = base64.b64encode(os.urandom(32)).decode()
PROFILE_SECRETS = {
    "encryption_keys": f"k1:{KEY_A},k2:{KEY_B}",
    "active_key_id": "k1",
    "blind_index_key": INDEX_KEY,
    "feed_poll_seconds": 0.05,
    "quality_cache_seconds": 0,  # every report reads what the test just wrote
}

profile_database, profile_service, profile = service_fixtures(
    SPEC, profile_service_pb2_grpc.ProfileServiceStub, stub="profile", **PROFILE_SECRETS)


def make_customer(**overrides: object) -> customer_pb2.Customer:
    customer = customer_pb2.Customer(
        customer_id=f"C{uuid.uuid4().hex[:12].upper()}",
        customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
        full_name="Li Wei",
        birth_date=date_pb2.Date(year=1985, month=3, day=14),
        gender=customer_pb2.GENDER_MALE,
        nationality="CN",
        # A valid PRC resident identity card number (check character 'X').
        id_document=customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_NATIONAL_ID, number="11010519491231002X", issuing_country="CN"),
        mobile_phone="+8613812345678",
        email="li.wei@example.com",
        address=postal_address_pb2.PostalAddress(
            region_code="CN", locality="Beijing", address_lines=["1 Chang'an Avenue"], postal_code="100000"),
        kyc_status=customer_pb2.KYC_STATUS_VERIFIED,
        risk_tolerance=customer_pb2.RISK_TOLERANCE_BALANCED,
        relationship_manager_id="rm-007",
        branch_id="BJ-001",
    )
    return with_overrides(customer, overrides)


@pytest.fixture
def new_customer() -> Any:
    """A valid customer with a fresh id; keyword arguments override fields."""
    return make_customer
