"""Loading and reloading the policy files: changes take effect, broken files never fall open."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from gateway.core.errors import ConfigError, PolicyError
from policies import Decision, PolicyEngine
from tests.policies.conftest import MASK_SECRET, append, caller

PHONE_GRANT = "p, one_stop_app, *, OS-ENTERPRISE-OPENING, NaturalPerson.phone, L3, allow\n"


def phone_in_js(engine: PolicyEngine) -> Decision:
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    return policy.decide("NaturalPerson.phone", "JS").decision


def touch_later(path: Path) -> None:
    """Make sure the change is visible even on a file system with coarse timestamps."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_changed_policy_takes_effect_after_the_reload_interval(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0.05)
    assert phone_in_js(engine) is Decision.MASKED
    version = engine.status.version
    append(policy_dir / "policy.csv", PHONE_GRANT)
    touch_later(policy_dir / "policy.csv")
    time.sleep(0.06)
    assert phone_in_js(engine) is Decision.CLEAR
    assert engine.status.version != version


def test_changes_wait_for_the_reload_interval(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=3600)
    append(policy_dir / "policy.csv", PHONE_GRANT)
    touch_later(policy_dir / "policy.csv")
    assert phone_in_js(engine) is Decision.MASKED
    assert engine.reload_if_changed()
    assert phone_in_js(engine) is Decision.CLEAR


def test_an_operation_keeps_the_policy_it_began_with(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    policy = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    append(policy_dir / "policy.csv", PHONE_GRANT)
    touch_later(policy_dir / "policy.csv")
    assert phone_in_js(engine) is Decision.CLEAR
    assert policy.decide("NaturalPerson.phone", "JS").decision is Decision.MASKED


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("policy.csv", "p, one_stop_app, *, *, *, L9, allow\n"),
        ("policy.csv", "p, one_stop_app, *, NO-SUCH-MATTER, *, L2, allow\n"),
        ("policy.csv", "p, one_stop_app, *, *, NaturalPerson.shoeSize, L2, allow\n"),
        ("policy.csv", "p, one_stop_app, *, *, *, L2, deny\n"),
        ("policy.csv", "x, whatever\n"),
        ("catalog.toml", "[types.Broken\n"),
        ("catalog.toml", '[types.Extra.fields]\nfoo = { grade = "L7" }\n'),
        ("matters.toml", "[[matter]]\ncode = 'bad code'\n"),
        ("model.conf", "\n[matchers]\nm = nonsense((\n"),
    ],
)
def test_broken_file_keeps_the_old_policy_and_is_reported(
    policy_dir: Path, name: str, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    version = engine.status.version
    append(policy_dir / "policy.csv", PHONE_GRANT)  # a valid change, and a broken one
    append(policy_dir / name, broken)
    touch_later(policy_dir / name)
    with caplog.at_level(logging.ERROR, logger="deltagate.policies"):
        assert phone_in_js(engine) is Decision.MASKED  # the old policy, not the change
    status = engine.status
    assert status.ready
    assert not status.healthy
    assert status.version == version
    assert status.error
    assert name.split(".")[0] in status.error or "model" in status.error
    assert "stays in force" in caplog.text


def test_fixing_the_file_clears_the_error(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    original = (policy_dir / "policy.csv").read_text(encoding="utf-8")
    append(policy_dir / "policy.csv", "garbage\n")
    touch_later(policy_dir / "policy.csv")
    engine.begin(caller("SH", "one_stop_app"), None)
    assert engine.status.error
    (policy_dir / "policy.csv").write_text(original + PHONE_GRANT, encoding="utf-8")
    touch_later(policy_dir / "policy.csv")
    assert phone_in_js(engine) is Decision.CLEAR
    assert engine.status.healthy


def test_undoing_a_bad_edit_clears_the_error(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    path = policy_dir / "policy.csv"
    aside = policy_dir / "policy.csv.orig"
    path.rename(aside)
    path.write_text("garbage\n", encoding="utf-8")
    engine.begin(caller("SH", "one_stop_app"), None)
    assert engine.status.error
    aside.replace(path)  # the very file in force, same size, time and inode
    engine.begin(caller("SH", "one_stop_app"), None)
    assert engine.status.healthy


def test_deleted_file_keeps_the_old_policy(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    (policy_dir / "matters.toml").unlink()
    assert phone_in_js(engine) is Decision.MASKED
    assert engine.status.error


def test_no_valid_policy_at_start_refuses_every_operation(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "garbage\n")
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    status = engine.status
    assert not status.ready
    assert status.as_dict()["ready"] is False
    with pytest.raises(PolicyError):
        engine.begin(caller("SH", "one_stop_app"), None)


def test_strict_start_raises_on_a_broken_policy(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "garbage\n")
    with pytest.raises(ConfigError, match=r"policy\.csv:\d+"):
        PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)


def test_policy_fixed_after_a_bad_start_is_picked_up(policy_dir: Path) -> None:
    path = policy_dir / "policy.csv"
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "garbage\n", encoding="utf-8")
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0)
    path.write_text(original, encoding="utf-8")
    touch_later(path)
    assert phone_in_js(engine) is Decision.MASKED
    assert engine.status.ready


def test_status_is_json_ready(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET)
    status = engine.status.as_dict()
    assert status["ready"] is True
    assert status["healthy"] is True
    assert len(status["version"]) == 12
    assert status["error"] is None


async def test_watch_reloads_without_requests(policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, reload_interval=0.1)
    version = engine.status.version
    task = asyncio.create_task(engine.watch())
    try:
        append(policy_dir / "policy.csv", PHONE_GRANT)
        touch_later(policy_dir / "policy.csv")
        for _ in range(50):
            await asyncio.sleep(0.05)
            if engine.status.version != version:
                break
        assert engine.status.version != version
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        PolicyEngine(".", mask_secret=MASK_SECRET, reload_interval=-1)
    with pytest.raises(ConfigError):
        PolicyEngine(".", mask_secret=b"")
