"""The floor: the benchmark's operations answered by hand, without GraphQL.

What a careful engineer would write for exactly these three questions:
Starlette and uvicorn (uvloop, httptools) as the gateway uses them, one asyncpg
pool per region with the same sizes and the same no-op reset, and orjson. It
does what the gateway must do to give the same answer, and nothing more:

- the same bearer-token check (``gateway.edge.auth.TokenVerifier``) and matter check;
- the same SQL, compiled from the same mappings, selecting only the columns
  each operation reads (its selected fields, the keys it follows, groups and
  orders by), as the gateway's plans do, with the same batching: one
  round trip per region per level, the levels read in the same order (so the
  same number of queries and round trips); where a level reads two entities
  from a region (Q1's residences and social insurance, Q2's representatives
  and enterprise credit records) both go in one statement, compiled as the
  gateway compiles it (``gateway.sources.sql.combined_fetch_sql``);
- the same policy: release decisions taken from the policy engine once per
  (caller region, roles, matter) and kept as per-field plans, masking applied
  row by row with the same mask functions;
- the same merge order for lists (``resolvers.links``, ``resolvers.credit``) and
  the same opaque page cursors.

It routes by ``operationName`` and reads only the variables; the document is
ignored. Its response has ``data`` and ``extensions.backendQueries``, not the
gateway's per-field policy summary. The benchmark checks, before timing,
that its ``data`` equals the gateway's for the same requests.

Run: ``python -m bench.floor --config gateway.toml --port 8001`` (the
gateway's configuration file and ``DELTAGATE_*`` environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.serving import serve
from gateway.core.errors import BatchTooLarge, GatewayError, InvalidInput
from gateway.core.identifiers import id_number_region, require_id_number, require_uscc, uscc_region
from gateway.core.regions import shipped_regions
from gateway.edge import heap
from gateway.edge.auth import TokenVerifier
from gateway.edge.settings import Settings, load_settings
from gateway.sources.mapping import load_mapping
from gateway.sources.sql import prefix_bounds
from policies import Decision, OperationPolicy, PolicyEngine, resolve_mask_secret
from policies.grades import NATURAL_PERSON, snake_case
from resolvers.cursors import CursorCodec

#: Most keys a list argument may carry (as ``resolvers.arguments.MAX_KEYS``).
#: The floor serves the shipped regions, as the benchmark's data is made for them.
SHIPPED = shipped_regions()
MAX_KEYS = 100
MAX_PREFIX = 100
PAGE = 20

# What the plans do with a field: keep it (CLEAR), or mask with a function, or withhold (None).
CLEAR: Any = object()
FieldPlan = tuple[tuple[str, str, Any], ...]

Record = asyncpg.Record


async def _keep_session(connection: asyncpg.Connection) -> None:
    """No pool reset, as ``gateway.sources.postgres`` (the connections keep no session state)."""


class Selection:
    """The fields one operation selects on one type: (response key, GraphQL name, row key)."""

    def __init__(self, type_name: str, *names: str) -> None:
        self.type_name = type_name
        self.names = names

    def columns(self, *more: str) -> frozenset[str]:
        """The columns to read: the selected fields' (their unified names), and ``more``."""
        return frozenset(snake_case(name) for name in self.names).union(more)


PERSON_Q1 = Selection(
    "NaturalPerson",
    "idNumber", "name", "gender", "birthDate", "ethnicity", "householdRegion",
    "householdAddress", "phone",
)  # fmt: skip
RESIDENCE = Selection("Residence", "region", "address", "since")
INSURANCE = Selection("SocialInsurance", "region", "insuranceType", "status", "since")
COMPANY_Q2 = Selection("LegalPerson", "uscc", "name", "status", "region", "registeredCapital")
REPRESENTATIVE = Selection("NaturalPerson", "idNumber", "name", "phone", "householdRegion")
CREDIT = Selection("CreditRecord", "kind", "title", "decidedOn", "region")
COMPANY_Q3 = Selection(
    "LegalPerson",
    "uscc", "name", "entityType", "status", "registeredCapital", "establishedOn", "region",
    "address",
)  # fmt: skip
COMPANY_L1 = Selection("LegalPerson", "uscc", "name", "status", "registeredCapital")
PERSON_L2 = Selection("NaturalPerson", "idNumber", "name", "gender", "birthDate", "phone")

