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
    delegation_audience = "deltagate-zj"     # the lower's [delegation] id: delegate each caller
    timeout = 3.0                # and breaker_failures, breaker_reset as for postgres
    tls_ca = "zj-ca.pem"         # optional: trust only this CA for the lower's certificate
    tls_cert = "delta-client.pem" # optional: the client certificate (mutual TLS) and its key
    tls_key = "delta-client.key"

    [upper]                      # optional: keys whose prefix no configured region holds
    url = "https://gw.national.example/graphql"   # go to the upper-level platform
    token_env = "DELTAGATE_UPPER_TOKEN"           # the keys of a gateway source, and
    code = "CN"                  # the name its errors carry (extensions.region; default UPPER)

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
    signing_key = "delegation-key.pem"       # an upper's own: signs its delegations (EC P-256
    signing_key_id = "delta-2024"            # or RSA >= 2048), its kid in the lowers' JWKS
    ttl = 30                     # seconds a delegation lives (at most 60)

    [audit]
    dsn = "postgresql://gateway@db-audit/deltagate_audit"   # required in production
    timeout = 5.0                # seconds for one audit write or read
    checkpoint_interval = 5.0    # seconds between signed checkpoints of every chain's head
    gather = 0.001               # most seconds a write waits for the events of operations
                                 # still running, to commit them together (0, the default:
                                 # never waits; worth it where the CPU is the limit)
    chains = 2                   # chains each worker appends to, a connection each: how
                                 # many commits it may have in flight at once (1, the
                                 # default; more where a commit waits milliseconds)

    [tls]                        # serve HTTPS (deltagate serve); paths relative to this file
    cert = "server.pem"          # the server's certificate chain and its key
    key = "server.key"
    client_ca = "upper-ca.pem"   # client certificates must come from this CA (mutual TLS)
    require_client_cert = true   # default: true when client_ca is set
    [console]                    # the auditor console at /console (docs/console-api.md)
    enabled = true               # default: on outside production, off in production
    export_max_rows = 10000      # most events one CSV export holds
    span_retention_days = 30     # spans of audited operations kept (and span_max_rows)
    working_hours = "08:30-18:00"            # China Standard Time, for OUTSIDE_HOURS
    distinct_subjects_threshold = 100        # and the other signal thresholds

Environment (wins over the file): ``DELTAGATE_MODE``, ``DELTAGATE_HOST``,
``DELTAGATE_PORT``, ``DELTAGATE_JWT_SECRET``, ``DELTAGATE_MASK_SECRET``,
``DELTAGATE_POLICY_DIR``, ``DELTAGATE_OPERATIONS_MANIFEST``, ``DELTAGATE_BATCHING``
(``0`` for one query per key, a benchmark baseline), ``DELTAGATE_AUDIT_DSN``,
``DELTAGATE_AUDIT_CHECKPOINT_SECRET`` (signs the audit checkpoints; required in
production with an audit database; ``deltagate audit verify`` needs the same),
``DELTAGATE_AUDIT_GATHER`` and ``DELTAGATE_AUDIT_CHAINS`` (``audit.gather``, ``audit.chains``),
``DELTAGATE_RATE_LIMIT_URL`` and ``DELTAGATE_DSN_<REGION>`` (e.g. ``DELTAGATE_DSN_SH``).
Secrets belong in the environment, not in the file.
Tracing is configured with the standard ``OTEL_*`` variables (``gateway.telemetry.spans``).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.core.delegation import DEFAULT_DELEGATION_TTL, MAX_DELEGATION_LIFETIME
from gateway.core.errors import ConfigError
from gateway.core.regions import Region, RegionRegistry, shipped_regions
from gateway.core.types import RegionCode
from gateway.edge.auth import DEFAULT_MAX_TOKEN_LIFETIME
from gateway.edge.datafile import read_toml
from gateway.edge.delegated import DEFAULT_ACTING_ROLES
from gateway.edge.query_limits import Limits
from gateway.sources.mapping import SHIPPED_MAPPINGS
from policies import SHIPPED_POLICY_DIR
from resolvers.console_settings import ConsoleSettings

