"""The test tree mirrors the package tree: each room of a package has its tests in a folder of
the same name, so a maintainer finds a module's tests from its path alone."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# tests/<folder> holds the unit tests of <package>; integration, fault and protocol tests
# cross rooms and keep folders of their own.
MIRRORED = {"provider_node": "provider_node", "client_sdk": "client_sdk", "cli": "bidui_cli"}


def rooms(folder: Path) -> set[str]:
    return {
        p.name
        for p in folder.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "_"))
        and p.name != "migrations"
        and (any(p.glob("*.py")))
    }


@pytest.mark.parametrize(("tests", "package"), sorted(MIRRORED.items()))
def test_every_room_has_its_test_folder_and_no_other(tests: str, package: str) -> None:
    package_rooms = rooms(ROOT / package)
    test_rooms = rooms(ROOT / "tests" / tests)
    assert package_rooms, f"{package} has no subpackages"
    assert test_rooms == package_rooms, (
        f"tests/{tests} does not mirror {package}: "
        f"missing {sorted(package_rooms - test_rooms)}, "
        f"unknown {sorted(test_rooms - package_rooms)}"
    )


def test_unit_tests_of_a_room_sit_in_its_folder() -> None:
    # A test module directly under tests/provider_node would belong to no room.
    loose = sorted(p.name for p in (ROOT / "tests" / "provider_node").glob("test_*.py"))
    assert not loose, f"put these in their room's folder: {loose}"
