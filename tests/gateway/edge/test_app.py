"""The HTTP surface: who may ask, what a request must look like, health and readiness."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import jwt
import pytest

from gateway.edge.auth import mint_token
from policies import SHIPPED_POLICY_DIR
from tests.client import serve
from tests.conftest import JWT_SECRET, Seeded, gateway_settings, token
from tests.gateway.edge.test_auth import jwk, new_rsa_key, rs256, write_jwks
from tests.policies.conftest import append
from tests.policies.test_engine import touch_later

QUERY = "query($u: ID!) { legalPerson(uscc: $u) { name } }"


@pytest.fixture
def uscc(seeded: Seeded) -> str:
    return seeded.dataset.uscc("JS", 0)


def forged() -> str:
    return mint_token(
        sub="intruder", region="SH", roles=["one_stop_app"], secret="x" * 40 + "-not-the-secret"
    )


def expired() -> str:
    now = time.time()
    claims = {"sub": "late", "region": "SH", "roles": ["one_stop_app"], "iat": now - 7200,
              "exp": now - 3600}  # fmt: skip
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "not a bearer token"),
        ("Bearer not-a-jwt", "malformed"),
        ("Bearer " + "forged", "forged"),
        ("Bearer " + "expired", "expired"),
    ],
)
async def test_a_request_without_a_valid_token_gets_401_and_no_data(
    seeded: Seeded, uscc: str, authorization: str | None, why: str
) -> None:
    if authorization == "Bearer forged":
        authorization = "Bearer " + forged()
    if authorization == "Bearer expired":
        authorization = "Bearer " + expired()
    headers = {} if authorization is None else {"Authorization": authorization}
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(QUERY, {"u": uscc}, token=None, headers=headers)
    assert response.status_code == 401, why
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_unregistered_matter_is_forbidden(seeded: Seeded, uscc: str) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(
            QUERY, {"u": uscc}, token=token("SH", "one_stop_app"), matter="NO-SUCH-MATTER"
        )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "data" not in response.json()


async def test_a_matter_the_role_may_not_use_is_forbidden(seeded: Seeded, uscc: str) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.post(
            QUERY, {"u": uscc}, token=token("AH", "public_portal"), matter="JH-HUKOU-MIGRATION"
        )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/plain", b'{"query": "{ __typename }"}', "application/json"),
        ("application/json", b"{not json", "not valid JSON"),
        ("application/json", b"[1, 2]", "JSON object"),
        ("application/json", b'{"query": 42}', "'query'"),
        ("application/json", b'{"query": "{ __typename }", "variables": [1]}', "'variables'"),
    ],
)
async def test_a_malformed_request_is_a_clear_400(
    seeded: Seeded, content_type: str, body: bytes, message: str
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        response = await client.http.post(
            "/graphql",
            content=body,
            headers={
                "Content-Type": content_type,
                "Authorization": f"Bearer {token('SH', 'one_stop_app')}",
            },
        )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert message in error["message"]


async def test_a_document_that_does_not_validate_is_bad_request(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        plain = await client.post("{ nope }", token=token("SH", "one_stop_app"))
        spec = await client.post(
            "{ nope }",
            token=token("SH", "one_stop_app"),
            headers={"Accept": "application/graphql-response+json"},
        )
    assert plain.status_code == 200
    assert plain.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert spec.status_code == 400
    assert spec.headers["content-type"].startswith("application/graphql-response+json")


async def test_graphiql_is_served_in_development_only(seeded: Seeded, tmp_path: Path) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        page = await client.http.get("/graphql")
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()

    key = new_rsa_key()
    write_jwks(tmp_path / "jwks.json", jwk(key, "k1"))
    production = gateway_settings(
        seeded.dsn, mode="production", jwt_secret=None, jwks_path=tmp_path / "jwks.json"
    )
    async with serve(production) as client:
        page = await client.http.get("/graphql")
        answer = await client.post(
            "query($u: ID!) { legalPerson(uscc: $u) { name } }",
            {"u": seeded.dataset.uscc("JS", 0)},
            token=rs256(key, "k1"),
        )
        refused = await client.post("{ __typename }", token=token("SH", "one_stop_app"))
    assert page.status_code == 405
    assert page.headers["allow"] == "POST"
    assert answer.status_code == 200
    assert answer.json()["data"]["legalPerson"]["name"]
    assert refused.status_code == 401  # HS256 development tokens are not accepted


async def test_production_refuses_hs256_tokens_even_with_a_secret_in_the_environment(
    seeded: Seeded, tmp_path: Path
) -> None:
    # DELTAGATE_JWT_SECRET set beside the JWKS (the demo prints one): in production it
    # must sign nothing, or anyone holding it chooses their own roles.
    key = new_rsa_key()
    write_jwks(tmp_path / "jwks.json", jwk(key, "k1"))
    production = gateway_settings(
        seeded.dsn, mode="production", jwt_secret=JWT_SECRET, jwks_path=tmp_path / "jwks.json"
    )
    person = seeded.dataset.person("JS", 0)["id_number"]
    document = "query($i: ID!) { naturalPerson(idNumber: $i) { phone } }"
    async with serve(production) as client:
        chosen = await client.post(
            document,
            {"i": person},
            token=token("JS", "joint_handling_officer"),
            matter="JH-HUKOU-MIGRATION",
        )
        signed = await client.post(
            document,
            {"i": person},
            token=rs256(key, "k1", region="JS"),
            matter="JH-HUKOU-MIGRATION",
        )
    assert chosen.status_code == 401
    assert chosen.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in chosen.json()
    assert signed.status_code == 200  # the identity provider's tokens still work
    assert signed.json()["data"]["naturalPerson"]["phone"]


async def test_a_token_longer_lived_than_configured_is_refused(seeded: Seeded) -> None:
    short = gateway_settings(seeded.dsn, max_token_lifetime=600)
    now = int(time.time())
    claims = {"sub": "app", "region": "SH", "roles": ["one_stop_app"], "iat": now}
    async with serve(short) as client:
        day = await client.post(
            "{ __typename }", token=jwt.encode({**claims, "exp": now + 86400}, JWT_SECRET)
        )
        text = await client.post(
            "{ __typename }", token=jwt.encode({**claims, "exp": str(now + 60)}, JWT_SECRET)
        )
        minutes = await client.post(
            "{ __typename }", token=jwt.encode({**claims, "exp": now + 600}, JWT_SECRET)
        )
    assert [day.status_code, text.status_code, minutes.status_code] == [401, 401, 200]
    assert day.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "600 seconds" in day.json()["errors"][0]["message"]


async def test_health_and_readiness_name_every_region(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        health = await client.http.get("/healthz")
        ready = await client.http.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    report = ready.json()
    assert report["sources"] == {"SH": "ok", "JS": "ok", "ZJ": "ok", "AH": "ok"}
    assert report["policy"]["ready"] is True


async def test_readiness_names_an_unreachable_region_and_keeps_the_replica_in_rotation(
    seeded: Seeded,
) -> None:
    # Every replica shares the region's outage: out of the Service, they would hide the
    # three regions still up. The replica answers ZJ's fields with SOURCE_UNAVAILABLE.
    settings = gateway_settings(seeded.dsn)
    broken = tuple(
        replace(s, dsn="postgresql://nobody@127.0.0.1:9/none", timeout=1.0)
        if s.region == "ZJ"
        else s
        for s in settings.sources
    )
    async with serve(replace(settings, sources=broken)) as client:
        ready = await client.http.get("/readyz")
        body = await client.query(
            "query($u: [ID!]!) { legalPersons(usccs: $u) { name } }",
            {"u": [seeded.dataset.uscc("SH", 0), seeded.dataset.uscc("ZJ", 0)]},
            token=token("SH", "one_stop_app"),
        )
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["sources"]["ZJ"] == "unavailable"
    assert ready.json()["sources"]["SH"] == "ok"
    assert body["data"]["legalPersons"][0]["name"] == seeded.dataset.enterprise("SH", 0)["name"]
    assert body["errors"][0]["extensions"] == {"code": "SOURCE_UNAVAILABLE", "region": "ZJ"}


async def test_a_replica_whose_audit_store_is_down_is_not_ready(seeded: Seeded) -> None:
    settings = gateway_settings(
        seeded.dsn, audit_dsn="postgresql://nobody@127.0.0.1:9/none", audit_timeout=1.0
    )
    async with serve(settings) as client:
        ready = await client.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["audit"] == "unavailable"
    assert ready.json()["sources"]["SH"] == "ok"


async def test_a_policy_change_applies_without_restart_and_a_broken_file_keeps_the_old_one(
    seeded: Seeded, tmp_path: Path
) -> None:
    policy_dir = shutil.copytree(SHIPPED_POLICY_DIR, tmp_path / "policies")
    company = seeded.dataset.enterprise("JS", 4)
    person = seeded.dataset.person(*seeded.dataset.representative_of("JS", 4))
    # Through the enterprise: without a matter, the officer may not look persons up by ID.
    document = "query($id: ID!) { legalPerson(uscc: $id) { legalRepresentative { name } } }"
    officer = token("AH", "joint_handling_officer")
    settings = gateway_settings(seeded.dsn, policy_dir=policy_dir, policy_reload_interval=0)
    async with serve(settings) as client:
        before = await client.query(document, {"id": company["uscc"]}, token=officer)
        assert before["data"]["legalPerson"]["legalRepresentative"]["name"] != person["name"]

        append(
            policy_dir / "policy.csv",
            "p, joint_handling_officer, *, *, NaturalPerson.name, L2, allow\n",
        )
        touch_later(policy_dir / "policy.csv")
        granted = await client.query(document, {"id": company["uscc"]}, token=officer)
        assert granted["data"]["legalPerson"]["legalRepresentative"]["name"] == person["name"]

        append(policy_dir / "policy.csv", "p, this line, is, broken\n")
        touch_later(policy_dir / "policy.csv")
        kept = await client.query(document, {"id": company["uscc"]}, token=officer)
        ready = await client.http.get("/readyz")
    assert kept["data"]["legalPerson"]["legalRepresentative"]["name"] == person["name"]
    assert ready.json()["policy"]["error"]
    assert ready.json()["policy"]["healthy"] is False


async def test_an_unexpected_failure_is_internal_for_the_caller_and_logged_for_the_operator(
    seeded: Seeded, uscc: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug, quoting 320104199001011234")

        monkeypatch.setattr(client.gateway.sources["JS"], "fetch", broken)
        with caplog.at_level(logging.ERROR, logger="deltagate.errors"):
            body = await client.query(QUERY, {"u": uscc}, token=token("SH", "one_stop_app"))
    assert body["data"] == {"legalPerson": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert error["path"] == ["legalPerson"]
    assert "320104199001011234" not in str(body)  # nothing of the failure reaches the caller
    assert "unexpected error at ['legalPerson']" in caplog.text
    assert "RuntimeError" in caplog.text  # the operator gets the traceback


@pytest.mark.parametrize(
    ("root_path", "path", "route"),
    [
        ("", "/graphql", "/graphql"),
        ("/api", "/api/graphql", "/graphql"),  # mounted below a prefix (``--root-path``)
        ("/api", "/graphql", "/graphql"),  # a server that does not put the prefix in ``path``
        ("/api", "/apigraphql", "/apigraphql"),  # a prefix is a whole segment
        ("/api", "/api", ""),
    ],
)
def test_operations_are_routed_as_starlette_routes_them(
    root_path: str, path: str, route: str
) -> None:
    from starlette._utils import get_route_path

    from gateway.edge.app import _route_path

    scope = {"type": "http", "path": path, "root_path": root_path}
    assert _route_path(scope) == route == get_route_path(scope)
