"""GetCustomer shows each role exactly what the disclosure table in docs/privacy.md says: identity
data (name, document number, birth date) and contact data (phone, e-mail, address) each clear,
masked in the documented shapes, or left out. The expectations are written out here, not read
from the kit's table, so a change to the table has to change this test too."""

from __future__ import annotations

from typing import Any

import pytest

from crm.common.v1 import audit_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer

SERVE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="counter")
CLEAR, MASKED, DENIED = "clear", "masked", "denied"

# role -> (identity, contact), as docs/privacy.md's table has them.
TABLE = {
    Role.CHANNEL_APP: (CLEAR, CLEAR),
    Role.RELATIONSHIP_MANAGER: (CLEAR, CLEAR),
    Role.RISK_OFFICER: (CLEAR, CLEAR),
    Role.MARKETER: (MASKED, MASKED),
    Role.ANALYST: (MASKED, DENIED),
    Role.AUDITOR: (MASKED, MASKED),
    Role.ADMIN: (MASKED, MASKED),
    Role.SERVICE: (MASKED, MASKED),
}

IDENTITY = {
    CLEAR: {"full_name": "Li Wei", "id_document.number": "11010519491231002X", "birth_date": (1985, 3, 14)},
    MASKED: {"full_name": "L* W**", "id_document.number": "**************002X", "birth_date": (1985, 0, 0)},
}
CONTACT = {
    CLEAR: {"mobile_phone": "+8613812345678", "email": "li.wei@example.com",
            "address": ("CN", "Guangdong", "Shenzhen", ["1 Shennan Road"], "518000")},
    MASKED: {"mobile_phone": "+86 *******5678", "email": "l***@example.com",
             "address": ("CN", "Guangdong", "", [], "")},
    DENIED: {"mobile_phone": "", "email": "", "address": ("", "", "", [], "")},
}


def shown(customer: Any) -> dict[str, object]:
    address = customer.address
    return {
        "full_name": customer.full_name, "id_document.number": customer.id_document.number,
        "birth_date": (customer.birth_date.year, customer.birth_date.month, customer.birth_date.day),
        "mobile_phone": customer.mobile_phone, "email": customer.email,
        "address": (address.region_code, address.administrative_area, address.locality, list(address.address_lines),
                    address.postal_code),
    }


@pytest.mark.parametrize("role", list(TABLE))
async def test_get_customer_shows_each_role_what_the_table_says(profile, new_customer, role) -> None:
    sent = new_customer(relationship_manager_id="rm-disclosure")
    sent.address.administrative_area = "Guangdong"
    sent.address.locality = "Shenzhen"
    sent.address.address_lines[:] = ["1 Shennan Road"]
    sent.address.postal_code = "518000"
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent),
                                 metadata=bearer(Role.CHANNEL_APP, subject="app"))

    got = (await profile.GetCustomer(pb.GetCustomerRequest(name=f"customers/{sent.customer_id}", audit=SERVE),
                                     metadata=bearer(role, subject="rm-disclosure"))).customer

    identity, contact = TABLE[role]
    assert shown(got) == {**IDENTITY[identity], **CONTACT[contact]}
    expected_masked = ([*IDENTITY[CLEAR]] if identity != CLEAR else []) + ([*CONTACT[CLEAR]] if contact != CLEAR
                                                                           else [])
    assert sorted(got.masked_fields) == sorted(expected_masked)
    # Demographic data is shown to every role that may read the customer.
    assert (got.gender, got.nationality, got.kyc_status) == (sent.gender, sent.nationality, sent.kyc_status)
