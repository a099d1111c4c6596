"""Tokens, encryption, blind indexes, masking and page tokens."""

from __future__ import annotations

import base64
import os
import time
from datetime import datetime

import jwt
import pytest

from crmkit import masking
from crmkit.auth import Role, TokenVerifier, issue_token
from crmkit.crypto import BlindIndex, DecryptionError, KeyRing
from crmkit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from crmkit.pagination import PageTokens, clamp_page_size
from crmkit.settings import ServiceSettings

SECRET = "s" * 40


def verifier() -> TokenVerifier:
    return TokenVerifier(secret=SECRET, issuer="crm-platform", audience="crm")


def test_a_valid_token_gives_principal_and_roles() -> None:
    principal = verifier().verify_bearer("Bearer " + issue_token(secret=SECRET, subject="rm-1",
                                                                 roles=[Role.RELATIONSHIP_MANAGER]))
    assert principal.subject == "rm-1" and principal.roles == {Role.RELATIONSHIP_MANAGER}
    assert principal.is_relationship_manager_only


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer x.y.z"])
def test_missing_or_malformed_tokens_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        verifier().verify_bearer(header)


def test_expired_wrong_key_and_wrong_audience_are_rejected() -> None:
    now = int(time.time())
    expired = jwt.encode({"sub": "a", "roles": ["admin"], "iss": "crm-platform", "aud": "crm",
                          "iat": now - 7200, "exp": now - 3600}, SECRET, algorithm="HS256")
    forged = issue_token(secret="o" * 40, subject="a", roles=[Role.ADMIN])
    other_audience = issue_token(secret=SECRET, subject="a", roles=[Role.ADMIN], audience="other")
    for token in (expired, forged, other_audience):
        with pytest.raises(Unauthenticated):
            verifier().verify(token)


def signed(*, issued: float, lifetime: float, **overrides: object) -> str:
    """A correctly signed admin token issued `issued` seconds from now, living `lifetime` seconds."""
    now = time.time()
    claims = {"sub": "a", "roles": ["admin"], "iss": "crm-platform", "aud": "crm",
              "iat": int(now + issued), "exp": int(now + issued + lifetime), **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


DAY = 24 * 3600


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (signed(issued=0, lifetime=10 * DAY), "TOKEN_LIFETIME_TOO_LONG"),
        (signed(issued=-DAY, lifetime=DAY + 3600), "TOKEN_LIFETIME_TOO_LONG"),
        (signed(issued=0, lifetime=3600, iat=None), "TOKEN_CLAIM_MISSING"),
        (signed(issued=600, lifetime=3600), "TOKEN_NOT_YET_VALID"),
    ],
    ids=["valid-for-ten-days", "a-day-and-an-hour", "no-iat", "issued-in-ten-minutes"],
)
def test_tokens_beyond_the_lifetime_cap_or_issued_later_are_unauthenticated(token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        verifier().verify(token)
    assert refused.value.reason == reason


def test_the_lifetime_cap_and_clock_skew_allow_the_usual_tokens() -> None:
    for token in (signed(issued=0, lifetime=DAY), signed(issued=20, lifetime=3600)):
        assert verifier().verify(token).subject == "a"


def test_the_lifetime_cap_follows_the_setting() -> None:
    two_hours = signed(issued=0, lifetime=2 * 3600)
    strict = TokenVerifier.from_settings(ServiceSettings(env="test", jwt_secret=SECRET,
                                                         jwt_max_token_lifetime_seconds=3600))
    with pytest.raises(Unauthenticated) as refused:
        strict.verify(two_hours)
    assert refused.value.reason == "TOKEN_LIFETIME_TOO_LONG"
    lenient = TokenVerifier.from_settings(ServiceSettings(env="test", jwt_secret=SECRET,
                                                          jwt_max_token_lifetime_seconds=3 * DAY))
    assert lenient.verify(signed(issued=0, lifetime=2 * DAY)).subject == "a"


def test_a_token_without_platform_roles_is_denied() -> None:
    with pytest.raises(PermissionDenied):
        verifier().verify(issue_token(secret=SECRET, subject="a", roles=[]))


def keyring(active: str = "k1") -> KeyRing:
    return KeyRing({"k1": b"1" * 32, "k2": b"2" * 32}, active_key_id=active)


def test_sealed_values_open_only_in_their_own_context() -> None:
    ring = keyring()
    sealed = ring.seal("Li Wei", context="customer:C1:full_name")
    assert b"Li Wei" not in sealed
    assert ring.open(sealed, context="customer:C1:full_name") == "Li Wei"
    with pytest.raises(DecryptionError):
        ring.open(sealed, context="customer:C2:full_name")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError):
        ring.open(tampered, context="customer:C1:full_name")


