"""Configuration: a TOML file, the DELTAGATE_ environment over it, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.edge.settings import load_settings, shipped_mapping

SECRET = "settings-tests-secret-0123456789abcdefgh"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_configures_sources_and_the_environment_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [gateway]
        port = 9000
        [sources.SH]
        dsn = "postgresql://gw@db-sh/deltagate_sh"
        timeout = 2.5
        [sources.JS]
        dsn = "postgresql://gw@db-js/deltagate_js"
        mapping = "custom/js.toml"
        """,
    )
    settings = load_settings(
        path,
        env={
            "DELTAGATE_JWT_SECRET": SECRET,
            "DELTAGATE_PORT": "9100",
            "DELTAGATE_DSN_SH": "postgresql://gw@other-sh/deltagate_sh",
            "DELTAGATE_DSN_AH": "postgresql://gw@db-ah/deltagate_ah",
        },
    )
    sources = {s.region: s for s in settings.sources}
    assert settings.port == 9100
    assert sources["SH"].dsn == "postgresql://gw@other-sh/deltagate_sh"
    assert sources["SH"].timeout == 2.5
    assert sources["SH"].mapping == shipped_mapping("SH")
    assert sources["JS"].mapping == tmp_path / "custom/js.toml"
    assert sources["AH"].mapping == shipped_mapping("AH")
    assert settings.jwt_secret == SECRET


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[nonsense]\n", {"DELTAGATE_JWT_SECRET": SECRET}, "unknown configuration sections"),
        ("[gateway]\nport = 'x'\n", {"DELTAGATE_JWT_SECRET": SECRET}, "gateway.port"),
        ("[sources.SH]\ntimeout = 1\n", {"DELTAGATE_JWT_SECRET": SECRET}, "dsn is required"),
        ("", {"DELTAGATE_JWT_SECRET": SECRET}, "no sources"),
        ("", {"DELTAGATE_DSN_SH": "postgresql://x/y"}, "DELTAGATE_JWT_SECRET"),
        (
            "[gateway]\nmode = 'production'\n",
            {"DELTAGATE_DSN_SH": "postgresql://x/y", "DELTAGATE_JWT_SECRET": SECRET},
            "RS256",
        ),
        ("[gateway\n", {}, "gateway.toml"),
    ],
)
def test_a_wrong_configuration_is_refused_with_its_reason(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env=env)


def test_production_needs_a_mask_secret(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}', encoding="utf-8")
    text = "[gateway]\nmode = 'production'\n[auth]\njwks_path = 'jwks.json'\n"
    with pytest.raises(ConfigError, match="DELTAGATE_MASK_SECRET"):
        load_settings(write(tmp_path, text), env={"DELTAGATE_DSN_SH": "postgresql://x/y"})


def test_production_takes_no_hs256_secret_whatever_the_environment_says(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}', encoding="utf-8")
    text = "[gateway]\nmode = 'production'\n[auth]\njwks_path = 'jwks.json'\n"
    env = {"DELTAGATE_DSN_SH": "postgresql://x/y", "DELTAGATE_JWT_SECRET": SECRET,
           "DELTAGATE_MASK_SECRET": SECRET, "DELTAGATE_AUDIT_DSN": "postgresql://x/a",
           "DELTAGATE_AUDIT_CHECKPOINT_SECRET": SECRET}  # fmt: skip
    production = load_settings(write(tmp_path, text), env=env)
    assert production.hs256_secret is None
    development = load_settings(write(tmp_path, text.replace("production", "development")), env=env)
    assert development.hs256_secret == SECRET


def test_production_needs_the_audit_checkpoint_secret(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}', encoding="utf-8")
    text = "[gateway]\nmode = 'production'\n[auth]\njwks_path = 'jwks.json'\n"
    env = {"DELTAGATE_DSN_SH": "postgresql://x/y", "DELTAGATE_MASK_SECRET": SECRET,
           "DELTAGATE_AUDIT_DSN": "postgresql://x/a"}  # fmt: skip
    with pytest.raises(ConfigError, match="DELTAGATE_AUDIT_CHECKPOINT_SECRET"):
        load_settings(write(tmp_path, text), env=env)
    # In the environment, never the file: it is a secret.
    with pytest.raises(ConfigError, match="unknown"):
        load_settings(write(tmp_path, text + "[audit]\ncheckpoint_secret = 'x'\n"), env=env)
    env["DELTAGATE_AUDIT_CHECKPOINT_SECRET"] = SECRET
    settings = load_settings(write(tmp_path, text + "[audit]\ncheckpoint_interval = 2\n"), env=env)
    assert (settings.audit_checkpoint_secret, settings.audit_checkpoint_interval) == (SECRET, 2.0)


@pytest.mark.parametrize("interval", ["0", "-1", "'often'"])
def test_a_wrong_checkpoint_interval_is_refused(tmp_path: Path, interval: str) -> None:
    text = f"[sources.SH]\ndsn = 'postgresql://x/y'\n[audit]\ncheckpoint_interval = {interval}\n"
    with pytest.raises(ConfigError, match=r"audit\.checkpoint_interval"):
        load_settings(write(tmp_path, text), env={"DELTAGATE_JWT_SECRET": SECRET})


