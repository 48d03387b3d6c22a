"""Counter-based randomness: every record is a pure function of (seed, stream, index).

A seeded ``random.Random`` per record costs more to create than the record
costs to build, and one shared stream cannot be entered in the middle. A hash
of the record's index can: any record can be regenerated on its own, in any
order, in any process, which is what lets a million persons per region stream
into a database without being held in memory, and lets a test ask for
"person 42 of Jiangsu" directly.

Identifiers must also be unique, and that is by construction, never by
rejection sampling: an :class:`Affine` permutation maps indexes one-to-one onto
the space of identifier bodies (and back, so a key can be located again).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MASK64 = (1 << 64) - 1
#: 2^64 / golden ratio, the splitmix64 increment.
GOLDEN = 0x9E3779B97F4A7C15


def stream_key(seed: int, *parts: object) -> int:
    """A 64-bit key for one named stream of a seed (``stream_key(7, "SH", "person")``)."""
    text = ":".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def mix(x: int) -> int:
    """The splitmix64 finaliser: 64 well-mixed bits from any 64-bit input."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def draw(key: int, index: int) -> int:
    """The 64 random bits of record ``index`` in the stream ``key``."""
    # mix() inlined: this runs several times for every row generated.
    x = (key + index * GOLDEN) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class Affine:
    """The permutation ``x -> (a*x + b) mod size`` of ``range(size)``, and its inverse.

    ``a`` is coprime to ``size``, so distinct inputs give distinct outputs:
    mapping record indexes through it gives unique identifiers for free.
    """

    size: int
    a: int
    b: int
    a_inverse: int

    @classmethod
    def from_key(cls, size: int, key: int) -> Affine:
        """A permutation of ``range(size)`` chosen by a 64-bit key."""
        if size < 1:
            raise ValueError("an affine permutation needs a non-empty range")
        # Start well away from 1 so neighbouring indexes land far apart.
        a = (size // 3 + key % max(size // 3, 1)) % size or 1
        while math.gcd(a, size) != 1:
            a += 1
        return cls(size, a, (key >> 32) % size, pow(a, -1, size))

    def __call__(self, x: int) -> int:
        return (x * self.a + self.b) % self.size

    def inverse(self, y: int) -> int:
        """The ``x`` with ``self(x) == y``."""
        return ((y - self.b) * self.a_inverse) % self.size


class Weighted(Generic[T]):
    """Pick from values with integer weights by a random integer (cumulative table)."""

    __slots__ = ("_cumulative", "_values", "total")

    def __init__(self, pairs: Sequence[tuple[T, int]]) -> None:
        self._values = [value for value, _ in pairs]
        self._cumulative: list[int] = []
        running = 0
        for _, weight in pairs:
            running += weight
            self._cumulative.append(running)
        self.total = running

    def pick(self, r: int) -> T:
        """The value for ``r`` in ``range(self.total)``."""
        return self._values[bisect.bisect_right(self._cumulative, r)]
