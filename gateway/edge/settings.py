"""Gateway configuration: a TOML file, with secrets and a few deployment knobs from the environment.

Example ``gateway.toml``::

    [gateway]
    mode = "production"          # or "development": GraphiQL, dev secrets allowed
    host = "0.0.0.0"
    port = 8000

    [auth]
    jwks_path = "/etc/deltagate/jwks.json"   # RS256; or jwt_secret / DELTAGATE_JWT_SECRET for HS256
    audience = "deltagate"
    max_token_lifetime = 3600    # seconds a token may live, iat to exp (default 3600)

    [policy]
    directory = "/etc/deltagate/policies"    # default: the shipped policies/

    [sources.SH]
    kind = "postgres"
    dsn = "postgresql://gateway@db-sh/deltagate_sh"
    mapping = "sh"               # a shipped mapping, or the path of a mapping file
    timeout = 3.0                # seconds per backend call
    breaker_failures = 3         # consecutive failures that open the region's circuit
    breaker_reset = 5.0          # seconds before a trial call

    [sources.ZJ]                 # a region served by a lower gateway (the cascade)
    kind = "gateway"
    url = "https://gw.zj.example/graphql"    # the lower gateway's endpoint
    token_env = "DELTAGATE_UPSTREAM_TOKEN_ZJ" # the variable holding the service token
    matter = "JH-HUKOU-MIGRATION" # optional X-Matter-Code sent with every request
    timeout = 3.0                # and breaker_failures, breaker_reset as for postgres

    [sources.NJ]                 # a region beyond the shipped four (SH, JS, ZJ, AH):
    dsn = "postgresql://gateway@db-nj/deltagate_nj"
    mapping = "mappings/nj.toml" # its mapping file, relative to this file
    name = "南京"                # its name, and the admin-division prefixes (GB/T 2260)
    prefixes = ["3201"]          # of its keys; the longest matching prefix routes a key

    [limits]                     # every key optional; defaults in gateway/edge/query_limits.py
    max_depth = 10
    max_cost = 10000
    rate_limits = true           # per caller app, sized by quotas.toml in the policy folder
    rate_limit_url = "redis://ratelimit:6379/0"  # shared buckets (or DELTAGATE_RATE_LIMIT_URL)
    rate_limit_timeout = 0.05    # seconds a request waits for the store before the fall-back
    rate_limit_processes = 1     # processes (replicas x workers) the fall-back divides quotas by

    [operations]
    manifest = "operations.json" # when set, only registered operations are accepted

    [delegation]                 # the cascade: accept an upper gateway's requests for its callers
    id = "deltagate-js"          # this gateway's id: the audience a delegation must name
    trusted_jwks = "upper-jwks.json"         # public keys (ES256/RS256, with kid) of the uppers
    trusted_issuers = ["deltagate-delta"]    # the upper gateways' ids those keys sign for
    acting_roles = ["delta_platform"]        # a service token needs one to act for others

    [audit]
    dsn = "postgresql://gateway@db-audit/deltagate_audit"   # required in production
    timeout = 5.0                # seconds for one audit write or read
    checkpoint_interval = 5.0    # seconds between signed checkpoints of every chain's head

Environment (wins over the file): ``DELTAGATE_MODE``, ``DELTAGATE_HOST``,
``DELTAGATE_PORT``, ``DELTAGATE_JWT_SECRET``, ``DELTAGATE_MASK_SECRET``,
``DELTAGATE_POLICY_DIR``, ``DELTAGATE_OPERATIONS_MANIFEST``, ``DELTAGATE_BATCHING``
(``0`` for one query per key, a benchmark baseline), ``DELTAGATE_AUDIT_DSN``,
``DELTAGATE_AUDIT_CHECKPOINT_SECRET`` (signs the audit checkpoints; required in
production with an audit database; ``deltagate audit verify`` needs the same),
``DELTAGATE_RATE_LIMIT_URL`` and ``DELTAGATE_DSN_<REGION>`` (e.g. ``DELTAGATE_DSN_SH``).
Secrets belong in the environment, not in the file.
Tracing is configured with the standard ``OTEL_*`` variables (``gateway.telemetry.spans``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.core.errors import ConfigError
from gateway.core.regions import Region, RegionRegistry, shipped_regions
from gateway.core.types import RegionCode
from gateway.edge.auth import DEFAULT_MAX_TOKEN_LIFETIME
from gateway.edge.datafile import read_toml
from gateway.edge.delegated import DEFAULT_ACTING_ROLES
from gateway.edge.query_limits import Limits
from gateway.sources.mapping import SHIPPED_MAPPINGS
from policies import SHIPPED_POLICY_DIR

#: The mapping files shipped for the four regions' synthetic schemas.

MODES = ("development", "production")

logger = logging.getLogger("deltagate.settings")


#: The source kinds and the keys a ``[sources.XX]`` table of each may hold.
_COMMON_KEYS = {"kind", "timeout", "breaker_failures", "breaker_reset", "name", "prefixes"}
SOURCE_KEYS: Mapping[str, frozenset[str]] = {
    "postgres": frozenset({*_COMMON_KEYS, "dsn", "mapping", "pool_min", "pool_max"}),
    "gateway": frozenset({*_COMMON_KEYS, "url", "token_env", "matter"}),
}


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """One region's source: its kind and the options the kind takes.

    Attributes:
        kind: ``postgres`` (``dsn``, ``mapping``, pool sizes) or ``gateway``
            (``url`` of a lower gateway's ``/graphql``, its service ``token``
            read from the environment variable ``token_env``, an optional ``matter``).
        timeout: seconds per backend call (a query, or a request to the lower).
        breaker_failures, breaker_reset: the region's circuit breaker.
    """

    region: RegionCode
    kind: str = "postgres"
    dsn: str | None = None
    mapping: Path | None = None
    url: str | None = None
    token_env: str | None = None
    token: str | None = field(default=None, repr=False)
    matter: str | None = None
    timeout: float = 5.0
    pool_min: int = 1
    pool_max: int = 10
    breaker_failures: int = 3
    breaker_reset: float = 5.0

    def options(self) -> dict[str, Any]:
        """The keyword options of ``gateway.sources.build_source`` for this kind."""
        if self.kind == "gateway":
            return {
                "region": self.region,
                "url": self.url,
                "token": self.token,
                "matter": self.matter,
                "timeout": self.timeout,
            }
        return {
            "region": self.region,
            "dsn": self.dsn,
            "mapping": self.mapping,
            "timeout": self.timeout,
            "min_size": self.pool_min,
            "max_size": self.pool_max,
        }

    def check(self, *, production: bool) -> None:
        """Refuse options the kind cannot run with, naming the entry."""
        where = f"sources.{self.region}"
        if self.kind not in SOURCE_KEYS:
            raise ConfigError(
                f"{where}: unknown kind {self.kind!r} (known: {', '.join(sorted(SOURCE_KEYS))})"
            )
        if self.timeout <= 0:
            raise ConfigError(f"{where}: timeout must be positive")
        if self.kind == "postgres":
            if not self.dsn:
                raise ConfigError(f"{where}: dsn is required (or set DELTAGATE_DSN_{self.region})")
            if self.mapping is None:
                raise ConfigError(f"{where}: mapping is required")
            return
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must be the lower gateway's http(s)://…/graphql")
        if production and not self.url.startswith("https://"):
            # The service token and the released personal data would cross the network in clear.
            raise ConfigError(f"{where}: production mode needs an https:// url")
        if not self.token:
            variable = self.token_env or "token_env"
            raise ConfigError(f"{where}: set {variable} to the service token for {self.url}")


@dataclass(frozen=True, kw_only=True)
class DelegationSettings:
    """Delegated requests this gateway accepts from the gateways above it (``[delegation]``).

    Attributes:
        id: this gateway's id, the audience a delegation must name.
        trusted_jwks: the JWKS file of the public keys of the trusted upper gateways.
        trusted_issuers: the ids of the upper gateways the keys sign for.
        acting_roles: a service token must hold one of them to act for others.
    """

    id: str
    trusted_jwks: Path
    trusted_issuers: tuple[str, ...]
    acting_roles: tuple[str, ...] = DEFAULT_ACTING_ROLES

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base: Path) -> DelegationSettings:
        """The ``[delegation]`` table, checked."""
        for key in ("id", "trusted_jwks"):
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise ConfigError(f"delegation.{key} is required (a non-empty string)")
        lists = {}
        for key, default in (("trusted_issuers", None), ("acting_roles", DEFAULT_ACTING_ROLES)):
            value = table.get(key, default)
            if (
                not isinstance(value, list | tuple)
                or not value
                or not all(isinstance(v, str) and v.strip() for v in value)
            ):
                raise ConfigError(f"delegation.{key} must be a non-empty list of names")
            lists[key] = tuple(value)
        return cls(
            id=table["id"],
            trusted_jwks=base / table["trusted_jwks"],
            trusted_issuers=lists["trusted_issuers"],
            acting_roles=lists["acting_roles"],
        )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the gateway process needs to start.

    Attributes (those of the audit log, tokens and regions; the others are described in the module):
        regions: the region registry: the shipped four, with the regions the
            sources name (``name`` and ``prefixes``) added or changed.
        max_token_lifetime: the most seconds a bearer token may live (``iat`` to
            ``exp``, and from now); a longer-lived token is refused.
        audit_dsn: the audit database. Without one, every operation that would
            need an audit event is refused (``AUDIT_UNAVAILABLE``); production
            mode requires it.
        audit_timeout: seconds for one audit write or read.
        audit_checkpoint_secret: the HMAC secret of the audit checkpoints
            (``DELTAGATE_AUDIT_CHECKPOINT_SECRET``; the environment only).
        audit_checkpoint_interval: seconds between audit checkpoints.
        rate_limit_url: the shared store of the rate limits (Redis), so that every
            replica and worker draws on one bucket per app; None keeps the buckets
            in each process.
        rate_limit_timeout: seconds a request waits for the store before the
            per-process fall-back decides it.
        rate_limit_processes: how many gateway processes (replicas × workers)
            share a quota; while the store is unreachable each process allows
            1/N of each app's quota (1: the full quota in each).
    """

    mode: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str | None = None
    jwks_path: Path | None = None
    audience: str | None = None
    issuer: str | None = None
    max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME
    mask_secret: str | None = None
    policy_dir: Path = SHIPPED_POLICY_DIR
    policy_reload_interval: float = 2.0
    batching: bool = True
    sources: tuple[SourceSettings, ...] = field(default_factory=tuple)
    limits: Limits = field(default_factory=Limits)
    rate_limits: bool = True
    rate_limit_url: str | None = None
    rate_limit_timeout: float = 0.05
    rate_limit_processes: int = 1
    operations_manifest: Path | None = None
    audit_dsn: str | None = None
    audit_timeout: float = 5.0
    audit_checkpoint_secret: str | None = None
    audit_checkpoint_interval: float = 5.0
    regions: RegionRegistry = field(default_factory=shipped_regions)
    delegation: DelegationSettings | None = None

    @property
    def production(self) -> bool:
        return self.mode == "production"

    @property
    def hs256_secret(self) -> str | None:
        """The secret HS256 tokens are checked with: none in production, whatever is set."""
        return None if self.production else self.jwt_secret

    def check(self) -> Settings:
        """Refuse a configuration the gateway cannot run safely with."""
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not self.sources:
            raise ConfigError("no sources are configured")
        for source in self.sources:
            source.check(production=self.production)
            if source.region not in self.regions:
                raise ConfigError(
                    f"sources.{source.region}: {source.region} is not a known region; "
                    "give it a name and prefixes"
                )
        if self.jwt_secret is None and self.jwks_path is None:
            raise ConfigError("set DELTAGATE_JWT_SECRET (HS256) or auth.jwks_path (RS256)")
        if self.production and self.jwt_secret is not None and self.jwks_path is None:
            raise ConfigError("production mode takes RS256 tokens (auth.jwks_path), not HS256")
        if self.production and self.jwt_secret is not None:
            logger.warning("production mode: the HS256 secret is ignored; only RS256 is accepted")
        if not self.max_token_lifetime > 0:
            raise ConfigError("auth.max_token_lifetime must be a positive number of seconds")
        if self.production and not self.mask_secret:
            raise ConfigError("production mode needs DELTAGATE_MASK_SECRET")
        if self.production and not self.audit_dsn:
            raise ConfigError("production mode needs an audit database (DELTAGATE_AUDIT_DSN)")
        if self.audit_timeout <= 0:
            raise ConfigError("audit.timeout must be positive")
        if self.production and self.audit_dsn and not self.audit_checkpoint_secret:
            raise ConfigError(
                "production mode needs DELTAGATE_AUDIT_CHECKPOINT_SECRET (signs the audit"
                " checkpoints)"
            )
        if not self.audit_checkpoint_interval > 0:
            raise ConfigError("audit.checkpoint_interval must be a positive number of seconds")
        if self.rate_limit_url is not None and not self.rate_limit_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError(
                "limits.rate_limit_url (DELTAGATE_RATE_LIMIT_URL) must be a redis://, "
                "rediss:// or unix:// URL"
            )
        if not self.rate_limit_timeout > 0:
            raise ConfigError("limits.rate_limit_timeout must be a positive number of seconds")
        if self.rate_limit_processes < 1:
            raise ConfigError("limits.rate_limit_processes must be 1 or more")
        return self


