"""The configuration every server of a run starts from, and the callers' tokens.

One TOML file and one environment, written per run: every server (gateway,
floor, variants) reads the same sources, pool sizes, policy and secrets, so
the only differences between them are the ones a variant names.

By default the gateway runs in production mode, as callers meet it: RS256
tokens checked against a JWKS file (a key pair made for the run), an
audience and an issuer, and a mask secret from the environment. ``--mode
development`` uses an HS256 secret instead.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bench.workload import BenchCaller
from gateway.auth import mint_token
from gateway.types import RegionCode

AUDIENCE = "deltagate"
ISSUER = "https://idp.bench.invalid"
KEY_ID = "bench-1"


@dataclass(frozen=True)
class RunConfig:
    """The files and environment of one run.

    Attributes:
        path: the gateway configuration file (TOML).
        env: the ``DELTAGATE_*`` environment every server gets.
        mode: ``production`` or ``development``.
        mask_secret: the key of masked pseudonyms and page cursors.
    """

    path: Path
    env: dict[str, str]
    mode: str
    mask_secret: str
    _signing_key: object

    def token(self, caller: BenchCaller, ttl: int = 24 * 3600) -> str:
        """A bearer token for ``caller``, signed as the run's identity provider would."""
        if self.mode == "development":
            return mint_token(
                sub=caller.app,
                region=caller.region,
                roles=caller.roles,
                secret=self.env["DELTAGATE_JWT_SECRET"],
                ttl=ttl,
            )
        now = int(time.time())
        claims = {
            "sub": caller.app,
            "region": caller.region,
            "roles": list(caller.roles),
            "iat": now,
            "exp": now + ttl,
            "aud": AUDIENCE,
            "iss": ISSUER,
        }
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": KEY_ID})

    def headers(self, caller: BenchCaller) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token(caller)}"}
        if caller.matter:
            headers["X-Matter-Code"] = caller.matter
        return headers


def write_config(
    directory: Path,
    dsns: dict[RegionCode, str],
    *,
    mode: str = "production",
    pool_max: int = 10,
    extra_env: dict[str, str] | None = None,
) -> RunConfig:
    """Write ``gateway.toml`` (and, in production mode, ``jwks.json``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    mask_secret = secrets.token_urlsafe(32)
    env = {"DELTAGATE_MASK_SECRET": mask_secret}
    lines = ["[gateway]", f'mode = "{mode}"', 'host = "127.0.0.1"', "", "[auth]"]
    signing_key = None
    if mode == "production":
        signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
        jwks = {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}
        (directory / "jwks.json").write_text(json.dumps(jwks), encoding="utf-8")
        lines += ['jwks_path = "jwks.json"', f'audience = "{AUDIENCE}"', f'issuer = "{ISSUER}"']
    elif mode == "development":
        env["DELTAGATE_JWT_SECRET"] = secrets.token_urlsafe(32)
    else:
        raise ValueError(f"mode must be production or development, not {mode!r}")
    for region, dsn in dsns.items():
        lines += [
            "",
            f"[sources.{region}]",
            'kind = "postgres"',
            f"dsn = {json.dumps(dsn)}",
            f'mapping = "{region.lower()}"',
            f"pool_max = {pool_max}",
        ]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env.update(extra_env or {})
    return RunConfig(path, env, mode, mask_secret, signing_key)
