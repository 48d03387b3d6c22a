"""Checks of list and page arguments, shared by both executors.

A batch argument (``idNumbers``, ``usccs``) and a page size (``first``) are
checked before anything is read, in the Strawberry resolvers and in the direct
executor alike, so both refuse the same requests with the same errors.
"""

from __future__ import annotations

from collections.abc import Sized

from gateway.core.errors import BatchTooLarge, InvalidInput

#: Most keys one batch argument (idNumbers, usccs) and one page (first) may ask for.
MAX_KEYS = 100
#: The page size when ``first`` is not given.
DEFAULT_PAGE = 20


def check_batch(values: Sized, argument: str) -> None:
    """Refuse a batch argument of more than ``MAX_KEYS`` keys.

    Raises:
        BatchTooLarge: ``values`` holds too many keys.
    """
    if len(values) > MAX_KEYS:
        raise BatchTooLarge(
            f"{argument} has {len(values)} keys; at most {MAX_KEYS} are allowed",
            argument=argument,
            found=len(values),
            maximum=MAX_KEYS,
        )


def check_page(first: int) -> None:
    """Refuse a page size outside 1 to ``MAX_KEYS``.

    Raises:
        BatchTooLarge: ``first`` is more than ``MAX_KEYS``.
        InvalidInput: ``first`` is less than 1.
    """
    if first > MAX_KEYS:
        raise BatchTooLarge(
            f"first is {first}; at most {MAX_KEYS} are allowed",
            argument="first",
            found=first,
            maximum=MAX_KEYS,
        )
    if first < 1:
        raise InvalidInput("first must be at least 1", argument="first")
