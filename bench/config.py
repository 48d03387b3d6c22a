"""The configuration every server of a run starts from, and the callers' tokens.

One TOML file and one environment, written per run: every server (gateway,
floor, variants) reads the same sources, pool sizes, policy and secrets, so
the only differences between them are the ones a variant names.

The gateway runs as deployed:

- production mode: RS256 tokens checked against a JWKS file (a key pair made
  for the run), an audience and an issuer, a mask secret from the environment
  (``--mode development`` uses an HS256 secret instead);
- the audit log on, in its own database on the same server (made afresh for
  each run, so it does not grow from run to run);
- tracing on: every request sampled, spans exported over OTLP/HTTP to the
  run's collector (``bench.collector``);
- rate limits on, with a quota for the benchmark's two caller apps that one
  worker cannot reach (the shipped default, 50 requests per second, would
  refuse most of the load): the policy folder is the shipped one plus that
  quota, copied into the run's folder;
- the shipped policy, limits and metrics.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bench.workload import BenchCaller
from gateway.core.types import RegionCode
from gateway.edge.auth import mint_token
from policies import SHIPPED_POLICY_DIR

AUDIENCE = "deltagate"
ISSUER = "https://idp.bench.invalid"
KEY_ID = "bench-1"
#: A run lasts hours with the tokens made at its start; the gateways it runs allow them.
TOKEN_LIFETIME = 24 * 3600


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

    def token(self, caller: BenchCaller, ttl: int = TOKEN_LIFETIME) -> str:
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


#: Requests per second (and burst) of the benchmark's caller apps: far above one worker.
BENCH_QUOTA = 100_000


def write_config(
    directory: Path,
    dsns: dict[RegionCode, str],
    *,
    audit_dsn: str,
    collector_url: str,
    apps: Iterable[str],
    mode: str = "production",
    pool_max: int = 10,
    extra_env: dict[str, str] | None = None,
) -> RunConfig:
    """Write ``gateway.toml``, its policy folder and (in production mode) ``jwks.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    _policy_folder(directory / "policies", apps)
    mask_secret = secrets.token_urlsafe(32)
    env = {
        "DELTAGATE_MASK_SECRET": mask_secret,
        # Production mode signs the audit checkpoints; verify at the end needs the same key.
        "DELTAGATE_AUDIT_CHECKPOINT_SECRET": secrets.token_urlsafe(32),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector_url}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "deltagate",
    }
    lines = [
        "[gateway]",
        f'mode = "{mode}"',
        'host = "127.0.0.1"',
        "",
        "[policy]",
        'directory = "policies"',
        "",
        "[audit]",
        f"dsn = {json.dumps(audit_dsn)}",
        "",
        "[auth]",
        f"max_token_lifetime = {TOKEN_LIFETIME}",
    ]
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


def _policy_folder(folder: Path, apps: Iterable[str]) -> None:
    """The shipped policy files, and a quota for each of ``apps`` beside the shipped default."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for pattern in ("*.conf", "*.csv", "*.toml"):
        for source in SHIPPED_POLICY_DIR.glob(pattern):
            shutil.copy2(source, folder / source.name)
    quotas = folder / "quotas.toml"
    text = quotas.read_text(encoding="utf-8") if quotas.exists() else ""
    text += "\n# The benchmark's callers: more than one worker can serve.\n"
    for app in dict.fromkeys(apps):
        text += f"\n[apps.{app}]\nrate = {BENCH_QUOTA}\nburst = {BENCH_QUOTA}\n"
    quotas.write_text(text, encoding="utf-8")