#: Each look-up: (entity, field looked up by, the columns read). Beside the selected fields,
#: what the floor itself reads: the key rows are grouped by, the order of lists, a
#: representative's ID, a credit record's id (its tie-break) and subject type (its grades).
LOOKUPS: dict[str, tuple[str, str, frozenset[str]]] = {
    "person_q1": ("person", "id_number", PERSON_Q1.columns("id_number")),
    "person_l2": ("person", "id_number", PERSON_L2.columns("id_number")),
    "representative": ("person", "id_number", REPRESENTATIVE.columns("id_number")),
    "residence": ("residence", "person_id", RESIDENCE.columns("person_id", "since")),
    "insurance": ("social_insurance", "person_id", INSURANCE.columns("person_id", "since")),
    "enterprise_q2": ("enterprise", "uscc", COMPANY_Q2.columns("uscc", "legal_rep_id")),
    "enterprise_l1": ("enterprise", "uscc", COMPANY_L1.columns("uscc")),
    "credit": (
        "credit_record",
        "subject_id",
        CREDIT.columns("subject_id", "id", "decided_on", "subject_type"),
    ),
}


class FloorPolicy:
    """One class of caller's decisions, as per-field plans (made on first use, then kept)."""

    def __init__(self, policy: OperationPolicy, masks: dict[str, Callable[[Any], Any]]) -> None:
        self._policy = policy
        self._masks = masks
        self._plans: dict[tuple[int, str, bool], FieldPlan] = {}
        self._links: dict[tuple[str, str], bool] = {}

    def plan(self, selection: Selection, owner: str, about_person: bool = False) -> FieldPlan:
        key = (id(selection), owner, about_person)
        found = self._plans.get(key)
        if found is None:
            catalog = self._policy.snapshot.catalog.types[selection.type_name].fields
            steps = []
            for name in selection.names:
                decision = self._policy.decide(
                    f"{selection.type_name}.{name}",
                    owner,
                    subject_type=NATURAL_PERSON if about_person else None,
                )
                if decision.decision is Decision.CLEAR:
                    action = CLEAR
                elif decision.decision is Decision.MASKED and decision.rule is not None:
                    action = self._masks[decision.rule]
                else:
                    action = None
                steps.append((name, catalog[name].key, action))
            found = self._plans[key] = tuple(steps)
        return found

    def allows(self, coordinate: str, owner: str) -> bool:
        key = (coordinate, owner)
        found = self._links.get(key)
        if found is None:
            found = self._links[key] = self._policy.decide(coordinate, owner).released
        return found


def shown(row: Record, plan: FieldPlan) -> dict[str, Any]:
    """The response object for one row: each selected field kept, masked or withheld."""
    out = {}
    for name, key, action in plan:
        value = row[key]
        if value is not None and action is not CLEAR:
            value = None if action is None else action(value)
        out[name] = value
    return out