#: The mapping files shipped for the four regions' synthetic schemas.

MODES = ("development", "production")

logger = logging.getLogger("deltagate.settings")


#: The source kinds and the keys a ``[sources.XX]`` table of each may hold.
_COMMON_KEYS = {"kind", "timeout", "breaker_failures", "breaker_reset", "name", "prefixes"}
#: A gateway source's TLS client options: the CA it trusts, the certificate it presents.
_TLS_CLIENT_KEYS = {"tls_ca", "tls_cert", "tls_key"}
SOURCE_KEYS: Mapping[str, frozenset[str]] = {
    "postgres": frozenset({*_COMMON_KEYS, "dsn", "mapping", "pool_min", "pool_max"}),
    "gateway": frozenset(
        {*_COMMON_KEYS, *_TLS_CLIENT_KEYS, "url", "token_env", "matter", "delegation_audience"}
    ),
}
#: The keys of ``[upper]``: a gateway source's, without a region's name and prefixes.
UPPER_KEYS = frozenset({*SOURCE_KEYS["gateway"] - {"kind", "name", "prefixes"}, "code"})
#: Seconds a gateway source's breaker stays open: a trial is one small HTTP request, and a
#: lower gateway that restarts should be back in full answers within a few seconds.
GATEWAY_BREAKER_RESET = 2.0
#: The name an upper-level source's errors carry unless ``[upper] code`` says otherwise.
DEFAULT_UPPER_CODE = "UPPER"


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """One region's source: its kind and the options the kind takes.

    Attributes:
        kind: ``postgres`` (``dsn``, ``mapping``, pool sizes) or ``gateway``
            (``url`` of a lower gateway's ``/graphql``, its service ``token``
            read from the environment variable ``token_env``, an optional ``matter``,
            and ``delegation_audience``, the lower's ``[delegation] id``: with the
            upper's signing key, each request carries a delegation for its caller).
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
    delegation_audience: str | None = None
    timeout: float = 5.0
    pool_min: int = 1
    pool_max: int = 10
    breaker_failures: int = 3
    breaker_reset: float = 5.0
    tls: TlsClientSettings | None = None

    def options(self) -> dict[str, Any]:
        """The keyword options of ``gateway.sources.build_source`` for this kind."""
        if self.kind == "gateway":
            options: dict[str, Any] = {
                "region": self.region,
                "url": self.url,
                "token": self.token,
                "matter": self.matter,
                "timeout": self.timeout,
                "delegation_audience": self.delegation_audience,
            }
            if self.tls is not None:
                options["tls"] = self.tls.context()
            return options
        return {
            "region": self.region,
            "dsn": self.dsn,
            "mapping": self.mapping,
            "timeout": self.timeout,
            "min_size": self.pool_min,
            "max_size": self.pool_max,
        }

    def check(self, *, production: bool, where: str | None = None) -> None:
        """Refuse options the kind cannot run with, naming the entry."""
        where = where or f"sources.{self.region}"
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
class TlsClientSettings:
    """How a gateway source checks the lower's certificate and which one it presents.

    Attributes:
        ca: the CA bundle the lower's server certificate must chain to (None: the
            system's trusted CAs).
        cert, key: the client certificate (PEM chain) and its private key, for a
            lower that requires one (mutual TLS); both or neither.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base: Path, where: str) -> TlsClientSettings:
        paths = {}
        for key in ("tls_ca", "tls_cert", "tls_key"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}.{key} must be the path of a PEM file")
            paths[key] = base / value if value else None
        if (paths["tls_cert"] is None) != (paths["tls_key"] is None):
            raise ConfigError(f"{where}: tls_cert and tls_key go together")
        return cls(ca=paths["tls_ca"], cert=paths["tls_cert"], key=paths["tls_key"])

    def context(self) -> ssl.SSLContext:
        """The client's SSL context; ``ConfigError`` if a file cannot be read."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS files of a gateway source: {exc}") from None
        return context


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """HTTPS for ``deltagate serve`` (``[tls]``), with client certificates for mutual TLS.

    Attributes:
        cert, key: the server's certificate chain and private key (PEM).
        client_ca: the CA bundle client certificates must chain to.
        require_client_cert: refuse a connection without a client certificate from
            ``client_ca`` (the TLS handshake fails: no request is read at all).
    """

    cert: Path
    key: Path
    client_ca: Path | None = None
    require_client_cert: bool = False

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base: Path) -> TlsSettings:
        for key in ("cert", "key"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise ConfigError(f"tls.{key} is required (the path of a PEM file)")
        client_ca = table.get("client_ca")
        if client_ca is not None and (not isinstance(client_ca, str) or not client_ca):
            raise ConfigError("tls.client_ca must be the path of a PEM file")
        require = table.get("require_client_cert", client_ca is not None)
        if not isinstance(require, bool):
            raise ConfigError("tls.require_client_cert must be true or false")
        if require and client_ca is None:
            raise ConfigError("tls.require_client_cert needs tls.client_ca (the CA to accept)")
        return cls(
            cert=base / table["cert"],
            key=base / table["key"],
            client_ca=base / client_ca if client_ca else None,
            require_client_cert=require,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """The ``ssl_*`` options of ``uvicorn.run``."""
        for path in (self.cert, self.key, self.client_ca):
            if path is not None and not path.is_file():
                raise ConfigError(f"tls: {path} is not a readable file")
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = (
                ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
            )
        return options


@dataclass(frozen=True, kw_only=True)
class DelegationSettings:
    """This gateway's part in the cascade (``[delegation]``): as a lower, as an upper, or both.

    As a lower it accepts delegations from the gateways above it (``trusted_jwks``
    with ``trusted_issuers``); as an upper it signs delegations for its own
    callers (``signing_key`` with ``signing_key_id``), sent to every ``gateway``
    source with a ``delegation_audience``.

    Attributes:
        id: this gateway's id: the audience a delegation to it must name, and the
            issuer (``iss``, ``act.sub``) of those it signs.
        trusted_jwks: the JWKS file of the public keys of the trusted upper
            gateways (None: no delegation is accepted).
        trusted_issuers: the ids of the upper gateways the keys sign for.
        acting_roles: a service token must hold one of them to act for others.
        signing_key: the PEM file of this gateway's private key (EC P-256 or RSA
            of 2048 bits or more; None: it signs no delegation).
        signing_key_id: that key's ``kid`` in the lowers' trusted JWKS.
        ttl: seconds each delegation it signs lives (1 to 60).
    """

    id: str
    trusted_jwks: Path | None = None
    trusted_issuers: tuple[str, ...] = ()
    acting_roles: tuple[str, ...] = DEFAULT_ACTING_ROLES
    signing_key: Path | None = None
    signing_key_id: str | None = None
    ttl: int = DEFAULT_DELEGATION_TTL

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base: Path) -> DelegationSettings:
        """The ``[delegation]`` table, checked."""
        if not isinstance(table.get("id"), str) or not table["id"].strip():
            raise ConfigError("delegation.id is required (a non-empty string)")
        texts: dict[str, str | None] = {}
        for key in ("trusted_jwks", "signing_key", "signing_key_id"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"delegation.{key} must be a non-empty string")
            texts[key] = value
        if texts["trusted_jwks"] is None and texts["signing_key"] is None:
            raise ConfigError(
                "delegation needs trusted_jwks (to accept delegations from the gateways above)"
                " or signing_key (to sign them for the gateways below), or both"
            )
        lists = {}
        for key, default, needed in (
            ("trusted_issuers", None, texts["trusted_jwks"] is not None),
            ("acting_roles", DEFAULT_ACTING_ROLES, True),
        ):
            value = table.get(key, default)
            if value is None and not needed:
                lists[key] = ()
                continue
            if (
                not isinstance(value, list | tuple)
                or not value
                or not all(isinstance(v, str) and v.strip() for v in value)
            ):
                raise ConfigError(f"delegation.{key} must be a non-empty list of names")
            lists[key] = tuple(value)
        ttl = table.get("ttl", DEFAULT_DELEGATION_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise ConfigError("delegation.ttl must be a whole number of seconds")
        jwks, key_path = texts["trusted_jwks"], texts["signing_key"]
        return cls(
            id=table["id"],
            trusted_jwks=base / jwks if jwks is not None else None,
            trusted_issuers=lists["trusted_issuers"],
            acting_roles=lists["acting_roles"],
            signing_key=base / key_path if key_path is not None else None,
            signing_key_id=texts["signing_key_id"],
            ttl=ttl,
        ).check()

    def check(self) -> DelegationSettings:
        """Refuse a half-configured side (``ConfigError`` naming the key)."""
        if self.trusted_jwks is not None and not self.trusted_issuers:
            raise ConfigError(
                "delegation.trusted_issuers must name the gateways trusted_jwks signs for"
            )
        if (self.signing_key is None) != (self.signing_key_id is None):
            raise ConfigError(
                "delegation.signing_key and delegation.signing_key_id go together"
                " (the key and its kid in the lowers' trusted JWKS)"
            )
        if not 0 < self.ttl <= MAX_DELEGATION_LIFETIME:
            raise ConfigError(f"delegation.ttl must be 1 to {MAX_DELEGATION_LIFETIME} seconds")
        return self


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
        audit_gather: most seconds the audit writer waits, before a write, for the events
            of operations still running (group commit under load; 0 never waits).
        audit_chains: chains each worker process appends to, each on a connection of its
            own, so that a batch is sent while another's commit waits for the disk.
        rate_limit_url: the shared store of the rate limits (Redis), so that every
            replica and worker draws on one bucket per app; None keeps the buckets
            in each process.
        rate_limit_timeout: seconds a request waits for the store before the
            per-process fall-back decides it.
        rate_limit_processes: how many gateway processes (replicas × workers)
            share a quota; while the store is unreachable each process allows
            1/N of each app's quota (1: the full quota in each).
        upper: the upper-level source (``[upper]``, a ``gateway`` source whose
            ``region`` is its ``code``): keys no configured region holds are read
            there; None answers them ``null``.
        tls: HTTPS for ``deltagate serve`` (``[tls]``), with client certificates
            from a CA when ``client_ca`` is set; None serves plain HTTP.
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
    audit_gather: float = 0.0
    audit_chains: int = 1
    regions: RegionRegistry = field(default_factory=shipped_regions)
    delegation: DelegationSettings | None = None
    upper: SourceSettings | None = None
    tls: TlsSettings | None = None
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @property
    def serves_console(self) -> bool:
        """Whether ``/console`` is served: by default outside production only."""
        return self.console.serves_page(production=self.production)

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
        signs = self.delegation is not None and self.delegation.signing_key is not None
        for source in self.sources:
            source.check(production=self.production)
            if source.delegation_audience is not None and not signs:
                raise ConfigError(
                    f"sources.{source.region}: delegation_audience is set, but this gateway has"
                    " no [delegation] signing_key and signing_key_id to sign delegations with"
                )
            if source.region not in self.regions:
                raise ConfigError(
                    f"sources.{source.region}: {source.region} is not a known region; "
                    "give it a name and prefixes"
                )
        if self.upper is not None:
            self.upper.check(production=self.production, where="upper")
            if self.upper.delegation_audience is not None and not signs:
                raise ConfigError(
                    "upper: delegation_audience is set, but this gateway has no [delegation]"
                    " signing_key and signing_key_id to sign delegations with"
                )
            if self.upper.region in self.regions or self.upper.region in {
                s.region for s in self.sources
            }:
                raise ConfigError(
                    f"upper.code: {self.upper.region} is a region here; "
                    "the upper-level source needs a name of its own"
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
        if not 1 <= self.audit_chains <= 16:
            raise ConfigError("audit.chains must be between 1 and 16")
        if not 0 <= self.audit_gather <= 0.1:
            raise ConfigError("audit.gather must be between 0 and 0.1 seconds")
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
    if env.get("DELTAGATE_AUDIT_GATHER"):
        changes["audit_gather"] = _seconds(env["DELTAGATE_AUDIT_GATHER"], "DELTAGATE_AUDIT_GATHER")
    if env.get("DELTAGATE_AUDIT_CHAINS"):
        changes["audit_chains"] = _int(env["DELTAGATE_AUDIT_CHAINS"], "DELTAGATE_AUDIT_CHAINS")
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
    upper = settings.upper
    if upper is not None and upper.token_env is not None and env.get(upper.token_env):
        changes["upper"] = replace(upper, token=env[upper.token_env])
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
    known = {
        "gateway", "auth", "policy", "sources", "limits", "operations", "audit", "delegation",
        "upper", "tls", "console",
    }  # fmt: skip
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
    audit = _section(raw, "audit", {"dsn", "timeout", "checkpoint_interval", "gather", "chains"})
    delegation = _section(
        raw,
        "delegation",
        {
            "id", "trusted_jwks", "trusted_issuers", "acting_roles",
            "signing_key", "signing_key_id", "ttl",
        },
    )  # fmt: skip
    upper = _section(raw, "upper", set(UPPER_KEYS))
    tls = _section(raw, "tls", {"cert", "key", "client_ca", "require_client_cert"})
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
        audit_gather=_number(audit.get("gather", 0.0), "audit.gather"),
        audit_chains=_int(audit.get("chains", 1), "audit.chains"),
        regions=regions,
        delegation=DelegationSettings.from_table(delegation, base) if delegation else None,
        upper=_upper_source(upper, base) if upper else None,
        tls=TlsSettings.from_table(tls, base) if tls else None,
        console=ConsoleSettings.from_table(_section(raw, "console", None)),
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
        return _gateway_source(region, table, base)
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


def _upper_source(table: Mapping[str, Any], base: Path) -> SourceSettings:
    """``[upper]``: a gateway source under a name of its own, holding no prefixes."""
    code = table.get("code", DEFAULT_UPPER_CODE)
    if not isinstance(code, str):
        raise ConfigError("upper.code must be a string")
    try:
        # The same rules as a region code: it is written where region codes are read.
        Region(code=code, name=code, prefixes=("00",))
    except ConfigError as exc:
        raise ConfigError(f"upper.code: {exc}") from None
    return _gateway_source(code, {k: v for k, v in table.items() if k != "code"}, base, "upper")


def _gateway_source(
    region: str, table: Mapping[str, Any], base: Path, where: str | None = None
) -> SourceSettings:
    where = where or f"sources.{region}"
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
    audience = table.get("delegation_audience")
    if audience is not None and (not isinstance(audience, str) or not audience.strip()):
        raise ConfigError(f"{where}: delegation_audience must be the lower's [delegation] id")
    return SourceSettings(
        region=region.upper(),
        kind="gateway",
        url=table["url"],
        token_env=token_env,
        matter=matter,
        delegation_audience=audience,
        timeout=_number(table.get("timeout", 5.0), f"{where}.timeout"),
        breaker_failures=_int(table.get("breaker_failures", 3), f"{where}.breaker_failures"),
        breaker_reset=_number(
            table.get("breaker_reset", GATEWAY_BREAKER_RESET), f"{where}.breaker_reset"
        ),
        tls=(
            TlsClientSettings.from_table(table, base, where)
            if _TLS_CLIENT_KEYS & set(table)
            else None
        ),
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


def _seconds(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{where} must be a number of seconds, not {value!r}") from None


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be an integer, not {value!r}") from None