def shipped_mapping(region: RegionCode) -> Path:
    return SHIPPED_MAPPINGS / f"{region.lower()}.toml"


def local_sources(dsn_for: Mapping[RegionCode, str]) -> tuple[SourceSettings, ...]:
    """Sources for the shipped mappings, one per region, e.g. over the embedded server."""
    return tuple(
        SourceSettings(region=region, dsn=dsn, mapping=shipped_mapping(region))
        for region, dsn in dsn_for.items()
    )


def load_settings(
    path: str | Path | None, env: Mapping[str, str] | None = None, *, check: bool = True
) -> Settings:
    """Read the file (if any), apply the environment, and check the result.

    ``check=False`` skips the checks a serving gateway needs (sources, secrets),
    for commands that read only part of the configuration.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value is wrong.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        base = path.parent
        raw = read_toml(path)
    settings = apply_environment(_from_table(raw, base), env)
    return settings.check() if check else settings


def apply_environment(settings: Settings, env: Mapping[str, str]) -> Settings:
    """The settings with the ``DELTAGATE_*`` environment variables applied."""
    changes: dict[str, Any] = {}
    for name, attr in (
        ("MODE", "mode"),
        ("HOST", "host"),
        ("JWT_SECRET", "jwt_secret"),
        ("MASK_SECRET", "mask_secret"),
        ("AUDIT_DSN", "audit_dsn"),
        ("AUDIT_CHECKPOINT_SECRET", "audit_checkpoint_secret"),
        ("RATE_LIMIT_URL", "rate_limit_url"),
    ):
        if env.get(f"DELTAGATE_{name}"):
            changes[attr] = env[f"DELTAGATE_{name}"]
    if env.get("DELTAGATE_PORT"):
        changes["port"] = _int(env["DELTAGATE_PORT"], "DELTAGATE_PORT")
    if env.get("DELTAGATE_BATCHING"):
        changes["batching"] = env["DELTAGATE_BATCHING"].lower() not in ("0", "false", "no", "off")
    if env.get("DELTAGATE_POLICY_DIR"):
        changes["policy_dir"] = Path(env["DELTAGATE_POLICY_DIR"])
    if env.get("DELTAGATE_OPERATIONS_MANIFEST"):
        changes["operations_manifest"] = Path(env["DELTAGATE_OPERATIONS_MANIFEST"])
    sources = {s.region: s for s in settings.sources}
    for region, source in sources.items():
        if source.token_env is not None and env.get(source.token_env):
            sources[region] = replace(source, token=env[source.token_env])
    for key, value in env.items():
        if key.startswith("DELTAGATE_DSN_") and value:
            region = key.removeprefix("DELTAGATE_DSN_").upper()
            current = sources.get(region)
            if current is not None and current.kind != "postgres":
                raise ConfigError(f"{key} is set, but sources.{region} is kind {current.kind!r}")
            sources[region] = (
                replace(current, dsn=value)
                if current
                else SourceSettings(region=region, dsn=value, mapping=shipped_mapping(region))
            )
    changes["sources"] = tuple(sources.values())
    return replace(settings, **changes)


def _from_table(raw: Mapping[str, Any], base: Path) -> Settings:
    known = {"gateway", "auth", "policy", "sources", "limits", "operations", "audit", "delegation"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown configuration sections: {', '.join(sorted(unknown))}")
    gateway = _section(raw, "gateway", {"mode", "host", "port", "batching"})
    auth = _section(
        raw, "auth", {"jwt_secret", "jwks_path", "audience", "issuer", "max_token_lifetime"}
    )
    policy = _section(raw, "policy", {"directory", "reload_interval"})
    limits = dict(_section(raw, "limits", None))
    rate_limits = limits.pop("rate_limits", True)
    if not isinstance(rate_limits, bool):
        raise ConfigError("limits.rate_limits must be true or false")
    rate_limit_url = limits.pop("rate_limit_url", None)
    if rate_limit_url is not None and not isinstance(rate_limit_url, str):
        raise ConfigError("limits.rate_limit_url must be a string")
    rate_limit_timeout = _number(
        limits.pop("rate_limit_timeout", 0.05), "limits.rate_limit_timeout"
    )
    rate_limit_processes = limits.pop("rate_limit_processes", 1)
    if isinstance(rate_limit_processes, bool) or not isinstance(rate_limit_processes, int):
        raise ConfigError("limits.rate_limit_processes must be an integer")
    operations = _section(raw, "operations", {"manifest"})
    audit = _section(raw, "audit", {"dsn", "timeout", "checkpoint_interval"})
    delegation = _section(
        raw, "delegation", {"id", "trusted_jwks", "trusted_issuers", "acting_roles"}
    )
    sources = []
    regions = shipped_regions()
    for region, table in _section(raw, "sources", None).items():
        sources.append(_source(region, table, base))
        if isinstance(table, dict) and ("name" in table or "prefixes" in table):
            regions = regions.with_region(
                Region.from_table(region.upper(), table, f"sources.{region}")
            )
    return Settings(
        mode=str(gateway.get("mode", "development")),
        host=str(gateway.get("host", "127.0.0.1")),
        port=_int(gateway.get("port", 8000), "gateway.port"),
        batching=bool(gateway.get("batching", True)),
        jwt_secret=auth.get("jwt_secret"),
        jwks_path=base / auth["jwks_path"] if "jwks_path" in auth else None,
        audience=auth.get("audience"),
        issuer=auth.get("issuer"),
        max_token_lifetime=_number(
            auth.get("max_token_lifetime", DEFAULT_MAX_TOKEN_LIFETIME), "auth.max_token_lifetime"
        ),
        policy_dir=base / policy["directory"] if "directory" in policy else SHIPPED_POLICY_DIR,
        policy_reload_interval=float(policy.get("reload_interval", 2.0)),
        sources=tuple(sources),
        limits=Limits.from_table(limits),
        rate_limits=rate_limits,
        rate_limit_url=rate_limit_url or None,
        rate_limit_timeout=rate_limit_timeout,
        rate_limit_processes=rate_limit_processes,
        operations_manifest=base / operations["manifest"] if "manifest" in operations else None,
        audit_dsn=str(audit["dsn"]) if "dsn" in audit else None,
        audit_timeout=float(audit.get("timeout", 5.0)),
        audit_checkpoint_interval=_number(
            audit.get("checkpoint_interval", 5.0), "audit.checkpoint_interval"
        ),
        regions=regions,
        delegation=DelegationSettings.from_table(delegation, base) if delegation else None,
    )


def _source(region: str, table: Any, base: Path) -> SourceSettings:
    where = f"sources.{region}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    kind = str(table.get("kind", "postgres"))
    known = SOURCE_KEYS.get(kind)
    if known is None:
        raise ConfigError(
            f"{where}: unknown kind {kind!r} (known: {', '.join(sorted(SOURCE_KEYS))})"
        )
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys for kind {kind!r}: {', '.join(sorted(unknown))}")
    if kind == "gateway":
        return _gateway_source(region, table)
    if "dsn" not in table:
        raise ConfigError(f"{where}: dsn is required (or set DELTAGATE_DSN_{region.upper()})")
    mapping = str(table.get("mapping", region.lower()))
    mapping_path = (
        shipped_mapping(mapping)
        if mapping.upper() in shipped_regions() and not mapping.endswith(".toml")
        else base / mapping
    )
    return SourceSettings(
        region=region.upper(),
        kind=str(table.get("kind", "postgres")),
        dsn=str(table["dsn"]),
        mapping=mapping_path,
        timeout=float(table.get("timeout", 5.0)),
        pool_min=_int(table.get("pool_min", 1), f"{where}.pool_min"),
        pool_max=_int(table.get("pool_max", 10), f"{where}.pool_max"),
        breaker_failures=_int(table.get("breaker_failures", 3), f"{where}.breaker_failures"),
        breaker_reset=float(table.get("breaker_reset", 5.0)),
    )


def _gateway_source(region: str, table: Mapping[str, Any]) -> SourceSettings:
    where = f"sources.{region}"
    for key in ("url", "token_env"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"{where}: {key} is required for kind 'gateway'")
    token_env = table["token_env"]
    if not token_env.startswith("DELTAGATE_"):
        # The environment is read with one prefix (the process's other variables are not ours).
        raise ConfigError(f"{where}: token_env must name a DELTAGATE_* variable, not {token_env!r}")
    matter = table.get("matter")
    if matter is not None and not isinstance(matter, str):
        raise ConfigError(f"{where}: matter must be a matter code")
    return SourceSettings(
        region=region.upper(),
        kind="gateway",
        url=table["url"],
        token_env=token_env,
        matter=matter,
        timeout=_number(table.get("timeout", 5.0), f"{where}.timeout"),
        breaker_failures=_int(table.get("breaker_failures", 3), f"{where}.breaker_failures"),
        breaker_reset=_number(table.get("breaker_reset", 5.0), f"{where}.breaker_reset"),
    )


def _section(raw: Mapping[str, Any], name: str, keys: set[str] | None) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    if keys is not None and set(table) - keys:
        raise ConfigError(f"[{name}]: unknown keys {', '.join(sorted(set(table) - keys))}")
    return table


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {value!r}")
    return float(value)


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be an integer, not {value!r}") from None
