"""Bearer tokens: HS256 for development, RS256 against a JWKS file, and every way to fail."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from gateway.core.errors import ConfigError, Unauthenticated
from gateway.core.types import Caller
from gateway.edge.auth import TokenVerifier, mint_token

SECRET = "deltagate-test-secret-0123456789abcdef"
OTHER_SECRET = "another-test-secret-0123456789abcdefgh"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    base = {"sub": "counter-01", "region": "SH", "roles": ["one_stop_app"]}
    return jwt.encode({"exp": int(time.time()) + 600, **base, **claims}, secret, algorithm="HS256")


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(hs256_secret=SECRET)


# -- HS256 ---------------------------------------------------------------------


def test_minted_token_verifies_to_its_caller(verifier: TokenVerifier) -> None:
    token = mint_token(sub="counter-01", region="SH", roles=["one_stop_app"], secret=SECRET)
    assert verifier.verify(bearer(token)) == Caller(
        app="counter-01", region="SH", roles=("one_stop_app",)
    )


def test_citizen_token_carries_the_subject(verifier: TokenVerifier) -> None:
    token = mint_token(
        sub="citizen-app",
        region="JS",
        roles=["citizen"],
        secret=SECRET,
        subject="11010519491231002X",
    )
    assert verifier.verify(bearer(token)).subject == "11010519491231002X"


def test_national_caller_is_accepted(verifier: TokenVerifier) -> None:
    token = hs256({"region": "NATIONAL", "roles": ["auditor"]})
    assert verifier.verify(bearer(token)).region == "NATIONAL"


def test_scheme_is_case_insensitive(verifier: TokenVerifier) -> None:
    assert verifier.verify(f"bearer {hs256({})}").app == "counter-01"


def test_expired_token_is_refused(verifier: TokenVerifier) -> None:
    token = mint_token(
        sub="a", region="SH", roles=["one_stop_app"], secret=SECRET, now=time.time() - 7200
    )
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(bearer(token))


def test_leeway_tolerates_small_clock_skew() -> None:
    token = hs256({"exp": int(time.time()) - 5})
    assert TokenVerifier(hs256_secret=SECRET, leeway=30).verify(bearer(token)).app == "counter-01"
    with pytest.raises(Unauthenticated):
        TokenVerifier(hs256_secret=SECRET, leeway=0).verify(bearer(token))


def test_wrong_signature_is_refused(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.verify(bearer(hs256({}, secret=OTHER_SECRET)))


def test_tampered_claims_are_refused(verifier: TokenVerifier) -> None:
    header, _, signature = hs256({}).split(".")
    forged = jwt.utils.base64url_encode(
        json.dumps({"sub": "x", "region": "SH", "roles": ["auditor"], "exp": 2**31}).encode()
    ).decode()
    with pytest.raises(Unauthenticated):
        verifier.verify(bearer(f"{header}.{forged}.{signature}"))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.", "x" * 10000])
def test_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(bearer(token))


@pytest.mark.parametrize("header", [None, "", "   ", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_missing_or_non_bearer_header_is_refused(
    verifier: TokenVerifier, header: str | None
) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(header)


def test_unsigned_token_is_refused(verifier: TokenVerifier) -> None:
    claims = {"sub": "x", "region": "SH", "roles": [], "exp": int(time.time()) + 60}
    token = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(Unauthenticated, match="algorithm"):
        verifier.verify(bearer(token))


@pytest.mark.parametrize(
    "claims",
    [
        {"region": "BJ"},
        {"region": "sh"},
        {"region": None},
        {"roles": "one_stop_app"},
        {"roles": [1, 2]},
        {"roles": [""]},
        {"roles": ["r"] * 17},
        {"sub": ""},
        {"subject": "110105194912310021"},  # wrong check character
        {"subject": 42},
    ],
)
def test_bad_claims_are_refused(verifier: TokenVerifier, claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthenticated, match="claim"):
        verifier.verify(bearer(hs256(claims)))


def test_missing_claims_are_refused(verifier: TokenVerifier) -> None:
    for claim in ("sub", "exp", "region", "roles"):
        claims = {"sub": "a", "region": "SH", "roles": ["x"], "exp": int(time.time()) + 60}
        del claims[claim]
        with pytest.raises(Unauthenticated):
            verifier.verify(bearer(jwt.encode(claims, SECRET, algorithm="HS256")))


def test_audience_and_issuer_are_checked_when_configured() -> None:
    strict = TokenVerifier(hs256_secret=SECRET, audience="deltagate", issuer="https://idp.example")
    good = hs256({"aud": "deltagate", "iss": "https://idp.example"})
    assert strict.verify(bearer(good)).app == "counter-01"
    for claims in ({"aud": "other", "iss": "https://idp.example"}, {"aud": "deltagate"}):
        with pytest.raises(Unauthenticated):
            strict.verify(bearer(hs256(claims)))


def test_messages_do_not_echo_the_token_or_claims(verifier: TokenVerifier) -> None:
    token = hs256({"region": "SECRET-REGION-VALUE"})
    with pytest.raises(Unauthenticated) as raised:
        verifier.verify(bearer(token))
    assert "SECRET-REGION-VALUE" not in raised.value.message
    assert token not in raised.value.message


def test_mint_token_refuses_what_the_verifier_would_refuse() -> None:
    with pytest.raises(ValueError, match="region"):
        mint_token(sub="a", region="BJ", roles=["x"], secret=SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        mint_token(sub="a", region="SH", roles=["x"], secret="short")
    with pytest.raises(ValueError, match="ttl"):
        mint_token(sub="a", region="SH", roles=["x"], secret=SECRET, ttl=0)


def test_mint_token_sets_the_ttl() -> None:
    token = mint_token(sub="a", region="SH", roles="one_stop_app", secret=SECRET, ttl=60, now=1000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60
    assert claims["roles"] == ["one_stop_app"]


def test_verifier_needs_a_key_and_a_long_secret() -> None:
    with pytest.raises(ConfigError):
        TokenVerifier()
    with pytest.raises(ConfigError):
        TokenVerifier(hs256_secret="too-short")


# -- RS256 with a JWKS file ------------------------------------------------------


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "use": "sig", "alg": "RS256"}


def write_jwks(path: Path, *keys: dict[str, Any]) -> None:
    path.write_text(json.dumps({"keys": list(keys)}), encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def rs256(key: rsa.RSAPrivateKey, kid: str | None, **claims: Any) -> str:
    base = {"sub": "prod-app", "region": "ZJ", "roles": ["joint_handling_officer"]}
    headers = {"kid": kid} if kid else None
    payload = {"exp": int(time.time()) + 600, **base, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers=headers)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def jwks_path(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "jwks.json"
    write_jwks(path, jwk(signing_key, "key-1"))
    return path


def test_rs256_token_verifies_against_the_jwks(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(jwks_path=jwks_path)
    caller = verifier.verify(bearer(rs256(signing_key, "key-1")))
    assert caller == Caller(app="prod-app", region="ZJ", roles=("joint_handling_officer",))


def test_rs256_single_key_needs_no_kid(jwks_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    assert (
        TokenVerifier(jwks_path=jwks_path).verify(bearer(rs256(signing_key, None))).region == "ZJ"
    )


def test_rs256_token_from_another_key_is_refused(jwks_path: Path) -> None:
    with pytest.raises(Unauthenticated, match="signature"):
        TokenVerifier(jwks_path=jwks_path).verify(bearer(rs256(new_rsa_key(), "key-1")))


def test_rs256_unknown_kid_is_refused(jwks_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(Unauthenticated, match="unknown key"):
        TokenVerifier(jwks_path=jwks_path).verify(bearer(rs256(signing_key, "key-9")))


def test_rs256_expired_token_is_refused(jwks_path: Path, signing_key: rsa.RSAPrivateKey) -> None:
    token = rs256(signing_key, "key-1", exp=int(time.time()) - 3600)
    with pytest.raises(Unauthenticated, match="expired"):
        TokenVerifier(jwks_path=jwks_path).verify(bearer(token))


def test_hs256_is_refused_when_only_a_jwks_is_configured(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    # Algorithm confusion: an HS256 token "signed" with the public key must not pass.
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "x", "region": "SH", "roles": ["auditor"], "exp": int(time.time()) + 60}
    signing_input = b".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": "key-1"}, claims)
    )
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()
    with pytest.raises(Unauthenticated, match="algorithm"):
        TokenVerifier(jwks_path=jwks_path).verify(bearer(token))


def test_rotated_keys_are_picked_up_without_a_restart(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    now = [0.0]
    verifier = TokenVerifier(jwks_path=jwks_path, jwks_reload_interval=30, clock=lambda: now[0])
    new_key = new_rsa_key()
    write_jwks(jwks_path, jwk(signing_key, "key-1"), jwk(new_key, "key-2"))
    now[0] = 2.0  # an unknown kid makes the verifier look again, at most once a second
    assert verifier.verify(bearer(rs256(new_key, "key-2"))).app == "prod-app"


def test_broken_jwks_on_reload_keeps_the_keys_in_use(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    now = [0.0]
    verifier = TokenVerifier(jwks_path=jwks_path, jwks_reload_interval=1, clock=lambda: now[0])
    jwks_path.write_text("{not json", encoding="utf-8")
    now[0] = 5.0
    assert verifier.verify(bearer(rs256(signing_key, "key-1"))).app == "prod-app"


def test_jwks_without_rsa_signature_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"})
    with pytest.raises(ConfigError):
        TokenVerifier(jwks_path=path)


def test_jwks_with_a_short_rsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    write_jwks(path, jwk(weak, "weak"))
    with pytest.raises(ConfigError, match="2048"):
        TokenVerifier(jwks_path=path)


def test_both_key_sources_accept_both_algorithms(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier(hs256_secret=SECRET, jwks_path=jwks_path)
    assert verifier.verify(bearer(hs256({}))).app == "counter-01"
    assert verifier.verify(bearer(rs256(signing_key, "key-1"))).app == "prod-app"


# -- dates and lifetime --------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("kind", [str, float, bool])
def test_a_date_that_is_not_a_number_is_refused(
    verifier: TokenVerifier, claim: str, kind: type
) -> None:
    now = int(time.time())
    value = {"exp": now + 600, "iat": now, "nbf": now - 1}[claim]
    odd: Any = {str: str(value), float: float("inf"), bool: True}[kind]
    if kind is float and claim != "exp":
        odd = float("-inf")
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(bearer(hs256({claim: odd})))
    assert refused.value.message in (
        f"token claim '{claim}' must be a number of seconds",
        "malformed token",
        "token has expired",
    )


def test_a_string_exp_is_refused_with_its_reason(verifier: TokenVerifier) -> None:
    # PyJWT on its own takes "1700000600" for a date: the gateway does not.
    with pytest.raises(Unauthenticated, match="'exp' must be a number"):
        verifier.verify(bearer(hs256({"exp": str(int(time.time()) + 600)})))


@pytest.mark.parametrize(
    ("iat", "exp"),
    [
        (0, 3600 + 1),  # issued now, one second too long
        (-86400 + 60, 60),  # issued yesterday for a day: a minute left, but too long a span
        (None, 7 * 86400),  # no iat: what is left to live counts
    ],
)
def test_a_token_living_longer_than_the_maximum_is_refused(
    verifier: TokenVerifier, iat: int | None, exp: int
) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"exp": now + exp}
    if iat is not None:
        claims["iat"] = now + iat
    with pytest.raises(Unauthenticated, match="longer than the 3600 seconds"):
        verifier.verify(bearer(hs256(claims)))


def test_the_maximum_token_lifetime_is_configurable() -> None:
    now = int(time.time())
    two_hours = hs256({"iat": now, "exp": now + 7200})
    with pytest.raises(Unauthenticated, match="longer than"):
        TokenVerifier(hs256_secret=SECRET).verify(bearer(two_hours))
    longer = TokenVerifier(hs256_secret=SECRET, max_lifetime=7200)
    assert longer.verify(bearer(two_hours)).app == "counter-01"
    shorter = TokenVerifier(hs256_secret=SECRET, max_lifetime=60)
    with pytest.raises(Unauthenticated, match="longer than the 60 seconds"):
        shorter.verify(bearer(mint_token(sub="a", region="SH", roles=["x"], secret=SECRET)))
    with pytest.raises(ConfigError, match="lifetime"):
        TokenVerifier(hs256_secret=SECRET, max_lifetime=0)


# -- verified tokens remembered ------------------------------------------------


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    wall = [time.time()]
    verifier = TokenVerifier(hs256_secret=SECRET, leeway=10, wall_clock=lambda: wall[0])
    token = hs256({"exp": int(wall[0]) + 60})
    assert verifier.verify(bearer(token)).app == "counter-01"
    wall[0] += 65  # within the leeway: still the caller
    assert verifier.verify(bearer(token)).app == "counter-01"
    wall[0] += 10
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(bearer(token))


def test_a_remembered_token_is_refused_once_its_key_is_taken_out(
    jwks_path: Path, signing_key: rsa.RSAPrivateKey
) -> None:
    now = [0.0]
    verifier = TokenVerifier(jwks_path=jwks_path, jwks_reload_interval=30, clock=lambda: now[0])
    token = rs256(signing_key, "key-1")
    assert verifier.verify(bearer(token)).app == "prod-app"
    write_jwks(jwks_path, jwk(new_rsa_key(), "key-2"))  # key-1 revoked
    now[0] = 31.0
    with pytest.raises(Unauthenticated, match="unknown key"):
        verifier.verify(bearer(token))


def test_a_token_altered_after_it_verified_is_checked_afresh(verifier: TokenVerifier) -> None:
    token = hs256({})
    assert verifier.verify(bearer(token)).app == "counter-01"
    header, _, signature = token.split(".")
    forged_claims = {"sub": "counter-01", "region": "SH", "roles": ["auditor"], "exp": 2**31}
    forged = jwt.utils.base64url_encode(json.dumps(forged_claims).encode()).decode()
    with pytest.raises(Unauthenticated, match="signature"):
        verifier.verify(bearer(f"{header}.{forged}.{signature}"))
