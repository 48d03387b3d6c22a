"""An event's canonical form and hash are what they always were: ``verify`` recomputes
them over events written by every earlier version, and the writer's way of building them
(in parts, the decisions list dumped once) must not move a byte."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson
import pytest

from gateway.audit.decision_sets import list_json
from gateway.audit.events import (
    LEGACY_CHAIN,
    AuditEvent,
    canonical,
    canonical_form,
    chain_hash,
    link,
)

PREV = "12" * 32


def _event(**changes: Any) -> AuditEvent:
    """An event with what is awkward to encode: a quote and a key's name in a string, a
    non-ASCII matter name, None values, and entries whose keys are not in sorted order."""
    fields: dict[str, Any] = {
        "at": dt.datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "caller_app": 'counter-"decisions":[sh',
        "caller_region": "SH",
        "roles": ("one_stop_app", "auditor"),
        "matter_code": "OS-ENTERPRISE-OPENING",
        "matter_name": "企业开办",
        "operation_name": "CounterLookup",
        "operation_type": "query",
        "document_hash": "ab" * 32,
        "policy_version": None,
        "subjects": ("11010519491231002X", "91310000MA1FL0B21Q"),
        "decisions": (
            {"owner": "SH", "field": "NaturalPerson.name", "grade": "L2", "decision": "CLEAR",
             "reason": "WITHIN_CLEARANCE", "count": 1, "rule": None, "clearance": "L3"},
            {"field": "NaturalPerson.phone", "owner": "BJ", "grade": "L3", "decision": "MASKED",
             "reason": "MASK_RULE", "count": 2, "rule": "phone-mask", "clearance": "L2"},
        ),
    }  # fmt: skip
    fields.update(changes)
    return AuditEvent(**fields)


CASCADE = {
    "acting": "upper-gw",
    "receipts": (
        {"seq": 4, "region": "SH", "hash": "cd" * 32, "gateway": "sh-1", "chain": "ff00"},
    ),
}

#: Hashes computed by the writer before it built the canonical form in parts.
KNOWN = {
    ("sha256", "plain"): "8a9ef75862242a3a1cd30c21c16f77b2f7ce8f3bcde1b431a40a6ab6a14b81bd",
    ("sha256", "cascade"): "8ffdaed2835b9e88aed8254ec1701b210f46763cc247986a201b75619100e283",
    ("sha256", "legacy"): "66a559ef971b2f0600bab362aa0b2fbf5d65dfb8ed6a2c52f66354fd3ff5b4c2",
    ("sm3", "plain"): "85a94303512024bd7362b01c279dc31d7207fab88542c7fb16e6206104794404",
    ("sm3", "cascade"): "89ba2af9312bfb8e85209f7a0048ea7a6a93449b50b977a1b17be65aa88191bc",
    ("sm3", "legacy"): "67a002cd73605af399bec5d43034988ce46cd22dd7d80b429c30cdafbc324d48",
}
CASES = {
    "plain": (_event(), "0123456789abcdef"),
    "cascade": (_event(**CASCADE), "0123456789abcdef"),
    "legacy": (_event(), LEGACY_CHAIN),
}


@pytest.mark.parametrize(("algorithm", "case"), sorted(KNOWN))
def test_an_event_hashes_as_it_did_when_it_was_written(algorithm: str, case: str) -> None:
    if algorithm not in hashlib.algorithms_available:
        pytest.skip(f"no {algorithm} on this platform")
    event, chain = CASES[case]
    assert chain_hash(chain, 7, event, algorithm, PREV) == KNOWN[(algorithm, case)]
    (stored,) = link(chain, [event], (6, PREV), algorithm)
    assert stored.hash == KNOWN[(algorithm, case)]


@pytest.mark.parametrize(
    "changes",
    [{}, CASCADE, {"acting": "upper-gw"}, {"decisions": ()}, {"subjects": (), "roles": ()},
     {"matter_code": None, "matter_name": None, "operation_name": None}],
)  # fmt: skip
@pytest.mark.parametrize("chain", ["0123456789abcdef", LEGACY_CHAIN])
def test_the_canonical_form_is_the_sorted_json_of_every_hashed_field(
    changes: dict[str, Any], chain: str
) -> None:
    event = _event(**changes)
    whole = orjson.dumps(
        canonical_form(chain, 3, event, "sha256", PREV), option=orjson.OPT_SORT_KEYS
    )
    assert canonical(chain, 3, event, "sha256", PREV) == whole


def test_the_record_sent_is_the_canonical_form_with_its_hash_and_chain() -> None:
    for event, chain in CASES.values():
        (stored,) = link(chain, [event], (6, PREV), "sha256")
        record = orjson.loads(stored.record)
        assert record.pop("hash") == stored.hash
        assert record == {**canonical_form(chain, 7, event, "sha256", PREV), "chain": chain}
        assert stored.decisions_json == list_json(event.decisions)