@pytest.mark.parametrize(
    ("key", "default", "in_file", "in_env"),
    [("gather", 0, "0.001", "0.002"), ("chains", 1, "2", "4")],
)
def test_the_audit_writer_is_configured_and_the_environment_wins(
    tmp_path: Path, key: str, default: float, in_file: str, in_env: str
) -> None:
    text = "[sources.SH]\ndsn = 'postgresql://x/y'\n[audit]\n"
    env = {"DELTAGATE_JWT_SECRET": SECRET}
    field = f"audit_{key}"
    assert getattr(load_settings(write(tmp_path, text), env=env), field) == default
    configured = load_settings(write(tmp_path, text + f"{key} = {in_file}\n"), env=env)
    assert getattr(configured, field) == float(in_file)
    env[f"DELTAGATE_AUDIT_{key.upper()}"] = in_env
    overridden = load_settings(write(tmp_path, text + f"{key} = {in_file}\n"), env=env)
    assert getattr(overridden, field) == float(in_env)


def test_wrong_audit_chains_are_refused(tmp_path: Path) -> None:
    text = "[sources.SH]\ndsn = 'postgresql://x/y'\n[audit]\n"
    for wrong in ("0", "17", "'two'"):
        with pytest.raises(ConfigError, match=r"audit\.chains"):
            load_settings(
                write(tmp_path, text + f"chains = {wrong}\n"), env={"DELTAGATE_JWT_SECRET": SECRET}
            )


@pytest.mark.parametrize(
    ("line", "env"),
    [("gather = -0.001", {}), ("gather = 1", {}), ("gather = 'soon'", {}),
     ("", {"DELTAGATE_AUDIT_GATHER": "soon"}), ("", {"DELTAGATE_AUDIT_GATHER": "nan"})],
)  # fmt: skip
def test_a_wrong_audit_gather_wait_is_refused(
    tmp_path: Path, line: str, env: dict[str, str]
) -> None:
    # A writer that waited seconds for events would hold every audited answer that long.
    text = f"[sources.SH]\ndsn = 'postgresql://x/y'\n[audit]\n{line}\n"
    with pytest.raises(ConfigError, match=r"audit\.gather|DELTAGATE_AUDIT_GATHER"):
        load_settings(write(tmp_path, text), env={"DELTAGATE_JWT_SECRET": SECRET, **env})


def test_the_maximum_token_lifetime_is_configured(tmp_path: Path) -> None:
    env = {"DELTAGATE_JWT_SECRET": SECRET}
    sources = '[sources.SH]\ndsn = "postgresql://gw@db-sh/x"\n'
    assert load_settings(write(tmp_path, sources), env=env).max_token_lifetime == 3600
    text = "[auth]\nmax_token_lifetime = 900\n" + sources
    assert load_settings(write(tmp_path, text), env=env).max_token_lifetime == 900
    for bad, message in (("0", "positive"), ("'1h'", "must be a number")):
        with pytest.raises(ConfigError, match=message):
            load_settings(write(tmp_path, text.replace("900", bad)), env=env)


