"""The cascade's settings: ``[tls]`` for serving, TLS options of a gateway source, ``[upper]``."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.edge.settings import Settings, load_settings

ENV = {"DELTAGATE_JWT_SECRET": "settings-tests-secret-0123456789abcdefgh"}
SH = '[sources.SH]\ndsn = "postgresql://gw@db-sh/deltagate_sh"\n'
UPPER = """[upper]
url = "https://gw.national.example/graphql"
token_env = "DELTAGATE_UPPER_TOKEN"
code = "CN"
"""


def load(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={**ENV, **env})


def test_tls_paths_are_relative_to_the_file_and_a_client_ca_requires_certificates(
    tmp_path: Path,
) -> None:
    text = SH + '[tls]\ncert = "s.pem"\nkey = "s.key"\nclient_ca = "ca.pem"\n'
    settings = load(tmp_path, text)
    tls = settings.tls
    assert (tls.cert, tls.key, tls.client_ca) == (
        tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "ca.pem"
    )  # fmt: skip
    assert tls.require_client_cert is True
    with pytest.raises(ConfigError, match="not a readable file"):
        tls.uvicorn_options()  # the files are checked when serving starts
    for name in ("s.pem", "s.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    assert tls.uvicorn_options()["ssl_cert_reqs"] == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tls]\ncert = "s.pem"\n', "tls.key is required"),
        ('[tls]\ncert = "a"\nkey = "b"\nrequire_client_cert = true\n', "needs tls.client_ca"),
        ('[tls]\ncert = "a"\nkey = "b"\nverify = false\n', "unknown keys verify"),
        (
            '[sources.JS]\nkind = "gateway"\nurl = "https://x/graphql"\n'
            'token_env = "DELTAGATE_T"\ntls_cert = "c.pem"\n',
            "tls_cert and tls_key go together",
        ),
        (UPPER.replace("CN", "JS"), "JS is a region here"),
        (UPPER.replace("CN", "national"), "upper.code"),
        (UPPER + 'dsn = "postgresql://x/y"\n', "unknown keys dsn"),
        (UPPER.replace("https://", "http://") + "[gateway]\nmode = 'production'\n", "https://"),
    ],
)
def test_wrong_cascade_settings_are_refused_with_their_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, SH + text, DELTAGATE_T="t", DELTAGATE_UPPER_TOKEN="t")


def test_the_upper_level_source_takes_its_token_from_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set DELTAGATE_UPPER_TOKEN"):
        load(tmp_path, SH + UPPER)
    settings = load(tmp_path, SH + UPPER, DELTAGATE_UPPER_TOKEN="service-token")
    upper = settings.upper
    assert (upper.region, upper.kind, upper.token) == ("CN", "gateway", "service-token")
    assert upper.breaker_reset == 2.0  # a trial request every 2 s: back within seconds
    sources = settings.sources
    assert [s.region for s in sources] == ["SH"]  # never a region of its own
