"""Field grades, masking rules and the per-operation release decisions.

The data files beside this module are the policy (read them first):
``catalog.toml`` (grade and mask rule of every field coordinate),
``matters.toml`` (registered matters and the roles that may use them),
``model.conf`` and ``policy.csv`` (Casbin: clearances per role, owning region
and matter; deny lines; the negative list).

Usage, once per GraphQL operation::

    engine = PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=secret)
    policy = engine.begin(caller, matter_code)          # Forbidden for a bad matter
    if policy.allows("LegalPerson.legalRepresentative", "JS"):
        ...
    rows = policy.apply("NaturalPerson", "JS", raw_rows)   # new dicts, masked in bulk
    extensions["policy"] = policy.summary()
"""

from policies.decisions import Decision, FieldDecision, Reason
from policies.engine import SHIPPED_POLICY_DIR, PolicyEngine, PolicyStatus
from policies.explain import explain
from policies.masks import resolve_mask_secret
from policies.matters import Matter
from policies.operation import OperationPolicy
from policies.resources import CatalogEntry, RegionDecision, catalog_entries, matter_entries

__all__ = [
    "SHIPPED_POLICY_DIR",
    "CatalogEntry",
    "Decision",
    "FieldDecision",
    "Matter",
    "OperationPolicy",
    "PolicyEngine",
    "PolicyStatus",
    "Reason",
    "RegionDecision",
    "catalog_entries",
    "explain",
    "matter_entries",
    "resolve_mask_secret",
]
