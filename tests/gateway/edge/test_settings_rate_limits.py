"""Configuration of the shared rate-limit store: the file, DELTAGATE_RATE_LIMIT_URL, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.edge.settings import load_settings

SECRET = "settings-tests-secret-0123456789abcdefgh"
SOURCE = '[sources.SH]\ndsn = "postgresql://gw@db-sh/x"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text + SOURCE, encoding="utf-8")
    return path


def test_without_a_store_the_buckets_stay_in_each_process(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={"DELTAGATE_JWT_SECRET": SECRET})
    assert settings.rate_limit_url is None
    assert (settings.rate_limit_timeout, settings.rate_limit_processes) == (0.05, 1)


def test_the_store_comes_from_the_file_and_the_environment_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[limits]\nrate_limit_url = "redis://ratelimit:6379/0"\n'
        "rate_limit_timeout = 0.1\nrate_limit_processes = 6\n",
    )
    settings = load_settings(path, env={"DELTAGATE_JWT_SECRET": SECRET})
    assert settings.rate_limit_url == "redis://ratelimit:6379/0"
    assert (settings.rate_limit_timeout, settings.rate_limit_processes) == (0.1, 6)
    # The manifests' name for it: a secret, so from the environment.
    secret_url = "redis://:s3cret@deltagate-ratelimit:6379/0"
    env = {"DELTAGATE_JWT_SECRET": SECRET, "DELTAGATE_RATE_LIMIT_URL": secret_url}
    assert load_settings(path, env=env).rate_limit_url == secret_url


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[limits]\nrate_limit_url = "http://x"\n', "redis://, rediss:// or unix://"),
        ("[limits]\nrate_limit_url = 6379\n", "rate_limit_url must be a string"),
        ("[limits]\nrate_limit_timeout = 0\n", "rate_limit_timeout must be a positive"),
        ("[limits]\nrate_limit_timeout = '50ms'\n", "rate_limit_timeout must be a number"),
        ("[limits]\nrate_limit_processes = 0\n", "rate_limit_processes must be 1 or more"),
        ("[limits]\nrate_limit_processes = 2.5\n", "rate_limit_processes must be an integer"),
    ],
)
def test_a_bad_store_setting_is_refused_at_start(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env={"DELTAGATE_JWT_SECRET": SECRET})
