"""Error messages that stay useful without describing the schema, for production mode.

graphql-core's validation and coercion messages name what the caller may not
learn where introspection is off: the types of arguments and variables
(``'ID!'``), enum and input types (``'CreditKind'``, ``'AuditEventFilter'``) and
schema coordinates (``'Query.naturalPerson(idNumber:)'``). ``hide_schema_names``
keeps what the caller wrote (fields, arguments, variables, values) and says
what is wrong, dropping the rest: every message shape that quotes a type or a
coordinate is rewritten, not one message at a time.
"""

from __future__ import annotations

import re

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # 'Query.naturalPerson(idNumber:)' or '@include(if:)': the argument and its field.
        (r"'(?:\w+\.)?(@?\w+)\((\w+):\)'", r"'\2' of '\1'"),
        # 'LegalPerson.creditRecords': the field alone.
        (r"'\w+\.(\w+)'", r"'\1'"),
        (r"as objects of type '[^']*' can never be of type '[^']*'", "as the types never overlap"),
        (r" (?:of|on|by)(?: required| non-null)? type '[^']*'", ""),
        (r"expecting type '[^']*'", "expecting another type"),
        (r"since type '[^']*'", "since its type"),
        (r"type '[^']*'", "type"),
        (r"in '\w+' enum", "in the enum"),
        (r"\bEnum '\w+'", "Enum"),
        # "ID cannot represent …", "Int cannot represent …": the scalar is the argument's type.
        (r"(^|[;:] )\w+ cannot represent", r"\1The expected type cannot represent"),
    )
)


def hide_schema_names(message: str) -> str:
    """``message`` without the types and schema coordinates it names."""
    for pattern, replacement in _REWRITES:
        message = pattern.sub(replacement, message)
    return message
