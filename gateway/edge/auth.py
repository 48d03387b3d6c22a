"""Caller authentication: ``Authorization: Bearer <JWT>`` in, a ``Caller`` out.

Token claims: ``sub`` (the caller app's id), ``region`` (a code of the
region registry, e.g. ``SH``, or ``NATIONAL``), ``roles`` (a list of role names), ``exp``;
a citizen's own token also carries ``subject``, their ID number.

Two ways to sign:

- HS256 with a shared secret (``DELTAGATE_JWT_SECRET``): development and the
  demo; ``mint_token`` makes such tokens. Never in production, whatever the
  environment holds: whoever has the secret (every process that verifies with
  it, every shell the demo printed it in) could sign any roles it liked.
- RS256 against the public keys of a JWKS file: production. The file is
  re-read when it changes, so keys can be rotated without a restart.

``exp`` (and ``iat``, ``nbf`` when present) must be NumericDates, JSON numbers
of seconds (RFC 7519 §2); and a token may live at most ``max_lifetime``
seconds, from its ``iat`` and from now, so a stolen token is not good for days.

A token that verified is remembered (by its exact text, signature included)
until it expires, so an app calling with the same token again is not checked
again from scratch: parsing and verifying an RS256 token costs a tenth of a
millisecond, about as much as a whole cached GraphQL look-up spends on its
document. What is remembered is dropped when the signing keys change, and an
expired token is refused whether remembered or not.

Each algorithm is accepted only with its own kind of key: an HS256 token is
never checked against an RSA public key (the classic algorithm-confusion
attack), and ``none`` is never accepted. Any failure is ``Unauthenticated``
(HTTP 401) with a short reason that names no key, secret or claim value.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from gateway.core.errors import ConfigError, Unauthenticated
from gateway.core.identifiers import is_valid_id_number
from gateway.core.regions import NATIONAL, shipped_regions
from gateway.core.types import Caller

logger = logging.getLogger("deltagate.auth")

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes).
MIN_SECRET_BYTES = 32
# NIST SP 800-131A: RSA signature keys of at least 2048 bits.
MIN_RSA_BITS = 2048
# A token is a few hundred bytes; refuse to parse anything much larger.
MAX_TOKEN_CHARS = 8192
# Verified tokens remembered at the most: a gateway's callers are apps, each with a
# token or a few at a time; the oldest is forgotten first.
VERIFIED_TOKENS = 4096
#: The longest a token may live (``[auth] max_token_lifetime``): an hour, the usual
#: ceiling for an access token an identity provider issues to a government app.
DEFAULT_MAX_TOKEN_LIFETIME = 3600
_NUMERIC_DATES = ("exp", "iat", "nbf")
# Each role is one more policy question per field, so their number is bounded.
MAX_ROLES = 16
_MAX_NAME_CHARS = 128


class TokenVerifier:
    """Checks bearer tokens and returns the verified ``Caller``.

    Args:
        hs256_secret: the HS256 secret (at least 32 bytes), or None to refuse HS256.
        jwks_path: a JWKS file with the RSA public keys for RS256, or None to refuse RS256.
        audience: if set, the ``aud`` claim must name it.
        issuer: if set, the ``iss`` claim must equal it.
        leeway: seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
        max_lifetime: the most seconds a token may span, ``iat`` to ``exp``, or
            have left to live.
        jwks_reload_interval: seconds between checks of the JWKS file for changes.
        clock: monotonic seconds, for the JWKS checks.
        wall_clock: seconds since the epoch, for the expiry of remembered tokens.
        regions: the region codes a caller may claim as home, besides ``NATIONAL``
            (the registry's; default: the shipped four).

    Raises:
        ConfigError: neither key source is given, the secret is too short, the
            JWKS file holds no usable RSA key, or ``max_lifetime`` is not positive.

    Example::

        verifier = TokenVerifier(hs256_secret=settings.jwt_secret)
        caller = verifier.verify(request.headers.get("authorization"))
    """

    def __init__(
        self,
        *,
        hs256_secret: str | bytes | None = None,
        jwks_path: str | os.PathLike[str] | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 10.0,
        max_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME,
        jwks_reload_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        regions: Collection[str] | None = None,
    ) -> None:
        if hs256_secret is None and jwks_path is None:
            raise ConfigError("authentication needs an HS256 secret or a JWKS file")
        if not max_lifetime > 0:
            raise ConfigError("the maximum token lifetime must be a positive number of seconds")
        self._secret = _secret_bytes(hs256_secret) if hs256_secret is not None else None
        self._jwks_path = Path(jwks_path) if jwks_path is not None else None
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        home_regions = shipped_regions().codes if regions is None else regions
        self.caller_regions = caller_regions(home_regions)
        self._reload_interval = jwks_reload_interval
        self._clock = clock
        self._wall_clock = wall_clock
        # token -> (caller, exp): tokens that verified, until they expire.
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._jwks_stamp: tuple[int, int] | None = None
        self._jwks_checked = clock()
        if self._jwks_path is not None:
            self._keys, self._jwks_stamp = _load_jwks(self._jwks_path)

    def verify(self, authorization_header: str | None) -> Caller:
        """The caller of a request, from its ``Authorization`` header value."""
        if authorization_header is None or not authorization_header.strip():
            raise Unauthenticated("a bearer token is required")
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return self.verify_token(token)

    def verify_token(self, token: str) -> Caller:
        """The caller a bare token speaks for."""
        self._maybe_reload_jwks(force=False)  # rotated keys forget what they verified
        known = self._verified.get(token)
        if known is not None:
            caller, expires = known
            if self._wall_clock() < expires + self.leeway:
                return caller
            del self._verified[token]
            raise Unauthenticated("token has expired")
        caller, expires = self._verify(token)
        verified = self._verified
        if len(verified) >= VERIFIED_TOKENS:
            del verified[next(iter(verified))]
        verified[token] = (caller, expires)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
        """The caller and the expiry (``exp``) of a token checked from scratch."""
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self._secret is not None:
            key = self._secret
        elif alg == "RS256" and self._jwks_path is not None:
            kid = header.get("kid")
            key = self._rsa_key(kid if isinstance(kid, str) else None)
        else:
            raise Unauthenticated("token algorithm not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub"], "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not yet valid") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("token signature is invalid") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise Unauthenticated("token was not issued for this gateway") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the '{exc.claim}' claim") from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            # PyJWT casts dates with int(): a float out of range escapes its own errors.
            raise Unauthenticated("malformed token") from None
        expires = self._check_lifetime(claims)
        return caller_from_claims(claims, self.caller_regions), expires

    def _check_lifetime(self, claims: Mapping[str, Any]) -> float:
        """``exp``, once the dates are numbers and span no more than ``max_lifetime``."""
        for name in _NUMERIC_DATES:
            value = claims.get(name)
            # PyJWT takes "4102444800" (a string) for a date; RFC 7519 says a number.
            if name in claims and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise Unauthenticated(f"token claim '{name}' must be a number of seconds")
        expires = float(claims["exp"])
        issued = claims.get("iat")
        # The span is on the issuer's clock alone; what is left to live, on ours too.
        if (issued is not None and expires - issued > self.max_lifetime) or (
            expires - self._wall_clock() > self.max_lifetime + self.leeway
        ):
            raise Unauthenticated(
                f"token lives longer than the {self.max_lifetime:g} seconds this gateway allows"
            )
        return expires

    def _rsa_key(self, kid: str | None) -> jwt.PyJWK:
        self._maybe_reload_jwks(force=kid not in self._keys)
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # a single key needs no kid
        if key is None:
            raise Unauthenticated("token signed with an unknown key")
        return key

    def _maybe_reload_jwks(self, *, force: bool) -> None:
        """Re-read the JWKS file if it changed; a bad file keeps the keys in use."""
        now = self._clock()
        # An unknown kid may mean rotated keys: look sooner, but never per request.
        min_gap = min(1.0, self._reload_interval) if force else self._reload_interval
        if self._jwks_path is None or now - self._jwks_checked < min_gap:
            return
        self._jwks_checked = now
        try:
            st = self._jwks_path.stat()
            if (st.st_mtime_ns, st.st_size) == self._jwks_stamp:
                return
            self._keys, self._jwks_stamp = _load_jwks(self._jwks_path)
            self._verified.clear()  # a key taken out must not live on in what it verified
            logger.info("JWKS reloaded: %d key(s)", len(self._keys))
        except (OSError, ConfigError) as exc:
            logger.error("JWKS reload failed; the keys in use stay: %s", exc)


def caller_regions(codes: Collection[str]) -> frozenset[str]:
    """The home regions a caller may claim: a registry region, or a national body."""
    return frozenset({*codes, NATIONAL})


def caller_from_claims(claims: Mapping[str, Any], regions: Collection[str]) -> Caller:
    """Check the claims deltagate relies on and make the ``Caller``.

    ``regions`` are the home regions a caller may claim (``caller_regions``).
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip() or len(sub) > _MAX_NAME_CHARS:
        raise Unauthenticated("token claim 'sub' must name the caller app")
    region = claims.get("region")
    if not isinstance(region, str) or region not in regions:
        raise Unauthenticated(f"token claim 'region' must be one of {', '.join(sorted(regions))}")
    roles = claims.get("roles")
    if (
        not isinstance(roles, list)
        or len(roles) > MAX_ROLES
        or not all(isinstance(r, str) and r.strip() and len(r) <= _MAX_NAME_CHARS for r in roles)
    ):
        raise Unauthenticated(
            f"token claim 'roles' must be a list of at most {MAX_ROLES} role names"
        )
    subject = claims.get("subject")
    if subject is not None and (not isinstance(subject, str) or not is_valid_id_number(subject)):
        raise Unauthenticated("token claim 'subject' must be a citizen ID number")
    return Caller(app=sub, region=region, roles=tuple(roles), subject=subject)


def mint_token(
    *,
    sub: str,
    region: str,
    roles: Sequence[str],
    secret: str | bytes,
    ttl: int = 3600,
    subject: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
    regions: Collection[str] | None = None,
) -> str:
    """A development token, HS256-signed with ``secret`` (what ``deltagate token`` prints).

    ``regions`` are the region codes ``region`` may be besides ``NATIONAL``
    (default: the shipped four).

    Raises:
        ValueError: a claim that ``TokenVerifier`` would refuse, a short secret or
            a ttl that is not positive.

    Example::

        token = mint_token(sub="counter-01", region="SH", roles=["one_stop_app"],
                           secret=os.environ["DELTAGATE_JWT_SECRET"])
    """
    roles = [roles] if isinstance(roles, str) else list(roles)
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "region": region,
        "roles": roles,
        "iat": issued,
        "exp": issued + int(ttl),
    }
    if subject is not None:
        claims["subject"] = subject
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    try:
        home_regions = caller_regions(shipped_regions().codes if regions is None else regions)
        caller_from_claims(claims, home_regions)
    except Unauthenticated as exc:
        raise ValueError(exc.message) from None
    try:
        key = _secret_bytes(secret)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    return jwt.encode(claims, key, algorithm="HS256")


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _load_jwks(path: Path) -> tuple[dict[str | None, jwt.PyJWK], tuple[int, int]]:
    """The RSA signing keys of a JWKS file by ``kid``, and the file's (mtime, size)."""
    try:
        st = path.stat()
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"JWKS file cannot be read: {exc}") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("JWKS file must hold an object with a 'keys' list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in entries:
        # Only RSA signature keys: a symmetric ("oct") key in a public key set
        # would let anyone who reads the file sign tokens.
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use") == "enc":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWTError as exc:
            raise ConfigError(f"JWKS key {entry.get('kid')!r} is unusable: {exc}") from exc
        if key.key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"JWKS key {entry.get('kid')!r} is shorter than {MIN_RSA_BITS} bits")
        keys[entry.get("kid") if isinstance(entry.get("kid"), str) else None] = key
    if not keys:
        raise ConfigError("JWKS file holds no RSA signature key")
    return keys, (st.st_mtime_ns, st.st_size)
