"""No leak, property-based: whatever the caller, matter and selection, every value the gateway
returns is exactly what the policy allows of the raw source value.

For each leaf: a clear decision returns the generator's raw value, a masked one the mask of
it, a withheld one null; a link the policy does not follow is null. Decisions are asked of
a policy engine of our own, so a gateway that forgot to mask would be caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.identifiers import id_number_region, uscc_region
from gateway.core.regions import shipped_regions
from gateway.core.types import DELTA_REGIONS, Caller
from policies import SHIPPED_POLICY_DIR, Decision, OperationPolicy, PolicyEngine
from policies.grades import snake_case
from policies.masks import build_rules
from tests.client import GatewayClient, serve_on
from tests.conftest import MASK_SECRET, Seeded, gateway_settings, token

#: The shipped regions (SH, JS, ZJ, AH), which the demo data is made for.
SHIPPED = shipped_regions()

ROLES = ("one_stop_app", "joint_handling_officer", "public_portal", "citizen", "auditor")
MATTERS = (None, "OS-ENTERPRISE-OPENING", "JH-HUKOU-MIGRATION")
CALLER_REGIONS = (*DELTA_REGIONS, "NATIONAL")

PERSON_SCALARS = ("idNumber", "name", "gender", "birthDate", "ethnicity", "householdRegion",
                  "householdAddress", "phone")  # fmt: skip
COMPANY_SCALARS = ("uscc", "name", "entityType", "status", "registeredCapital", "establishedOn",
                   "registrationAuthority", "region", "address", "businessScope")  # fmt: skip
CREDIT_SCALARS = ("id", "subjectId", "subjectType", "kind", "title", "documentNumber",
                  "authority", "decidedOn", "validUntil", "amount", "region", "detail")  # fmt: skip
RESIDENCE_SCALARS = ("region", "address", "since")
INSURANCE_SCALARS = ("region", "insuranceType", "status", "since")

RULES = build_rules(MASK_SECRET.encode())


def some(fields: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(fields), min_size=1, max_size=len(fields), unique=True)


@st.composite
def person_selection(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    selection: dict[str, Any] = {name: None for name in draw(some(PERSON_SCALARS))}
    if draw(st.booleans()):
        selection["residences"] = {n: None for n in draw(some(RESIDENCE_SCALARS))}
    if draw(st.booleans()):
        selection["socialInsurance"] = {n: None for n in draw(some(INSURANCE_SCALARS))}
    if draw(st.booleans()):
        selection["creditRecords"] = {n: None for n in draw(some(CREDIT_SCALARS))}
    if depth == 0 and draw(st.booleans()):
        selection["enterprises"] = draw(company_selection(depth + 1))
    return selection


@st.composite
def company_selection(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    selection: dict[str, Any] = {name: None for name in draw(some(COMPANY_SCALARS))}
    if draw(st.booleans()):
        selection["creditRecords"] = {n: None for n in draw(some(CREDIT_SCALARS))}
    if depth == 0 and draw(st.booleans()):
        selection["legalRepresentative"] = draw(person_selection(depth + 1))
    return selection


def render(selection: dict[str, Any]) -> str:
    parts = [
        name if sub is None else f"{name} {{ {render(sub)} }}" for name, sub in selection.items()
    ]
    return " ".join(parts)


class Oracle:
    """What the policy says a caller must see of the generator's raw rows."""

    def __init__(self, seeded: Seeded, policy: OperationPolicy) -> None:
        self.data = seeded.dataset
        self.policy = policy

    def shown(self, type_name: str, owner: str, raw: Any, name: str, subject: str | None) -> Any:
        decision = self.policy.decide(f"{type_name}.{name}", owner, subject_type=subject)
        if raw is None or decision.decision is Decision.WITHHELD:
            return None
        if decision.decision is Decision.MASKED:
            assert decision.rule is not None
            return RULES[decision.rule](raw)
        return str(raw) if isinstance(raw, Decimal) else raw

    def scalars(self, type_name: str, owner: str, row: dict[str, Any], names: Any,
                subject: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {n: self.shown(type_name, owner, row[snake_case(n)], n, subject) for n in names}

    def looks_up(self, type_name: str, key_field: str, key: str) -> bool:
        """A look-up by key answers only where the key field would be clear (existence is data)."""
        owner = (
            id_number_region(key, SHIPPED)
            if type_name == "NaturalPerson"
            else uscc_region(key, SHIPPED)
        )
        assert owner is not None
        decision = self.policy.decide(f"{type_name}.{key_field}", owner)
        return decision.decision is Decision.CLEAR

    def looked_up_person(self, id_number: str, selection: dict[str, Any]) -> dict[str, Any] | None:
        if not self.looks_up("NaturalPerson", "idNumber", id_number):
            return None
        return self.person(id_number, selection)

    def credit_page(self, subject_id: str) -> dict[str, Any] | None:
        """``creditRecords(subjectId:) { edges { cursor } pageInfo { hasNextPage } }``: null, with
        no count and no page info, unless the subject may be looked up and followed."""
        person = id_number_region(subject_id, SHIPPED) is not None
        type_name, key_field = ("NaturalPerson", "idNumber") if person else ("LegalPerson", "uscc")
        owner = id_number_region(subject_id, SHIPPED) or uscc_region(subject_id, SHIPPED)
        if not self.looks_up(type_name, key_field, subject_id):
            return None
        if not self.policy.decide(f"{type_name}.creditRecords", str(owner)).released:
            return None
        return {"pageInfo": {"hasNextPage": len(self.data.credit_records_of(subject_id)) > 100}}

    def owner_named(self, entry: dict[str, Any]) -> bool:
        """Whether an explanation may name this entry's owner: only where the record's own
        owner field (a person's household region, a record's region) would be clear."""
        type_name = entry["field"].partition(".")[0]
        owner_field = {"NaturalPerson": "householdRegion"}.get(type_name, "region")
        subject = entry.get("subjectType")
        decision = self.policy.decide(f"{type_name}.{owner_field}", entry["owner"],
                                      subject_type=subject)  # fmt: skip
        return decision.decision is Decision.CLEAR

    def person(self, id_number: str, selection: dict[str, Any]) -> dict[str, Any] | None:
        located = self.data.locate_person(id_number)
        if located is None:
            return None
        owner = located[0]
        row = self.data.person(*located)
        out = self.scalars(
            "NaturalPerson", owner, row, [n for n, s in selection.items() if s is None]
        )
        for link, rows, type_name in (
            ("residences", lambda: self.data.residences_of(id_number), "Residence"),
            (
                "socialInsurance",
                lambda: self.data.social_insurance_of(id_number),
                "SocialInsurance",
            ),
            ("creditRecords", lambda: self.data.credit_records_of(id_number), "CreditRecord"),
        ):
            if link in selection:
                out[link] = self.related("NaturalPerson", owner, link, rows, type_name,
                                         selection[link])  # fmt: skip
        if "enterprises" in selection:
            if self.policy.decide("NaturalPerson.enterprises", owner).released:
                out["enterprises"] = sorted_rows(
                    [
                        self.company(r["uscc"], selection["enterprises"])
                        for r in self.data.enterprises_of(id_number)
                    ]
                )
            else:
                out["enterprises"] = None
        return out

    def company(self, uscc: str, selection: dict[str, Any]) -> dict[str, Any] | None:
        located = self.data.locate_enterprise(uscc)
        if located is None:
            return None
        owner = located[0]
        row = self.data.enterprise(*located)
        out = self.scalars(
            "LegalPerson", owner, row, [n for n, s in selection.items() if s is None]
        )
        if "creditRecords" in selection:
            out["creditRecords"] = self.related(
                "LegalPerson", owner, "creditRecords",
                lambda: self.data.credit_records_of(uscc), "CreditRecord",
                selection["creditRecords"],
            )  # fmt: skip
        if "legalRepresentative" in selection:
            follows = self.policy.decide("LegalPerson.legalRepresentative", owner).released
            out["legalRepresentative"] = (
                self.person(row["legal_rep_id"], selection["legalRepresentative"])
                if follows else None
            )  # fmt: skip
        return out

    def related(self, parent: str, owner: str, link: str, rows: Any, type_name: str,
                names: dict[str, Any]) -> list[Any] | None:  # fmt: skip
        if not self.policy.decide(f"{parent}.{link}", owner).released:
            return None
        return sorted_rows(
            [
                self.scalars(type_name, row["region"], row, names, row.get("subject_type"))
                for row in rows()
            ]
        )


def sorted_rows(rows: list[Any]) -> list[Any]:
    return sorted(rows, key=lambda row: repr(sorted(row.items())) if row else "")


def normalise(value: Any) -> Any:
    """Lists compared as multisets: the gateway's merge order is tested elsewhere."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted_rows([normalise(v) for v in value])
    return value


@pytest.fixture(scope="module")
def client(seeded: Seeded, loop: asyncio.AbstractEventLoop) -> Iterator[GatewayClient]:
    with serve_on(loop, gateway_settings(seeded.dsn)) as gateway_client:
        yield gateway_client


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    region=st.sampled_from(CALLER_REGIONS),
    roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True),
    matter=st.sampled_from(MATTERS),
    root=st.sampled_from(("person", "company", "credit")),
    # Past the seeded persons: valid ID numbers nobody holds, to compare with known ones.
    subject_index=st.integers(min_value=0, max_value=40) | st.integers(10_000, 10_040),
    subject_region=st.sampled_from(DELTA_REGIONS),
    data=st.data(),
)
def test_every_value_is_what_the_policy_allows(
    seeded: Seeded,
    client: GatewayClient,
    loop: asyncio.AbstractEventLoop,
    engine: PolicyEngine,
    region: str,
    roles: list[str],
    matter: str | None,
    root: str,
    subject_index: int,
    subject_region: str,
    data: st.DataObject,
) -> None:

    caller = Caller(app="prop", region=region, roles=tuple(roles))
    try:
        policy = engine.begin(caller, matter)
    except Exception:  # a matter none of the roles may use: refused before any data
        response = loop.run_until_complete(
            client.post("{ __typename }", token=token(region, *roles, app="prop"), matter=matter)
        )
        assert response.status_code == 403
        return
    oracle = Oracle(seeded, policy)
    if root == "company":
        subject_index %= 10_000  # enterprises: the seeded ones
    if root == "person":
        key = seeded.dataset.person_id(subject_region, subject_index)
        selection = data.draw(person_selection())
        document = f'{{ naturalPerson(idNumber: "{key}") {{ {render(selection)} }} }}'
        expected = {"naturalPerson": oracle.looked_up_person(key, selection)}
    elif root == "company":
        key = seeded.dataset.uscc(subject_region, subject_index)
        selection = data.draw(company_selection())
        document = f'{{ legalPerson(uscc: "{key}") {{ {render(selection)} }} }}'
        expected = {"legalPerson": oracle.company(key, selection)}
    else:
        key = data.draw(
            st.sampled_from([seeded.dataset.person_id(subject_region, subject_index),
                             seeded.dataset.uscc(subject_region, subject_index % 10_000)])
        )  # fmt: skip
        document = (
            f'{{ creditRecords(subjectId: "{key}", first: 100) {{ pageInfo {{ hasNextPage }} }} }}'
        )
        expected = {"creditRecords": oracle.credit_page(key)}
    body = loop.run_until_complete(
        client.query(document, token=token(region, *roles, app="prop"), matter=matter)
    )
    assert "errors" not in body, body["errors"]
    assert normalise(body["data"]) == normalise(expected)
    assert id_number_region(key, SHIPPED) or uscc_region(key, SHIPPED)
    # Explanations name an owner only where the caller may see it.
    for entry in body["extensions"]["policy"]["fields"]:
        assert entry["owner"] is None or oracle.owner_named(entry), entry
