"""Delegated requests over HTTP: the province decides for the caller the upper acts for.

The lower is a real gateway over the seeded databases, trusting the upper's EC
key (made here with ``cryptography``, written as a JWKS file); the upper's
service token and its delegations are sent as an upper gateway would send them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gateway.core.delegation import mint_delegation
from gateway.edge.settings import DelegationSettings
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token

UPPER = "deltagate-delta"
LOWER = "deltagate-js"
KID = "delta-1"
MATTER = "JH-HUKOU-MIGRATION"
QUERY = "query($id: ID!) { naturalPerson(idNumber: $id) { idNumber name phone } }"


@pytest.fixture(scope="module")
def upper_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def lower(
    seeded: Seeded, tmp_path: Path, upper_key: ec.EllipticCurvePrivateKey
) -> AsyncIterator[GatewayClient]:
    jwks = tmp_path / "upper-jwks.json"
    public = json.loads(ECAlgorithm.to_jwk(upper_key.public_key()))
    jwks.write_text(json.dumps({"keys": [{**public, "kid": KID, "use": "sig"}]}))
    delegation = DelegationSettings(id=LOWER, trusted_jwks=jwks, trusted_issuers=(UPPER,))
    settings = gateway_settings(seeded.dsn, rate_limits=False, delegation=delegation)
    async with serve(settings) as client:
        yield client


@pytest.fixture
def person(seeded: Seeded) -> str:
    return str(seeded.dataset.person("JS", 0)["id_number"])


def service_token(*roles: str, app: str = UPPER) -> str:
    """The upper's own token: it may act for others and, itself, sees L3 under the matter."""
    return token("SH", *(roles or ("delta_platform", "joint_handling_officer")), app=app)


def delegation(key: Any, *, roles: tuple[str, ...], matter: str | None, **changes: Any) -> str:
    options: dict[str, Any] = {
        "key": key, "kid": KID, "issuer": UPPER, "audience": LOWER, "sub": "portal-app",
        "region": "SH", "roles": list(roles), "matter": matter,
    }  # fmt: skip
    return mint_delegation(**{**options, **changes})


async def ask(
    lower: GatewayClient,
    person: str,
    delegated: str | None,
    *,
    matter: str | None = None,
    service: str | None = None,
) -> Any:
    headers = {"X-Delegation": delegated} if delegated is not None else None
    return await lower.post(
        QUERY, {"id": person}, token=service or service_token(), matter=matter, headers=headers
    )


def refused(response: Any) -> bool:
    body = response.json()
    codes = [e["extensions"]["code"] for e in body.get("errors", [])]
    return response.status_code == 401 and "data" not in body and codes == ["UNAUTHENTICATED"]


async def test_without_a_delegation_the_service_identity_is_decided_for(
    lower: GatewayClient, person: str
) -> None:
    response = await ask(lower, person, None, matter=MATTER)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["naturalPerson"]["phone"] is not None


async def test_a_public_portal_caller_gets_withheld_fields_whatever_the_service_may_see(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("public_portal",), matter=None)
    response = await ask(lower, person, delegated)
    assert response.status_code == 200, response.text
    body = response.json()
    # The public sees no person by ID number: the key itself (L3) is withheld from it,
    # so nothing is looked up, though the service identity would see the phone in clear.
    assert body["data"]["naturalPerson"] is None
    assert body["extensions"]["backendQueries"] == 0
    decisions = {e["field"]: e["decision"] for e in body["extensions"]["policy"]["fields"]}
    assert decisions["NaturalPerson.idNumber"] == "WITHHELD"


async def test_a_joint_handling_officer_with_the_matter_sees_what_the_matter_allows(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("joint_handling_officer",), matter=MATTER)
    response = await ask(lower, person, delegated, matter=MATTER)
    assert response.status_code == 200, response.text
    found = response.json()["data"]["naturalPerson"]
    assert found["idNumber"] == person
    assert found["phone"] is not None
    assert "*" not in found["phone"]


async def test_the_delegations_matter_decides_not_an_unsigned_header(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("joint_handling_officer",), matter=None)
    assert refused(await ask(lower, person, delegated, matter=MATTER))


def raw(key: Any, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "iss": UPPER, "act": {"sub": UPPER}, "sub": "portal-app", "region": "SH",
        "roles": ["joint_handling_officer"], "matter": MATTER, "aud": LOWER, "jti": "once",
        "iat": now, "exp": now + 30,
    }  # fmt: skip
    return jwt.encode({**base, **claims}, key, algorithm="ES256", headers={"kid": KID})


@pytest.mark.parametrize(
    "case",
    ["forged", "unknown kid", "unknown issuer", "wrong audience", "expired", "over 60 s"],
)
async def test_a_bad_delegation_is_refused_with_401_and_no_data(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey, case: str
) -> None:
    roles = ("joint_handling_officer",)
    now = int(time.time())
    delegated = {
        "forged": lambda: delegation(ec.generate_private_key(ec.SECP256R1()), roles=roles,
                                     matter=MATTER),
        "unknown kid": lambda: delegation(upper_key, roles=roles, matter=MATTER, kid="k2"),
        "unknown issuer": lambda: delegation(upper_key, roles=roles, matter=MATTER,
                                             issuer="rogue"),
        "wrong audience": lambda: delegation(upper_key, roles=roles, matter=MATTER,
                                             audience="deltagate-zj"),
        "expired": lambda: delegation(upper_key, roles=roles, matter=MATTER, now=now - 300),
        "over 60 s": lambda: raw(upper_key, iat=now, exp=now + 600),
    }[case]()  # fmt: skip
    assert refused(await ask(lower, person, delegated, matter=MATTER)), case


async def test_a_replayed_delegation_is_refused(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("joint_handling_officer",), matter=MATTER)
    assert (await ask(lower, person, delegated, matter=MATTER)).status_code == 200
    assert refused(await ask(lower, person, delegated, matter=MATTER))


async def test_a_service_token_without_the_acting_role_is_refused(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("joint_handling_officer",), matter=MATTER)
    service = service_token("joint_handling_officer")
    assert refused(await ask(lower, person, delegated, matter=MATTER, service=service))


async def test_a_delegation_sent_by_another_app_than_its_issuer_is_refused(
    lower: GatewayClient, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("joint_handling_officer",), matter=MATTER)
    service = service_token("delta_platform", app="another-platform")
    assert refused(await ask(lower, person, delegated, matter=MATTER, service=service))


async def test_a_gateway_without_delegation_settings_refuses_a_delegation(
    seeded: Seeded, person: str, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    delegated = delegation(upper_key, roles=("public_portal",), matter=None)
    async with serve(gateway_settings(seeded.dsn, rate_limits=False)) as plain:
        assert refused(await ask(plain, person, delegated))
