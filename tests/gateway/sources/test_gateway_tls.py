"""Mutual TLS between gateways: the lower requires a client certificate from its CA.

The lower is a real ``deltagate serve`` over HTTPS (``[tls]`` with ``client_ca``)
over the seeded JS database; the upper is served in-process with JS ``kind =
"gateway"`` (``tls_ca``, ``tls_cert``, ``tls_key``). The CAs and certificates are
made by the test. A connection the lower refuses, or a lower the upper does not
trust, is SOURCE_UNAVAILABLE for JS only: the other regions still answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import database_dsn
from gateway.edge.settings import SourceSettings, TlsClientSettings
from gateway.synthetic import region_dsn
from tests.cascade import CertificateAuthority, GatewayProcess, client_context, running
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

pytestmark = pytest.mark.slow

MATTER = "JH-HUKOU-MIGRATION"
QUERY = "query($u: [ID!]!) { legalPersons(usccs: $u) { uscc name } }"


@dataclass(frozen=True)
class Pki:
    """The cascade's CA (the lower's server certificate, the upper's client certificate)
    and another CA that signs certificates of its own."""

    ca: CertificateAuthority
    rogue: CertificateAuthority
    client: tuple[Path, Path]
    rogue_client: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder, "cascade CA")
    rogue = CertificateAuthority(folder, "other CA")
    return Pki(ca, rogue, ca.issue("delta gateway"), rogue.issue("delta gateway"))


@pytest.fixture(scope="module")
def lower(
    seeded: Seeded, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The Jiangsu gateway over HTTPS, accepting only client certificates of the cascade CA."""
    folder = tmp_path_factory.mktemp("lower-tls")
    cert, key = pki.ca.issue("gw js", server=True)
    config = f"""[limits]
rate_limits = false
[tls]
cert = {json.dumps(str(cert))}
key = {json.dumps(str(key))}
client_ca = {json.dumps(str(pki.ca.path))}
[sources.JS]
dsn = {json.dumps(region_dsn(seeded.dsn, "JS"))}
"""
    process = GatewayProcess(
        config,
        folder,
        {"DELTAGATE_AUDIT_DSN": database_dsn(seeded.dsn)},
        probe=client_context(pki.ca.path, *pki.client),
    )
    with running(process):
        yield process


def upper_settings(seeded: Seeded, lower: GatewayProcess, tls: TlsClientSettings) -> Any:
    settings = gateway_settings(seeded.dsn, rate_limits=False)
    js = SourceSettings(
        region="JS", kind="gateway", url=lower.url, matter=MATTER, timeout=5.0,
        token=token("SH", "joint_handling_officer", app="delta-gateway"),
        breaker_failures=1, breaker_reset=60.0, tls=tls,
    )  # fmt: skip
    return replace(settings, sources=tuple(js if s.region == "JS" else s for s in settings.sources))


async def ask(seeded: Seeded, lower: GatewayProcess, tls: TlsClientSettings) -> dict[str, Any]:
    usccs = [seeded.dataset.uscc("JS", 2), seeded.dataset.uscc("SH", 2)]
    async with serve(upper_settings(seeded, lower, tls)) as client:
        return await client.query(
            QUERY, {"u": usccs}, token=token("SH", "joint_handling_officer"), matter=MATTER
        )


def names(seeded: Seeded) -> list[str]:
    return [seeded.dataset.enterprise(region, 2)["name"] for region in ("JS", "SH")]


async def test_with_a_client_certificate_of_the_trusted_ca_the_upper_gets_the_data(
    seeded: Seeded, pki: Pki, lower: GatewayProcess
) -> None:
    cert, key = pki.client
    body = await ask(seeded, lower, TlsClientSettings(ca=pki.ca.path, cert=cert, key=key))
    assert "errors" not in body, body["errors"]
    assert [e["name"] for e in body["data"]["legalPersons"]] == names(seeded)


@pytest.mark.parametrize("certificate", ["none", "another CA's"])
async def test_the_lower_refuses_a_connection_without_a_certificate_of_its_ca(
    seeded: Seeded, pki: Pki, lower: GatewayProcess, certificate: str
) -> None:
    cert, key = pki.rogue_client if certificate == "another CA's" else (None, None)
    tls = TlsClientSettings(ca=pki.ca.path, cert=cert, key=key)
    body = await ask(seeded, lower, tls)
    js, sh = body["data"]["legalPersons"]
    assert js is None
    assert sh["name"] == names(seeded)[1]  # the other regions still answer
    assert [(e["path"], e["extensions"]) for e in body["errors"]] == [
        (["legalPersons", 0], {"code": "SOURCE_UNAVAILABLE", "region": "JS"})
    ]
    # Refused in the handshake: not even a bearer token's request is read.
    async with httpx.AsyncClient(verify=tls.context(), timeout=5) as direct:
        with pytest.raises(httpx.TransportError):
            await direct.post(
                lower.url,
                json={"query": "{ __typename }"},
                headers={"Authorization": f"Bearer {token('SH', 'one_stop_app')}"},
            )


async def test_the_upper_refuses_a_lower_whose_certificate_is_not_from_the_trusted_ca(
    seeded: Seeded, pki: Pki, lower: GatewayProcess
) -> None:
    cert, key = pki.client
    body = await ask(seeded, lower, TlsClientSettings(ca=pki.rogue.path, cert=cert, key=key))
    assert body["data"]["legalPersons"][0] is None
    assert body["data"]["legalPersons"][1]["name"] == names(seeded)[1]
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "SOURCE_UNAVAILABLE", "region": "JS"}
    ]
