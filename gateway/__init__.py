"""deltagate's runtime, in layers that import only downwards (README, "Architecture").

::

    gateway.edge        HTTP app, auth, limits, settings, CLI        imports anything below
    schema              the unified GraphQL schema and executor      resolvers, policies, ...
    resolvers           resolvers, loaders, links                    policies, sources, ...
    policies            grades, Casbin rules, masks, decisions       core
    gateway.sources     source kinds, mappings, SQL                  core
    gateway.audit       the audit log                                core
    gateway.telemetry   spans and their export                       core
    gateway.synthetic   demo data                                    core, sources
    gateway.core        types, errors, entities, identifiers         nothing of the project

``tests/test_layers.py`` reads every import and fails on one that goes up.
"""
