"""Delegation tokens: what an upper gateway mints and what a lower accepts, once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.core.delegation import (
    DelegationVerifier,
    load_trusted_keys,
    mint_delegation,
)
from gateway.core.errors import ConfigError, Unauthenticated

UPPER = "deltagate-delta"
LOWER = "deltagate-js"
KID = "delta-1"


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def upper_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks(tmp_path: Path, upper_key: ec.EllipticCurvePrivateKey) -> Path:
    path = tmp_path / "upper-jwks.json"
    path.write_text(json.dumps({"keys": [ec_jwk(upper_key, KID)]}), encoding="utf-8")
    return path


@pytest.fixture
def verifier(jwks: Path) -> DelegationVerifier:
    return DelegationVerifier(audience=LOWER, keys=load_trusted_keys(jwks, [UPPER]))


def mint(key: Any, **changes: Any) -> str:
    options: dict[str, Any] = {
        "key": key, "kid": KID, "issuer": UPPER, "audience": LOWER, "sub": "jh-frontend",
        "region": "SH", "roles": ["joint_handling_officer"], "matter": "JH-HUKOU-MIGRATION",
    }  # fmt: skip
    return mint_delegation(**{**options, **changes})


def test_valid_delegation_names_the_acting_gateway_and_the_original_caller(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    delegation = verifier.verify(mint(upper_key, traceparent=traceparent))
    assert delegation.acting == UPPER
    assert (delegation.sub, delegation.region, delegation.roles) == (
        "jh-frontend", "SH", ("joint_handling_officer",),
    )  # fmt: skip
    assert delegation.matter == "JH-HUKOU-MIGRATION"
    assert delegation.traceparent == traceparent


def test_replayed_jti_is_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    token = mint(upper_key)
    verifier.verify(token)
    with pytest.raises(Unauthenticated, match="already used"):
        verifier.verify(token)


def test_each_minted_delegation_has_its_own_jti(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    assert verifier.verify(mint(upper_key)).jti != verifier.verify(mint(upper_key)).jti


def test_forged_signature_is_refused(verifier: DelegationVerifier) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.verify(mint(forger))


def test_unknown_kid_and_unknown_issuer_are_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="does not trust"):
        verifier.verify(mint(upper_key, kid="other"))
    with pytest.raises(Unauthenticated, match="does not trust"):
        verifier.verify(mint(upper_key, issuer="some-gateway"))


def test_wrong_audience_is_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="not issued for this gateway"):
        verifier.verify(mint(upper_key, audience="deltagate-zj"))


def test_expired_delegation_is_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(mint(upper_key, now=time.time() - 120))


def raw(key: Any, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "iss": UPPER, "act": {"sub": UPPER}, "sub": "jh-frontend", "region": "SH",
        "roles": ["joint_handling_officer"], "aud": LOWER, "jti": "j-1", "iat": now,
        "exp": now + 30,
    }  # fmt: skip
    return jwt.encode({**base, **claims}, key, algorithm="ES256", headers={"kid": KID})


def test_delegation_living_longer_than_60_seconds_is_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    now = int(time.time())
    with pytest.raises(Unauthenticated, match="longer than 60"):
        verifier.verify(raw(upper_key, iat=now, exp=now + 61))
    with pytest.raises(ValueError, match="1 to 60 seconds"):
        mint(upper_key, ttl=61)


@pytest.mark.parametrize(
    "claims",
    [
        {"act": {"sub": "someone-else"}},
        {"act": None},
        {"roles": "joint_handling_officer"},
        {"region": 3},
        {"exp": "9999999999"},
    ],
)
def test_bad_claims_are_refused(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]
) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(raw(upper_key, **claims))


def test_algorithm_is_the_trusted_keys_not_the_headers(
    verifier: DelegationVerifier, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    # An HS256 token keyed with the public key's text: the classic confusion attack.
    now = int(time.time())
    claims = {"iss": UPPER, "aud": LOWER, "sub": "x", "jti": "j", "iat": now, "exp": now + 30}
    forged = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": KID})
    with pytest.raises(Unauthenticated, match="algorithm"):
        verifier.verify(forged)


def test_a_full_replay_cache_refuses_rather_than_forgets(
    jwks: Path, upper_key: ec.EllipticCurvePrivateKey
) -> None:
    small = DelegationVerifier(
        audience=LOWER, keys=load_trusted_keys(jwks, [UPPER]), replay_capacity=2
    )
    small.verify(mint(upper_key))
    small.verify(mint(upper_key))
    with pytest.raises(Unauthenticated, match="in flight"):
        small.verify(mint(upper_key))


def test_rsa_keys_sign_rs256_delegations(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    entry = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": KID}
    path = tmp_path / "rsa.json"
    path.write_text(json.dumps({"keys": [entry]}), encoding="utf-8")
    verifier = DelegationVerifier(audience=LOWER, keys=load_trusted_keys(path, [UPPER]))
    assert verifier.verify(mint(key)).acting == UPPER


def test_trusted_jwks_without_signature_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oct.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}))
    with pytest.raises(ConfigError):
        load_trusted_keys(path, [UPPER])


def pem(key: Any, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_the_signers_jwks_is_what_a_lower_trusts_for_its_delegations(
    tmp_path: Path, kind: str
) -> None:
    from gateway.core.delegation import DelegationSigner, load_signing_key, public_jwks
    from gateway.core.types import Caller

    private = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key = load_signing_key(pem(private, tmp_path / "upper.pem"))
    published = public_jwks(key, "delta-2")
    assert "d" not in published["keys"][0]  # the public part only
    (tmp_path / "jwks.json").write_text(json.dumps(published), encoding="utf-8")
    verifier = DelegationVerifier(
        audience=LOWER, keys=load_trusted_keys(tmp_path / "jwks.json", [UPPER])
    )
    signer = DelegationSigner(key=key, kid="delta-2", issuer=UPPER, ttl=10)
    caller = Caller(app="jh-frontend", region="SH", roles=("joint_handling_officer",))
    traceparent = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    delegation = verifier.verify(signer.mint(LOWER, caller, "JH-HUKOU-MIGRATION", traceparent))
    assert (delegation.acting, delegation.sub, delegation.roles) == (
        UPPER, "jh-frontend", ("joint_handling_officer",),
    )  # fmt: skip
    assert delegation.traceparent == traceparent
    assert delegation.expires - time.time() <= 10


def test_a_signing_key_of_the_wrong_kind_or_size_is_refused(tmp_path: Path) -> None:
    from gateway.core.delegation import load_signing_key

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    other_curve = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError, match="shorter than 2048"):
        load_signing_key(pem(small, tmp_path / "small.pem"))
    with pytest.raises(ConfigError, match="P-256"):
        load_signing_key(pem(other_curve, tmp_path / "p384.pem"))
    (tmp_path / "junk.pem").write_text("not a key", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_signing_key(tmp_path / "junk.pem")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_signing_key(tmp_path / "missing.pem")
