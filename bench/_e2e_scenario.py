"""The end-to-end benchmark's scenario: who compares what, and the synthetic data it compares.

The provider is the Luzhou public security bureau with a ``residents`` resource keyed on
``id_number``; the requester is the civil affairs bureau. The residents are synthetic but valid
(18-digit resident ID numbers with their check character), so canonicalisation accepts every one
and a benchmark run measures comparison, not refusals. Half of every query set is present at the
provider and half absent, and every answer is checked: a wrong benchmark is worthless.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from client_sdk import ComparisonResult
from client_sdk.client import ComparisonMode as SdkMode
from comparator.fields import resident_id_check_character
from provider_node.setup.sample_data import LUZHOU_AREA_CODES

REPO = Path(__file__).resolve().parent.parent
RESOURCE = "residents"
KEY = "id_number"
PROVIDER = "luzhou-psb"
REQUESTER = "luzhou-civil-affairs"
PURPOSE = "benchmark: end-to-end comparison throughput and latency"
SDK_MODES: tuple[SdkMode, ...] = ("hashed", "blinded")

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂"


def log(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class IdFactory:
    """Valid 18-digit resident ID numbers of Luzhou residents: area code, birth date, sequence
    number and the ISO 7064 MOD 11-2 check character. Deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        first, last = _dt.date(1930, 1, 1).toordinal(), _dt.date(2020, 12, 31).toordinal()
        self._dates = [
            _dt.date.fromordinal(day).strftime("%Y%m%d") for day in range(first, last + 1)
        ]
        self._codes = list(LUZHOU_AREA_CODES)

    def take(self, count: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """``count`` distinct ID numbers, none in ``exclude``."""
        rng, dates, codes, check = self._rng, self._dates, self._codes, resident_id_check_character
        seen: set[str] = set()
        out: list[str] = []
        while len(out) < count:
            body = f"{codes[rng.randrange(7)]}{dates[rng.randrange(len(dates))]}"
            body += f"{rng.randrange(1000):03d}"
            id_number = body + check(body)
            if id_number in seen or id_number in exclude:
                continue
            seen.add(id_number)
            out.append(id_number)
        return out


def resident_names(count: int, rng: random.Random) -> Iterator[str]:
    for _ in range(count):
        yield rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))


@dataclasses.dataclass(frozen=True)
class Queries:
    records: list[dict[str, str]]
    present: list[bool]

    @property
    def expected_matches(self) -> int:
        return sum(self.present)


def make_queries(server_ids: list[str], m: int, seed: int) -> Queries:
    """``m`` records in random order: ``m // 2`` of the provider's, the rest valid but absent."""
    rng = random.Random(seed)
    present = rng.sample(server_ids, m // 2)
    absent = IdFactory(seed + 7).take(m - m // 2, exclude=set(server_ids))
    rows = [(i, True) for i in present] + [(i, False) for i in absent]
    rng.shuffle(rows)
    return Queries([{KEY: i} for i, _ in rows], [p for _, p in rows])


def check_result(result: ComparisonResult, queries: Queries, what: str) -> None:
    """Exit unless every record got exactly its right answer: a wrong benchmark is worthless."""
    if result.error_count:
        sys.exit(f"{what}: {result.error_count} records were refused: {result.errors[:3]}")
    if result.matched_count != queries.expected_matches:
        sys.exit(f"{what}: {result.matched_count} matches, expected {queries.expected_matches}")
    wrong = sum(o.is_match != p for o, p in zip(result, queries.present, strict=True))
    if wrong:
        sys.exit(f"{what}: {wrong} records got the wrong answer")