class Floor:
    """The floor's long-lived state: pools, compiled SQL, the policy engine, the token check."""

    def __init__(self, settings: Settings) -> None:
        mask_secret = resolve_mask_secret(settings.mask_secret, dev_mode=not settings.production)
        self.settings = settings
        self.engine = PolicyEngine.from_directory(
            settings.policy_dir, mask_secret=mask_secret, reload_interval=3600
        )
        self.verifier = TokenVerifier(
            hs256_secret=settings.hs256_secret,
            jwks_path=settings.jwks_path,
            audience=settings.audience,
            issuer=settings.issuer,
            max_lifetime=settings.max_token_lifetime,
        )
        self.cursors = CursorCodec(mask_secret)
        self.regions = tuple(s.region for s in settings.sources)
        self.pools: dict[str, asyncpg.Pool] = {}
        self.sql: dict[tuple[str, str], str] = {}
        for source in settings.sources:
            mapping = load_mapping(source.mapping)
            for name, (entity, field, columns) in LOOKUPS.items():
                self.sql[name, source.region] = mapping.compile_fetch(entity, field, columns)
            # Two look-ups in one round trip: rows carry ``_lookup`` (0 or 1) and both
            # entities' columns by name, so a row is read by name as a single look-up's is.
            for first, second in (("residence", "insurance"), ("representative", "credit")):
                combined = mapping.compile_combined(
                    [LOOKUPS[first][:2], LOOKUPS[second][:2]],
                    [LOOKUPS[first][2], LOOKUPS[second][2]],
                )
                self.sql[f"{first}+{second}", source.region] = combined.sql
            self.sql["search", source.region] = mapping.compile_search(
                "enterprise", "name", after=False
            )
        self._policies: dict[tuple[str, tuple[str, ...], str | None], FloorPolicy] = {}

    async def start(self) -> None:
        for source in self.settings.sources:
            self.pools[source.region] = await asyncpg.create_pool(
                source.dsn,
                min_size=source.pool_min,
                max_size=source.pool_max,
                reset=_keep_session,
                server_settings={"application_name": "deltagate-floor"},
            )

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))

    def policy(self, request: Request) -> FloorPolicy:
        caller = self.verifier.verify(request.headers.get("authorization"))
        matter = request.headers.get("x-matter-code", "").strip() or None
        key = (caller.region, caller.roles, matter)
        found = self._policies.get(key)
        if found is None:
            # Raises Forbidden for a matter the caller may not use, as the gateway does.
            found = FloorPolicy(self.engine.begin(caller, matter), self.engine.snapshot.masks)
            self._policies[key] = found
        return found

    async def fetch(self, name: str, region: str, keys: Sequence[str]) -> list[Record]:
        return await self.pools[region].fetch(self.sql[name, region], keys)

    async def fetch_two(
        self, names: tuple[str, str], region: str, keys: tuple[Sequence[str], Sequence[str]]
    ) -> tuple[list[Record], list[Record]]:
        """Two look-ups from one region in one round trip (one alone where the other has no
        keys), their records apart."""
        if not keys[1]:
            return await self.fetch(names[0], region, keys[0]), []
        if not keys[0]:
            return [], await self.fetch(names[1], region, keys[1])
        sql = self.sql[f"{names[0]}+{names[1]}", region]
        first: list[Record] = []
        second: list[Record] = []
        for row in await self.pools[region].fetch(sql, keys[0], keys[1]):
            (second if row[0] else first).append(row)
        return first, second

    async def fetch_by(
        self, name: str, field: str, keys_by_region: dict[str, dict[str, None]]
    ) -> dict[str, dict[str, list[Record]]]:
        """One query per region with keys; rows grouped by ``field`` per region."""
        regions = [region for region, keys in keys_by_region.items() if keys]
        results = await asyncio.gather(
            *(self.fetch(name, region, list(keys_by_region[region])) for region in regions)
        )
        return {region: group(rows, field) for region, rows in zip(regions, results, strict=True)}


def group(rows: Iterable[Record], field: str) -> dict[str, list[Record]]:
    """Rows by the value of ``field``."""
    by_key: dict[str, list[Record]] = {}
    for row in rows:
        by_key.setdefault(row[field], []).append(row)
    return by_key


# -- the three operations --------------------------------------------------------------------


async def counter_lookup(floor: Floor, policy: FloorPolicy, variables: dict[str, Any]) -> Any:
    """Q1: one person from the home region; residences and insurance from every region."""
    key = require_id_number(variables["idNumber"], "idNumber")
    home = id_number_region(key, SHIPPED)
    if home is None or home not in floor.pools:
        return {"naturalPerson": None}, 0
    rows = await floor.fetch("person_q1", home, [key])
    if not rows:
        return {"naturalPerson": None}, 1
    person = shown(rows[0], policy.plan(PERSON_Q1, home))
    links = [
        (name, table, selection)
        for name, table, selection, coordinate in (
            ("residences", "residence", RESIDENCE, "NaturalPerson.residences"),
            ("socialInsurance", "insurance", INSURANCE, "NaturalPerson.socialInsurance"),
        )
        if policy.allows(coordinate, home)
    ]
    person["residences"] = person["socialInsurance"] = None
    if not links:
        return {"naturalPerson": person}, 1
    # Both links of every region in one round trip per region.
    if len(links) == 2:
        tables = (links[0][1], links[1][1])
        results = await asyncio.gather(
            *(floor.fetch_two(tables, region, ([key], [key])) for region in floor.regions)
        )
    else:
        table = links[0][1]
        results = await asyncio.gather(
            *(floor.fetch(table, region, [key]) for region in floor.regions)
        )
        results = [(rows,) for rows in results]
    merged: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in links}
    for region, per_link in zip(floor.regions, results, strict=True):
        for (name, _, selection), rows in zip(links, per_link, strict=True):
            plan = policy.plan(selection, region)
            # Region by region, newest first within each (resolvers.links.newest_per_region).
            ordered = sorted(rows, key=lambda row: row["since"] or "", reverse=True)
            merged[name].extend(shown(row, plan) for row in ordered)
    person.update(merged)
    return {"naturalPerson": person}, 1 + len(floor.regions)


