"""Rate limits per caller app: token buckets sized by quotas.toml, 429 with Retry-After."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.core.errors import ConfigError, RateLimited
from gateway.edge.rate_limits import DEFAULT_QUOTA, Quota, Quotas, RateLimiter, load_quotas
from policies import SHIPPED_POLICY_DIR
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(Quotas(Quota(rate=2.0, burst=3)), clock=clock)
    for _ in range(3):
        limiter.take("counter-sh")
    with pytest.raises(RateLimited) as refused:
        limiter.take("counter-sh")
    assert refused.value.extensions == {"retryAfter": 1, "rate": 2.0, "burst": 3}
    limiter.take("portal-ah")  # another app has a bucket of its own
    clock.now += 0.5  # one request's worth at 2 per second
    limiter.take("counter-sh")
    with pytest.raises(RateLimited):
        limiter.take("counter-sh")
    clock.now += 60  # a quiet minute refills the bucket to its burst, no further
    for _ in range(3):
        limiter.take("counter-sh")
    with pytest.raises(RateLimited):
        limiter.take("counter-sh")


def test_retry_after_is_the_whole_seconds_until_a_request_would_pass() -> None:
    clock = Clock()
    limiter = RateLimiter(Quotas(Quota(rate=0.1, burst=1)), clock=clock)
    limiter.take("slow")
    clock.now += 2.5
    with pytest.raises(RateLimited) as refused:
        limiter.take("slow")
    assert refused.value.extensions["retryAfter"] == 8  # 7.5 s to go, rounded up


def test_quotas_name_apps_and_a_default(tmp_path: Path) -> None:
    path = tmp_path / "quotas.toml"
    path.write_text("[default]\nrate = 5\nburst = 10\n[apps.counter-sh]\nrate = 0.5\nburst = 1\n")
    quotas = load_quotas(path)
    assert quotas.of("counter-sh") == Quota(rate=0.5, burst=1)
    assert quotas.of("anyone") == Quota(rate=5.0, burst=10)
    path.write_text("[apps.x]\nrate = 1\nburst = 1\n")
    assert load_quotas(path).of("y") == DEFAULT_QUOTA
    assert load_quotas(SHIPPED_POLICY_DIR / "quotas.toml").default == Quota(rate=50.0, burst=100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nrate = 0\nburst = 1\n", "rate > 0"),
        ("[default]\nrate = 1\nburst = 0\n", "burst >= 1"),
        ("[default]\nrate = 1\n", "exactly rate and burst"),
        ("[default]\nrate = 'fast'\nburst = 1\n", "rate must be a number"),
        ("[apps.x]\nrate = 1\nburst = 1.5\n", "burst must be an integer"),
        ("[roles.y]\nrate = 1\nburst = 1\n", "unknown sections roles"),
        ("[default\n", "Expected"),
    ],
)
def test_a_bad_quotas_file_is_a_configuration_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "quotas.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_quotas(path)


def policy_dir_with_quotas(tmp_path: Path, quotas: str) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICY_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__py*"))
    (directory / "quotas.toml").write_text(quotas, encoding="utf-8")
    return directory


async def test_an_app_over_its_quota_gets_429_with_retry_after(
    seeded: Seeded, tmp_path: Path
) -> None:
    directory = policy_dir_with_quotas(
        tmp_path, "[default]\nrate = 50\nburst = 100\n[apps.tight]\nrate = 0.01\nburst = 2\n"
    )
    settings = gateway_settings(seeded.dsn, policy_dir=directory, policy_reload_interval=0)
    tight = token("SH", "public_portal", app="tight")
    async with serve(settings) as client:
        for _ in range(2):
            assert (await client.post("{ __typename }", token=tight)).status_code == 200
        refused = await client.post("{ __typename }", token=tight)
        other = await client.post("{ __typename }", token=token("SH", "public_portal"))
        # Counted before the body is read: even a malformed request is refused for its rate.
        malformed = await client.http.post(
            "/graphql", content=b"{nope", headers={"Authorization": f"Bearer {tight}"}
        )
        # A quota raised while the gateway runs applies to the next request.
        (directory / "quotas.toml").write_text("[apps.tight]\nrate = 0.01\nburst = 50\n")
        later = await client.post("{ __typename }", token=tight)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "100"
    [error] = refused.json()["errors"]
    assert error["extensions"] == {
        "code": "RATE_LIMITED", "retryAfter": 100, "rate": 0.01, "burst": 2,
    }  # fmt: skip
    assert "data" not in refused.json()
    assert other.status_code == 200
    assert malformed.status_code == 429
    assert later.status_code == 200


async def test_rate_limits_can_be_switched_off(seeded: Seeded, tmp_path: Path) -> None:
    directory = policy_dir_with_quotas(tmp_path, "[default]\nrate = 0.01\nburst = 1\n")
    settings = gateway_settings(seeded.dsn, policy_dir=directory, rate_limits=False)
    async with serve(settings) as client:
        for _ in range(3):
            assert (await client.post("{ __typename }", token=token("SH", "x"))).status_code == 200
