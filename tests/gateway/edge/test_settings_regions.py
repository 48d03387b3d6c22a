"""Regions in the configuration: a source entry with a name and prefixes adds a region."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.edge.auth import TokenVerifier, mint_token
from gateway.edge.settings import load_settings

SECRET = "settings-tests-secret-0123456789abcdefgh"
ENV = {"DELTAGATE_JWT_SECRET": SECRET}
SH = '[sources.SH]\ndsn = "postgresql://gw@db-sh/deltagate_sh"\n'
NJ = '[sources.NJ]\ndsn = "postgresql://gw@db-nj/deltagate_nj"\nmapping = "nj.toml"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_source_with_a_name_and_prefixes_adds_a_region(tmp_path: Path) -> None:
    text = SH + NJ + 'name = "南京"\nprefixes = ["3201"]\n'
    settings = load_settings(write(tmp_path, text), env=ENV)
    assert settings.regions.codes == ("SH", "JS", "ZJ", "AH", "NJ")
    assert settings.regions.id_number_region("320102198805121231") == "NJ"
    assert [s.mapping for s in settings.sources if s.region == "NJ"] == [tmp_path / "nj.toml"]


def test_the_shipped_regions_need_no_region_keys(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SH), env=ENV)
    assert settings.regions.codes == ("SH", "JS", "ZJ", "AH")


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (SH + NJ, ENV, "NJ is not a known region; give it a name and prefixes"),
        (SH + NJ + 'name = "南京"\n', ENV, "prefixes must be a list"),
        (SH + NJ + 'name = "南京"\nprefixes = "3201"\n', ENV, "prefixes must be a list"),
        (SH + NJ + 'prefixes = ["3201"]\n', ENV, "name must be a string"),
        (SH + NJ + 'name = "南京"\nprefixes = ["32"]\n', ENV, "belongs to both JS and NJ"),
        (SH + NJ + 'name = "南京"\nprefixes = ["32x"]\n', ENV, "2 to 6 digits"),
        (SH, {**ENV, "DELTAGATE_DSN_NJ": "postgresql://x/y"}, "NJ is not a known region"),
    ],
)
def test_a_wrong_region_is_refused_with_its_reason(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env=env)


def test_a_caller_may_claim_a_configured_region_only() -> None:
    token = mint_token(sub="a", region="NJ", roles=[], secret=SECRET, regions=("NJ",))
    with pytest.raises(Exception, match="region"):
        TokenVerifier(hs256_secret=SECRET).verify_token(token)
    verifier = TokenVerifier(hs256_secret=SECRET, regions=("SH", "NJ"))
    assert verifier.verify_token(token).region == "NJ"
    assert verifier.verify_token(mint_token(sub="a", region="NATIONAL", roles=[], secret=SECRET))