async def joint_handling_list(floor: Floor, policy: FloorPolicy, variables: dict[str, Any]) -> Any:
    """Q2: enterprises from their home regions, then representatives and enterprise credit
    records, then the representatives' credit records: one query per (entity, region) per level.
    """
    usccs = variables["usccs"]
    if len(usccs) > MAX_KEYS:
        raise BatchTooLarge(f"usccs has {len(usccs)} keys; at most {MAX_KEYS} are allowed")
    keys = [require_uscc(value, "usccs") for value in usccs]
    queries = 0
    wanted: dict[str, dict[str, None]] = {}
    for key in keys:
        home = uscc_region(key, SHIPPED)
        if home is not None and home in floor.pools:
            wanted.setdefault(home, {})[key] = None
    companies = await floor.fetch_by("enterprise_q2", "uscc", wanted)
    queries += len(companies)

    # Level 1: who represents each enterprise, and its credit records.
    found: list[tuple[dict[str, Any], Record, str] | None] = []
    rep_keys: dict[str, dict[str, None]] = {}
    credit_keys: dict[str, None] = {}
    for key in keys:
        home = uscc_region(key, SHIPPED)
        rows = companies.get(home, {}).get(key) if home else None
        if not rows:
            found.append(None)
            continue
        row = rows[0]
        out = shown(row, policy.plan(COMPANY_Q2, home))
        out["legalRepresentative"] = out["creditRecords"] = None
        rep = row["legal_rep_id"]
        if rep and policy.allows("LegalPerson.legalRepresentative", home):
            rep_home = id_number_region(rep, SHIPPED)
            if rep_home is not None and rep_home in floor.pools:
                rep_keys.setdefault(rep_home, {})[rep] = None
        if policy.allows("LegalPerson.creditRecords", home):
            credit_keys[key] = None
        found.append((out, row, home))
    # Representatives from their home regions and enterprise credit from every region: one
    # round trip per region for both.
    credit_list_keys = list(credit_keys)
    level = [region for region in floor.regions if credit_list_keys or rep_keys.get(region)]
    results = await asyncio.gather(
        *(
            floor.fetch_two(
                ("representative", "credit"),
                region,
                (list(rep_keys.get(region, ())), credit_list_keys),
            )
            for region in level
        )
    )
    queries += len(level)
    reps = {
        region: group(rows, "id_number")
        for region, (rows, _) in zip(level, results, strict=True)
        if rep_keys.get(region)
    }
    credits = {
        region: group(rows, "subject_id")
        for region, (_, rows) in zip(level, results, strict=True)
        if credit_list_keys
    }

    # Level 2: the representatives' credit records.
    people: dict[str, tuple[dict[str, Any], str] | None] = {}
    person_credit: dict[str, None] = {}
    for region, by_key in reps.items():
        for rep, rows in by_key.items():
            person = shown(rows[0], policy.plan(REPRESENTATIVE, region))
            person["creditRecords"] = None
            people[rep] = (person, region)
            if policy.allows("NaturalPerson.creditRecords", region):
                person_credit[rep] = None
    person_wanted = {region: person_credit for region in floor.regions} if person_credit else {}
    rep_credits = await floor.fetch_by("credit", "subject_id", person_wanted)
    queries += len(rep_credits)

    for rep, (person, _) in ((k, v) for k, v in people.items() if v is not None):
        if rep in person_credit:
            person["creditRecords"] = credit_list(policy, rep_credits, rep)
    result: list[dict[str, Any] | None] = []
    for item in found:
        if item is None:
            result.append(None)
            continue
        out, row, home = item
        rep = row["legal_rep_id"]
        if rep in people and policy.allows("LegalPerson.legalRepresentative", home):
            out["legalRepresentative"] = people[rep][0]  # type: ignore[index]
        if row["uscc"] in credit_keys:
            out["creditRecords"] = credit_list(policy, credits, row["uscc"])
        result.append(out)
    return {"legalPersons": result}, queries