def test_limits_and_the_operations_manifest_are_configured(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [limits]
        max_depth = 6
        max_cost = 5000
        rate_limits = false
        [operations]
        manifest = "operations.json"
        [sources.SH]
        dsn = "postgresql://gw@db-sh/deltagate_sh"
        """,
    )
    settings = load_settings(path, env={"DELTAGATE_JWT_SECRET": SECRET})
    assert (settings.limits.max_depth, settings.limits.max_cost) == (6, 5000)
    assert settings.limits.max_aliases == 30  # the default
    assert settings.rate_limits is False
    assert settings.operations_manifest == tmp_path / "operations.json"
    moved = load_settings(
        path,
        env={"DELTAGATE_JWT_SECRET": SECRET, "DELTAGATE_OPERATIONS_MANIFEST": "/etc/ops.json"},
    )
    assert moved.operations_manifest == Path("/etc/ops.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\nmax_width = 3\n", "unknown keys max_width"),
        ("[limits]\nmax_depth = -1\n", "limits.max_depth must be a positive integer"),
        ("[limits]\nmax_page_size = 1000\n", "limits.max_page_size is at most 100"),
        ("[limits]\nrate_limits = 'no'\n", "rate_limits must be true or false"),
        ("[operations]\nmanifests = 'x'\n", "unknown keys manifests"),
    ],
)
def test_bad_limits_are_refused_at_start(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text + '[sources.SH]\ndsn = "postgresql://gw@db-sh/x"\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={"DELTAGATE_JWT_SECRET": SECRET})


GATEWAY_SOURCE = """[sources.JS]
kind = "gateway"
url = "https://gw.js.example/graphql"
token_env = "DELTAGATE_UPSTREAM_TOKEN_JS"
matter = "JH-HUKOU-MIGRATION"
timeout = 2.5
breaker_failures = 2
"""


def test_a_gateway_source_takes_its_token_from_the_named_variable(tmp_path: Path) -> None:
    env = {"DELTAGATE_JWT_SECRET": SECRET, "DELTAGATE_UPSTREAM_TOKEN_JS": "service-token"}
    (source,) = load_settings(write(tmp_path, GATEWAY_SOURCE), env=env).sources
    assert (source.kind, source.url, source.matter, source.timeout) == (
        "gateway", "https://gw.js.example/graphql", "JH-HUKOU-MIGRATION", 2.5,
    )  # fmt: skip
    assert source.breaker_failures == 2
    assert source.options()["token"] == "service-token"
    assert "service-token" not in repr(source)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (GATEWAY_SOURCE, {}, "set DELTAGATE_UPSTREAM_TOKEN_JS"),
        (GATEWAY_SOURCE.replace("https://", "ftp://"), {"T": "x"}, "url must be"),
        (GATEWAY_SOURCE + 'dsn = "postgresql://x/y"\n', {}, "unknown keys for kind 'gateway': dsn"),
        (GATEWAY_SOURCE.replace("DELTAGATE_UPSTREAM", "UPSTREAM"), {}, "DELTAGATE_"),
        ('[sources.JS]\nkind = "grpc"\n', {}, "unknown kind 'grpc'"),
        ('[sources.JS]\nkind = "gateway"\n', {}, "url is required"),
        (GATEWAY_SOURCE, {"DELTAGATE_DSN_JS": "postgresql://x/y"}, "kind 'gateway'"),
        (
            GATEWAY_SOURCE.replace("https://", "http://") + "[gateway]\nmode = 'production'\n",
            {"DELTAGATE_UPSTREAM_TOKEN_JS": "t"},
            "https",
        ),
    ],
)
def test_a_wrong_gateway_source_is_refused_with_its_reason(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    env = {"DELTAGATE_JWT_SECRET": SECRET, **env}
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env=env)


def test_delegation_is_configured_and_checked(tmp_path: Path) -> None:
    env = {"DELTAGATE_JWT_SECRET": SECRET}
    sources = '[sources.SH]\ndsn = "postgresql://gw@db-sh/x"\n'
    assert load_settings(write(tmp_path, sources), env=env).delegation is None
    text = (
        '[delegation]\nid = "deltagate-js"\ntrusted_jwks = "upper-jwks.json"\n'
        'trusted_issuers = ["deltagate-delta"]\n' + sources
    )
    delegation = load_settings(write(tmp_path, text), env=env).delegation
    assert delegation is not None
    assert delegation.id == "deltagate-js"
    assert delegation.trusted_jwks == tmp_path / "upper-jwks.json"
    assert delegation.trusted_issuers == ("deltagate-delta",)
    assert delegation.acting_roles == ("delta_platform",)
    for bad, message in (
        ('id = "deltagate-js"\n', "needs trusted_jwks .* or signing_key"),
        ('id = "x"\ntrusted_jwks = "j.json"\n', "trusted_issuers must be"),
        ('id = "x"\ntrusted_jwks = "j.json"\ntrusted_issuers = []\n', "trusted_issuers must be"),
        ('id = "x"\nkey = 1\n', "unknown keys"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_settings(write(tmp_path, "[delegation]\n" + bad + sources), env=env)


def test_an_upper_signs_delegations_for_the_sources_that_name_an_audience(tmp_path: Path) -> None:
    env = {"DELTAGATE_JWT_SECRET": SECRET, "DELTAGATE_UPSTREAM_TOKEN_JS": "service-token"}
    signing = (
        '[delegation]\nid = "deltagate-delta"\nsigning_key = "delta.pem"\n'
        'signing_key_id = "delta-1"\nttl = 20\n'
    )
    delegating = GATEWAY_SOURCE + 'delegation_audience = "deltagate-js"\n'
    settings = load_settings(write(tmp_path, signing + delegating), env=env)
    assert settings.delegation is not None
    assert settings.delegation.signing_key == tmp_path / "delta.pem"
    assert settings.delegation.trusted_jwks is None  # an upper need not accept any itself
    assert (settings.delegation.signing_key_id, settings.delegation.ttl) == ("delta-1", 20)
    (js,) = [s for s in settings.sources if s.region == "JS"]
    assert js.options()["delegation_audience"] == "deltagate-js"
    for bad, message in (
        (delegating, "delegation_audience is set, but this gateway has no"),
        (signing.replace("ttl = 20", "ttl = 61") + delegating, "ttl must be 1 to 60"),
        (signing.replace("ttl = 20", 'ttl = "30"') + delegating, "ttl must be a whole number"),
        (signing.replace('signing_key_id = "delta-1"\n', "") + delegating, "go together"),
        (signing + GATEWAY_SOURCE + "delegation_audience = 3\n", "the lower's .delegation. id"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_settings(write(tmp_path, bad), env=env)
