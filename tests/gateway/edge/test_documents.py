"""The document cache: what it keeps of refused documents, and how much it may hold."""

from __future__ import annotations

import gc
import tracemalloc

from gateway.edge.documents import DocumentGuard
from gateway.edge.query_limits import Limits
from schema import build_schema
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

OFFICER = token("JS", "joint_handling_officer", app="jh-js")


def refused_documents(count: int) -> list[str]:
    """Distinct documents of about 15 KB each, every one parsed and then refused."""
    documents = []
    for i in range(count):
        if i % 2:  # 500 unknown fields with long names: refused by validation
            fields = " ".join(f"unknownField{i}x{j:018d}" for j in range(500))
        else:  # 800 copies of one field, hence long names: refused by a limit after parsing
            fields = " ".join(f"longAlias{j:03d}: name" for j in range(30)) + " name" * 2200
        documents.append(f'{{ legalPerson(uscc: "x") {{ {fields} }} }}'[:16_000])
    return documents


async def test_refused_documents_keep_no_parse_tree(seeded: Seeded) -> None:
    # Each new text is cached (so that sending it again costs nothing); a refused one is cached
    # as its refusal only: about its own text, not the tens of times more its tree takes.
    documents = refused_documents(40)
    wide = Limits(max_tokens=5000, max_aliases=40)
    settings = gateway_settings(seeded.dsn, limits=wide, rate_limits=False)
    async with serve(settings) as client:
        for document in refused_documents(4):  # warm every lazily built part of the gateway
            await client.post(document + " # warm", token=OFFICER)
        tracemalloc.start()
        try:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for document in documents + documents:  # each twice: a cached refusal raised again
                response = await client.post(document, token=OFFICER)
                assert response.json()["errors"][0]["extensions"]["code"] in (
                    "BAD_REQUEST", "QUERY_TOO_COMPLEX",
                )  # fmt: skip
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    text = sum(len(d) for d in documents)
    assert grown < 3 * text, f"{grown / len(documents):.0f} bytes kept per refused document"


def test_the_cache_is_bounded_by_the_bytes_it_holds() -> None:
    guard = DocumentGuard(build_schema()._schema, Limits(document_cache_bytes=1_000_000))
    root = " ".join(
        f'a{j}: legalPerson(uscc: "x") {{ name uscc region status }}' for j in range(10)
    )
    documents = [f"{{ {root} }} # {i}" for i in range(40)]
    for document in documents:
        guard.examine(document)
        assert guard.cached_bytes <= 1_000_000
    assert guard.knows(documents[-1])
    assert not guard.knows(documents[0])