def credit_list(
    policy: FloorPolicy, per_region: dict[str, dict[str, list[Record]]], subject: str
) -> list[dict[str, Any]]:
    """A subject's records from every region: newest decision first, then by region and id
    (``resolvers.credit.newest_first``), each masked by its own region's decisions."""
    rows = [
        (region, row) for region, by_key in per_region.items() for row in by_key.get(subject, ())
    ]
    rows.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    rows.sort(key=lambda pair: pair[1]["decided_on"] or "", reverse=True)
    return [
        shown(row, policy.plan(CREDIT, region, row["subject_type"] != "LEGAL_PERSON"))
        for region, row in rows
    ]


async def search_legal_persons(floor: Floor, policy: FloorPolicy, variables: dict[str, Any]) -> Any:
    """Q3: each region's first page by (name, USCC) in "C" order, merged and cut to one page."""
    prefix = variables["name"].strip()
    if not prefix or len(prefix) > MAX_PREFIX:
        raise InvalidInput(f"name must be 1 to {MAX_PREFIX} characters")
    lower, upper = prefix_bounds(prefix)
    pages = await asyncio.gather(
        *(
            floor.pools[region].fetch(floor.sql["search", region], lower, upper, PAGE + 1)
            for region in floor.regions
        )
    )
    tagged: list[Iterable[tuple[str, str, str, Record]]] = [
        [(row["name"], row["uscc"], region, row) for row in rows]
        for region, rows in zip(floor.regions, pages, strict=True)
    ]
    merged = list(heapq.merge(*tagged, key=lambda item: (item[0], item[1])))
    edges = [
        {
            "cursor": floor.cursors.encode([name, uscc]),
            "node": shown(row, policy.plan(COMPANY_Q3, region)),
        }
        for name, uscc, region, row in merged[:PAGE]
    ]
    page_info = {
        "hasNextPage": len(merged) > PAGE,
        "endCursor": edges[-1]["cursor"] if edges else None,
    }
    return {"searchLegalPersons": {"edges": edges, "pageInfo": page_info}}, len(pages)


# -- single-region look-ups (L1, L2) ----------------------------------------------------------


async def enterprise_lookup(floor: Floor, policy: FloorPolicy, variables: dict[str, Any]) -> Any:
    """L1: one enterprise from its home region, four public fields."""
    key = require_uscc(variables["uscc"], "uscc")
    home = uscc_region(key, SHIPPED)
    if home is None or home not in floor.pools:
        return {"legalPerson": None}, 0
    rows = await floor.fetch("enterprise_l1", home, [key])
    found = shown(rows[0], policy.plan(COMPANY_L1, home)) if rows else None
    return {"legalPerson": found}, 1


async def person_lookup(floor: Floor, policy: FloorPolicy, variables: dict[str, Any]) -> Any:
    """L2: one person from their home region, five fields, no links."""
    key = require_id_number(variables["idNumber"], "idNumber")
    home = id_number_region(key, SHIPPED)
    if home is None or home not in floor.pools:
        return {"naturalPerson": None}, 0
    rows = await floor.fetch("person_l2", home, [key])
    found = shown(rows[0], policy.plan(PERSON_L2, home)) if rows else None
    return {"naturalPerson": found}, 1


OPERATIONS = {
    "CounterLookup": counter_lookup,
    "JointHandlingList": joint_handling_list,
    "SearchLegalPersons": search_legal_persons,
    "EnterpriseLookup": enterprise_lookup,
    "PersonLookup": person_lookup,
}


# -- the app -----------------------------------------------------------------------------------


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload, default=str), status_code=status, media_type="application/json"
    )


def create_app(floor: Floor) -> Starlette:
    async def graphql(request: Request) -> Response:
        try:
            policy = floor.policy(request)
            payload = orjson.loads(await request.body())
            operation = OPERATIONS.get(payload.get("operationName"))
            if operation is None:
                raise InvalidInput(f"the floor answers {', '.join(OPERATIONS)} only")
            data, queries = await operation(floor, policy, payload.get("variables") or {})
        except GatewayError as error:
            body = {"message": str(error), "extensions": {"code": error.code}}
            return _json({"errors": [body]}, 400)
        return _json({"data": data, "extensions": {"backendQueries": queries}})

    async def healthz(_: Request) -> Response:
        return _json({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await floor.start()
        heap.settle()  # the gateway's collector settings: the ratio compares code, not them
        try:
            yield
        finally:
            await floor.close()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--config", type=Path, help="the gateway's configuration file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    floor = Floor(load_settings(args.config))
    serve(create_app(floor), args.host, args.port)


if __name__ == "__main__":
    main()
