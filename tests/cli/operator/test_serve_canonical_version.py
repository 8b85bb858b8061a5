"""bidui provider serve refuses indexes of another canonical version, naming the command to run."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bidui_cli.main import main as bidui
from comparator.canonical import CANONICAL_VERSION
from comparator.index import MatchIndex
from provider_node.setup.bootstrap import init_node
from provider_node.setup.sample_data import add_residents, synthetic_residents


def test_serve_refuses_an_older_canonical_version_with_the_exact_load_command(
    tmp_path: Path,
) -> None:
    init = init_node(tmp_path / "node")
    add_residents(init.source_db, synthetic_residents(20, seed=3))
    runner = CliRunner()
    config = str(init.config_path)
    loaded = runner.invoke(bidui, ["provider", "load", "--config", config])
    assert loaded.exit_code == 0, loaded.output
    indexes = sorted((tmp_path / "node").rglob("*.idx"))
    assert indexes
    for path in indexes:  # as the previous version of bidui built them: no canonical_version
        metadata = MatchIndex.load(path).metadata
        assert metadata.pop("canonical_version") == str(CANONICAL_VERSION)
        MatchIndex.build([], metadata=metadata).save(path)
    serve = ["provider", "serve", "--config", config, "--listen", "127.0.0.1:0"]
    refused = runner.invoke(bidui, [*serve, "--metrics-listen", "127.0.0.1:0"])
    assert refused.exit_code == 2, refused.output
    assert "built under canonical version 1, this node encodes records under version " in (
        refused.output
    )
    assert f"run `bidui provider load --config {config} --resource residents`" in refused.output
    assert refused.output.count("\n") <= 2  # one clear line, no traceback

    # Running that command is all it takes.
    assert runner.invoke(bidui, ["provider", "load", "--config", config]).exit_code == 0
    for path in indexes:
        assert MatchIndex.load(path).metadata["canonical_version"] == str(CANONICAL_VERSION)
