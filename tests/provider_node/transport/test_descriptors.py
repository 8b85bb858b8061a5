"""The node raises its open-files soft limit to the hard one
(``provider_node.transport.descriptors``); the
node under systemd's default soft limit and a flood of stalled peers:
tests/integration/test_open_files.py."""

from __future__ import annotations

import resource

import pytest

from provider_node.transport.descriptors import LOW_OPEN_FILES, raise_open_files_limit


class Limits:
    """``getrlimit``/``setrlimit`` of a process whose limits are ``(soft, hard)``."""

    def __init__(self, soft: int, hard: int, *, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse
        self.set_to: list[tuple[int, int]] = []

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.set_to.append(limits)
        self.soft = limits[0]


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    limits = Limits(1024, 524_288)  # systemd's defaults
    got = raise_open_files_limit(getrlimit=limits.get, setrlimit=limits.set)
    assert limits.set_to == [(524_288, 524_288)]
    assert (got.before, got.now, got.hard, got.raised, got.low) == (
        1024, 524_288, 524_288, True, False
    )  # fmt: skip


def test_a_soft_limit_at_the_hard_one_is_left_alone() -> None:
    limits = Limits(20_000, 20_000)
    got = raise_open_files_limit(getrlimit=limits.get, setrlimit=limits.set)
    assert limits.set_to == []
    assert (got.now, got.raised, got.low) == (20_000, False, False)


def test_an_unlimited_hard_limit_is_taken_as_linux_default_nr_open() -> None:
    limits = Limits(1024, resource.RLIM_INFINITY)
    got = raise_open_files_limit(getrlimit=limits.get, setrlimit=limits.set)
    assert limits.set_to == [(1_048_576, resource.RLIM_INFINITY)]
    assert got.now == 1_048_576


def test_a_refused_raise_leaves_the_limit_as_it_was_and_says_it_is_low() -> None:
    limits = Limits(1024, 524_288, refuse=True)
    got = raise_open_files_limit(getrlimit=limits.get, setrlimit=limits.set)
    assert (got.before, got.now, got.raised, got.low) == (1024, 1024, False, True)


@pytest.mark.parametrize(("hard", "low"), [(LOW_OPEN_FILES - 1, True), (LOW_OPEN_FILES, False)])
def test_a_hard_limit_below_the_margin_is_low(hard: int, low: bool) -> None:
    limits = Limits(1024, hard)
    assert raise_open_files_limit(getrlimit=limits.get, setrlimit=limits.set).low is low


def test_this_process_limit_is_raised_for_real() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        got = raise_open_files_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == got.now
        assert got.now == (hard if hard != resource.RLIM_INFINITY else 1_048_576)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
