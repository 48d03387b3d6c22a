"""Delegation tokens: an upper gateway vouches, per request, for the caller it acts for.

In the 国—省—市 cascade the upper gateway calls the lower with its own service
token, and with each request a short-lived delegation token signed with its own
key (ES256 or RS256, with a ``kid`` the lower finds in the JWKS it trusts)::

    {"iss": "deltagate-delta", "act": {"sub": "deltagate-delta"},    # RFC 8693 §4.1
     "sub": "jh-frontend", "region": "SH", "roles": ["joint_handling_officer"],
     "matter": "JH-HUKOU-MIGRATION", "aud": "deltagate-js",
     "jti": "…random…", "iat": 1718000000, "exp": 1718000030,
     "traceparent": "00-…-…-01"}                                      # optional

The lower then decides for the original caller (``sub``, ``region``, ``roles``)
under the delegation's matter, and for the acting gateway itself.

A delegation lives at most :data:`MAX_DELEGATION_LIFETIME` seconds: it is minted
for one request, so a stolen one is good for less than a minute, and the replay
cache that refuses a ``jti`` seen before needs to hold it no longer than that.
The replay cache is **per process**: replicas of the lower each keep their own,
so a token replayed to another replica within its minute is not caught there
(a shared store is left for later; the short lifetime bounds the window).

Nothing here imports the rest of the project beyond ``gateway.core``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import jwt

from gateway.core.errors import ConfigError, Unauthenticated
from gateway.core.types import Caller

__all__ = [
    "DEFAULT_DELEGATION_TTL",
    "MAX_DELEGATION_LIFETIME",
    "Delegation",
    "DelegationSigner",
    "DelegationVerifier",
    "load_signing_key",
    "load_trusted_keys",
    "mint_delegation",
    "public_jwks",
]

#: The longest a delegation may live, ``iat`` to ``exp`` (the issue's ceiling).
MAX_DELEGATION_LIFETIME = 60
#: The lifetime the upper gives a delegation by default: one request, with room for skew.
DEFAULT_DELEGATION_TTL = 30
#: The algorithms a delegation may be signed with, each with its own kind of key.
_ALGORITHMS: Mapping[str, str] = {"EC": "ES256", "RSA": "RS256"}
# NIST SP 800-131A: RSA signature keys of at least 2048 bits.
_MIN_RSA_BITS = 2048
_MAX_TOKEN_CHARS = 8192
_MAX_ROLES = 16
_MAX_NAME_CHARS = 128
#: ``jti`` values remembered at the most: a lower serves its uppers' requests of the
#: last minute, so this is thousands of requests a second before it fills.
DEFAULT_REPLAY_CAPACITY = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegation:
    """A verified delegation: who acts, and for whom.

    Attributes:
        acting: the acting (upper) gateway's id (``act.sub``, equal to ``iss``).
        sub: the original caller's app id.
        region: the original caller's home region, as the upper verified it.
        roles: the original caller's roles.
        matter: the matter code the original caller asked under, if any.
        traceparent: the W3C trace context of the upper's request, if sent.
        jti: the token's unique id.
        expires: ``exp``, seconds since the epoch.
    """

    acting: str
    sub: str
    region: str
    roles: tuple[str, ...]
    matter: str | None
    traceparent: str | None
    jti: str
    expires: float


def mint_delegation(
    *,
    key: Any,
    kid: str,
    issuer: str,
    audience: str,
    sub: str,
    region: str,
    roles: Sequence[str],
    matter: str | None = None,
    traceparent: str | None = None,
    ttl: int = DEFAULT_DELEGATION_TTL,
    now: float | None = None,
) -> str:
    """A delegation token for one request to the lower gateway ``audience``.

    ``key`` is the upper's private key (an EC P-256 key signs ES256, an RSA key
    RS256), ``kid`` its id in the JWKS the lower trusts.

    Raises:
        ValueError: a ttl outside 1..60 seconds, or a key of neither kind.

    Example::

        token = mint_delegation(key=private_key, kid="delta-2024", issuer="deltagate-delta",
                                audience="deltagate-js", sub=caller.app, region=caller.region,
                                roles=caller.roles, matter="JH-HUKOU-MIGRATION")
    """
    if not 0 < ttl <= MAX_DELEGATION_LIFETIME:
        raise ValueError(f"a delegation lives 1 to {MAX_DELEGATION_LIFETIME} seconds")
    algorithm = _algorithm_of(key)
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "act": {"sub": issuer},
        "sub": sub,
        "region": region,
        "roles": list(roles),
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": issued,
        "exp": issued + ttl,
    }
    if matter is not None:
        claims["matter"] = matter
    if traceparent is not None:
        claims["traceparent"] = traceparent
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationSigner:
    """The upper gateway's side: mints one delegation per request to a lower gateway.

    Attributes:
        key: the upper's private key (EC P-256 or RSA of 2048 bits or more).
        kid: its id in the JWKS the lowers trust (``deltagate delegation jwks``).
        issuer: the upper's own id (``[delegation] id``): ``iss`` and ``act.sub``.
        ttl: seconds each delegation lives (1 to 60).
    """

    key: Any = field(repr=False)
    kid: str
    issuer: str
    ttl: int = DEFAULT_DELEGATION_TTL

    def mint(
        self, audience: str, caller: Caller, matter: str | None, traceparent: str | None
    ) -> str:
        """A delegation for ``caller`` to the lower gateway ``audience``, for one request."""
        return mint_delegation(
            key=self.key, kid=self.kid, issuer=self.issuer, audience=audience,
            sub=caller.app, region=caller.region, roles=caller.roles, matter=matter,
            traceparent=traceparent, ttl=self.ttl,
        )  # fmt: skip


def load_signing_key(path: str | Path) -> Any:
    """The private key of a PEM file, if it can sign delegations (EC P-256, RSA >= 2048 bits).

    Raises:
        ConfigError: the file cannot be read, is not an unencrypted PEM private key,
            or holds a key of another kind or size.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"delegation signing key cannot be read: {exc}") from None
    except (ValueError, TypeError):
        raise ConfigError(
            f"delegation signing key {path} is not an unencrypted PEM private key"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name != "secp256r1":
            raise ConfigError("delegation signing key must be on P-256 (ES256)")
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ConfigError(f"delegation signing key is shorter than {_MIN_RSA_BITS} bits")
    else:
        raise ConfigError("delegation signing key must be an EC P-256 or an RSA key")
    return key


def public_jwks(key: Any, kid: str) -> dict[str, Any]:
    """The JWKS a lower gateway trusts for ``key``: its public part only, with ``kid``."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    algorithm = _algorithm_of(key)
    codec = ECAlgorithm if algorithm == "ES256" else RSAAlgorithm
    public = json.loads(codec.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": algorithm}]}


class DelegationVerifier:
    """Checks delegation tokens sent to this gateway (``audience``).

    Args:
        audience: this gateway's own id; a delegation for another is refused.
        keys: the trusted public keys by (issuer, ``kid``) (``load_trusted_keys``).
        leeway: seconds of clock skew tolerated on ``exp`` and ``iat``.
        wall_clock: seconds since the epoch.
        replay_capacity: ``jti`` values remembered at most; when that many unexpired
            ones are held, new delegations are refused (never is a ``jti`` forgotten
            before its token expires: that would let it be replayed).

    Every refusal is :class:`Unauthenticated` with a reason naming no claim value.
    """

    def __init__(
        self,
        *,
        audience: str,
        keys: Mapping[tuple[str, str], jwt.PyJWK],
        leeway: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        replay_capacity: int = DEFAULT_REPLAY_CAPACITY,
    ) -> None:
        if not audience:
            raise ConfigError("a delegation audience (this gateway's id) is required")
        if not keys:
            raise ConfigError("no key of a trusted gateway is configured for delegations")
        self.audience = audience
        self._keys = dict(keys)
        self.leeway = leeway
        self._wall_clock = wall_clock
        self._capacity = replay_capacity
        # jti -> exp: every delegation accepted, until it has expired (leeway included).
        self._seen: dict[str, float] = {}

    def verify(self, token: str) -> Delegation:
        """The delegation a token carries, once; the same token again is refused."""
        token = token.strip()
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise Unauthenticated("malformed delegation")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("malformed delegation") from None
        issuer, kid = unverified.get("iss"), header.get("kid")
        key = (
            self._keys.get((issuer, kid))
            if isinstance(issuer, str) and isinstance(kid, str)
            else None
        )
        if key is None:
            raise Unauthenticated("delegation from a gateway or key this gateway does not trust")
        # The algorithm is the key's, never the header's choice (no algorithm confusion).
        if header.get("alg") != key.algorithm_name:
            raise Unauthenticated("delegation algorithm not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": ["iss", "sub", "aud", "jti", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("delegation has expired") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("delegation signature is invalid") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("delegation was not issued for this gateway") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"delegation lacks the '{exc.claim}' claim") from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            raise Unauthenticated("malformed delegation") from None
        delegation = _delegation(claims)
        self._check_lifetime(claims)
        self._remember(delegation)
        return delegation

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        issued, expires = claims["iat"], claims["exp"]
        for value in (issued, expires):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Unauthenticated("delegation dates must be numbers of seconds")
            if not math.isfinite(value):
                raise Unauthenticated("delegation dates must be numbers of seconds")
        # On the issuer's clock (iat to exp) and on ours (what is left to live).
        if (
            expires - issued > MAX_DELEGATION_LIFETIME
            or expires - self._wall_clock() > MAX_DELEGATION_LIFETIME + self.leeway
        ):
            raise Unauthenticated(f"delegation lives longer than {MAX_DELEGATION_LIFETIME} seconds")

    def _remember(self, delegation: Delegation) -> None:
        now = self._wall_clock()
        seen = self._seen
        known = seen.get(delegation.jti)
        if known is not None and known + self.leeway > now:
            raise Unauthenticated("delegation was already used")
        if len(seen) >= self._capacity:
            # Forget only what has expired: an expired token is refused anyway.
            for jti in [j for j, exp in seen.items() if exp + self.leeway <= now]:
                del seen[jti]
            if len(seen) >= self._capacity:
                raise Unauthenticated("too many delegations in flight; try again")
        seen[delegation.jti] = delegation.expires


def _delegation(claims: Mapping[str, Any]) -> Delegation:
    """The claims' shapes checked: the acting gateway is the issuer, the caller is named."""
    act = claims.get("act")
    issuer = claims["iss"]
    if not isinstance(act, Mapping) or act.get("sub") != issuer:
        raise Unauthenticated("delegation 'act' must name the issuing gateway")
    sub, region, roles = claims.get("sub"), claims.get("region"), claims.get("roles")
    if not _name(sub) or not _name(region):
        raise Unauthenticated("delegation must name the original caller and its region")
    if (
        not isinstance(roles, list)
        or len(roles) > _MAX_ROLES
        or not all(_name(role) for role in roles)
    ):
        raise Unauthenticated(f"delegation 'roles' must be at most {_MAX_ROLES} role names")
    matter, traceparent, jti = claims.get("matter"), claims.get("traceparent"), claims["jti"]
    if matter is not None and not _name(matter):
        raise Unauthenticated("delegation 'matter' must be a matter code")
    if traceparent is not None and (not isinstance(traceparent, str) or len(traceparent) > 128):
        raise Unauthenticated("delegation 'traceparent' must be a W3C trace context")
    if not _name(jti):
        raise Unauthenticated("delegation 'jti' must be a token id")
    return Delegation(
        acting=issuer,
        sub=sub,
        region=region,
        roles=tuple(roles),
        matter=matter,
        traceparent=traceparent,
        jti=jti,
        expires=float(claims["exp"]),
    )


def _name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= _MAX_NAME_CHARS


def _algorithm_of(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError("a delegation is signed with an EC (ES256) or RSA (RS256) private key")


def load_trusted_keys(
    path: str | Path, issuers: Collection[str]
) -> dict[tuple[str, str], jwt.PyJWK]:
    """The public keys of a JWKS file, trusted for each of ``issuers``, by (issuer, kid).

    Only signature keys with a ``kid``: EC P-256 (ES256) and RSA of 2048 bits or more
    (RS256). A symmetric (``oct``) key in a trusted set would let anyone who reads
    the file sign delegations, so it is refused with the rest.

    Raises:
        ConfigError: the file cannot be read, or holds no usable key.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"trusted delegation JWKS cannot be read: {exc}") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("trusted delegation JWKS must hold an object with a 'keys' list")
    keys: dict[tuple[str, str], jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use") == "enc":
            continue
        algorithm = _ALGORITHMS.get(str(entry.get("kty")))
        kid = entry.get("kid")
        if algorithm is None or not isinstance(kid, str):
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm)
        except jwt.PyJWTError as exc:
            raise ConfigError(f"trusted delegation key {kid!r} is unusable: {exc}") from exc
        if algorithm == "RS256" and key.key.key_size < _MIN_RSA_BITS:
            raise ConfigError(
                f"trusted delegation key {kid!r} is shorter than {_MIN_RSA_BITS} bits"
            )
        if algorithm == "ES256" and key.key.curve.name != "secp256r1":
            raise ConfigError(f"trusted delegation key {kid!r} is not on P-256")
        for issuer in issuers:
            keys[(issuer, kid)] = key
    if not keys or not issuers:
        raise ConfigError("trusted delegation JWKS holds no usable signature key (EC or RSA, kid)")
    return keys