@pytest.mark.parametrize("damaged", [
    b"", b"\x01", b"\x02\x02k1" + bytes(40),  # empty, header only, unknown version
    b"\x01\x00" + bytes(40),  # no key id
    b"\x01\x02\xff\xfe" + bytes(40),  # a key id that is not UTF-8
    b"\x01\x02k1" + bytes(20),  # shorter than nonce + tag
    b"\x01\xffk1",  # a key id length past the end
])
def test_damaged_bytes_fail_as_decryption_errors(damaged: bytes) -> None:
    with pytest.raises(DecryptionError):
        keyring().open(damaged, context="c")
    with pytest.raises(DecryptionError):
        KeyRing.key_id_of(damaged)


def test_rotation_keeps_old_values_readable_and_seals_new_ones_with_the_new_key() -> None:
    old = keyring("k1").seal("x", context="c")
    rotated = keyring("k2")
    assert rotated.open(old, context="c") == "x"
    assert KeyRing.key_id_of(rotated.seal("x", context="c")) == "k2"
    with pytest.raises(DecryptionError):
        KeyRing({"k2": b"2" * 32}, active_key_id="k2").open(old, context="c")


def test_a_sealed_value_is_version_key_id_nonce_and_ciphertext_and_activate_switches_the_key() -> None:
    ring = KeyRing({"k1": b"1" * 32, "clé": b"2" * 32}, active_key_id="k1")
    sealed = ring.seal("Li Wei", context="c")
    assert sealed[:4] == b"\x01\x02k1" and len(sealed) == 4 + 12 + len("Li Wei") + 16
    ring.activate("clé")  # the same ring: its cached prefix and cipher follow the active key
    rotated = ring.seal("Li Wei", context="c")
    assert rotated[:6] == b"\x01\x04cl\xc3\xa9" and KeyRing.key_id_of(rotated) == "clé"
    assert ring.open(rotated, context="c") == ring.open(sealed, context="c") == "Li Wei"
    with pytest.raises(ValueError, match="not in the key ring"):
        ring.activate("k3")
    assert KeyRing.key_id_of(ring.seal("x", context="c")) == "clé"


def test_key_ring_parses_the_environment_format_and_refuses_short_keys() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    assert KeyRing.parse(f"a:{key}", active_key_id="a").active_key_id == "a"
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing.parse("a:" + base64.b64encode(b"short").decode(), active_key_id="a")


def test_blind_index_is_deterministic_keyed_and_separates_kinds() -> None:
    index = BlindIndex(b"k" * 32)
    assert index.of("+8613812345678", kind="phone") == index.of("+8613812345678", kind="phone")
    assert index.of("+8613812345678", kind="phone") != index.of("+8613812345678", kind="id_number")
    assert index.of("+8613812345678", kind="phone") != BlindIndex(b"j" * 32).of("+8613812345678", kind="phone")
    # HMAC-SHA256 of "phone\x00+8613812345678": stored indexes must keep matching, however computed
    assert index.of("+8613812345678", kind="phone").hex() == (
        "18bab4f472a18e3492b143cf0845805c3ef5e39d4fe2812ae2c4fe04500ede9b")


def test_masks_keep_only_what_recognises_a_value() -> None:
    assert masking.mask_name("Li Wei") == "L* W**"
    assert masking.mask_digits("+8613812345678") == "+*********5678"
    assert masking.mask_identifier("11010519491231002X") == "**************002X"
    assert masking.mask_email("li.wei@example.com") == "l***@example.com"


def test_page_tokens_round_trip_and_refuse_tampering_or_another_filter() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode("C42", query={"branch": "B1"})
    assert tokens.decode(token, query={"branch": "B1"}) == "C42"
    assert tokens.decode("", query={"branch": "B1"}) is None
    for bad_token, query in [(token, {"branch": "B2"}), (token[:-2] + "AA", {"branch": "B1"}),
                             ("!!!", {"branch": "B1"}), ("A" * 600, {"branch": "B1"})]:
        with pytest.raises(InvalidArgument):
            tokens.decode(bad_token, query=query)


def test_page_size_is_clamped() -> None:
    assert clamp_page_size(0) == 100
    assert clamp_page_size(5000) == 1000
    assert clamp_page_size(7) == 7
    with pytest.raises(InvalidArgument):
        clamp_page_size(-1)


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    check = verifier()
    token = issue_token(secret=SECRET, subject="a", roles=[Role.ADMIN], lifetime_seconds=60)
    assert check.verify(token).subject == "a"
    later = time.time() + 3600

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(Unauthenticated):
        check.verify(token)
