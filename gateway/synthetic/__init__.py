"""Deterministic synthetic data for the four regions, and the seeding of their databases.

Real personal data cannot be used, so every person, enterprise and credit
record is generated from a seed: valid ID numbers (GB 11643) and USCCs
(GB 32100) in the right province, Chinese names, addresses that start with a
real division's name. ``Dataset`` yields the unified rows the gateway must
return; ``seed_regions`` writes them into each region's own native schema.
"""

from __future__ import annotations

from gateway.synthetic.generator import Dataset
from gateway.synthetic.seed import SeedReport, database_name, region_dsn, seed_regions

__all__ = ["Dataset", "SeedReport", "database_name", "region_dsn", "seed_regions"]
