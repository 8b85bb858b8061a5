"""The ``setup`` fixture of the ProviderNode tests: ``node_setup.py`` builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.provider_node.comparison.node_setup import NodeSetup, node_setup


@pytest.fixture
def setup(tmp_path: Path, request: pytest.FixtureRequest) -> NodeSetup:
    """``indirect`` parametrisation sets the blinded items per minute (0: no limit)."""
    return node_setup(tmp_path, blinded_per_minute=getattr(request, "param", 0))
