"""``bidui provider serve --workers 2``: two worker processes on one port over real mutual TLS.

Several requester processes compare at once (hashed and blinded, through the SDK, a new
connection per round so the kernel spreads them over the workers); then SIGTERM stops the node
with exit code 0, the one audit chain verifies and holds exactly one answered record per
comparison answered. An open blinded comparison lives in the worker that opened it (step 2 on
a connection to the other is refused FAILED_PRECONDITION, the SDK's cue to start again). A worker
killed outright stops the node, which names it; workers whose supervisor is killed stop by
themselves; a second node on the port is refused.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bidui.v1 import catalog_pb2, catalog_pb2_grpc, comparison_pb2, comparison_pb2_grpc
from comparator.canonical import Domain, encode_record
from comparator.oprf import OprfClient
from provider_node.config import load_config
from provider_node.resources.catalog import build_catalog
from tests.cli.running import audited, bidui
from tests.integration.conftest import build_node_dir
from tests.postgres import fresh_schema_url

REQUESTERS = 4
ROUNDS = 4  # connections per requester process
RECORDS = 12  # per comparison: half present, half absent
ANY_PORTS = ("--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")

# One requester process: ROUNDS connections, each a hashed and a blinded comparison, every answer
# checked; prints the number of comparisons (audit records) the node answered.
_REQUESTER = """
import json, sys
from pathlib import Path
from client_sdk import ComparisonClient, Credentials
target, pki, records_file, rounds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
records, present = json.loads(Path(records_file).read_text())
credentials = Credentials.from_files(
    pki / "ca.pem", pki / "clients" / "luzhou-civil-affairs.pem",
    pki / "clients" / "luzhou-civil-affairs.key",
)
answered = 0
for _ in range(rounds):
    with ComparisonClient(target, credentials, timeout=60) as client:
        for mode in ("hashed", "blinded"):
            result = client.compare(
                "residents", records, key="id_number", mode=mode, purpose="workers test"
            )
            assert [o.is_match for o in result] == present, (mode, result.errors)
            answered += len(result.comparison_ids)
print(json.dumps({"answered": answered}))
"""


class Serve:
    """``bidui provider serve`` in a subprocess; its stderr lines collected as they come."""

    def __init__(self, config: Path, *args: str) -> None:
        command = [str(Path(sys.executable).with_name("bidui")), "provider", "serve"]
        self.process = subprocess.Popen(
            [*command, "--config", str(config), *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"serve exited {self.process.returncode}:\n{self.output}")
            time.sleep(0.1)
        pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{self.output}")

    def finish(self, timeout: float = 90) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(5)
        return code


def _answered_per_worker(metrics_port: int) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "bidui_comparisons_total" and sample.labels["outcome"] == "answered"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with fresh_schema_url() as url:
            yield url


def test_two_workers_answer_concurrent_requesters_on_one_audit_chain(
    tmp_path: Path, audit_url: str | None
) -> None:
    config, residents, absent = build_node_dir(tmp_path, audit_url=audit_url)
    half = RECORDS // 2
    rows = [{"id_number": r[0]} for r in residents[:half] + absent[:half]]
    records_file = tmp_path / "records.json"
    records_file.write_text(json.dumps([rows, [True] * half + [False] * half]))
    node = Serve(config, "--workers", "2", *ANY_PORTS)
    try:
        port = int(node.wait_for(r"serving on port (\d+) \(mutual TLS\) with 2 workers")[1])
        ready = r"worker {} \(pid \d+\) serving on port {}; metrics port (\d+)"
        metrics_ports = [int(node.wait_for(ready.format(i, port))[1]) for i in range(2)]
        requesters = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _REQUESTER,
                    f"localhost:{port}",
                    str(tmp_path / "pki"),
                    str(records_file),
                    str(ROUNDS),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(REQUESTERS)
        ]
        answered = 0
        for requester in requesters:
            out, err = requester.communicate(timeout=180)
            assert requester.returncode == 0, err
            answered += json.loads(out)["answered"]
        per_worker = [_answered_per_worker(p) for p in metrics_ports]
        # A second node on the port is refused, with or without workers of its own.
        for extra in (["--workers", "2"], []):
            taken = ("--listen", f"127.0.0.1:{port}", "--metrics-listen", "127.0.0.1:0")
            second = Serve(config, *taken, *extra)
            assert second.finish(60) == 2, second.output
            assert f"cannot listen on 127.0.0.1:{port}" in second.lines[-1], second.output
        node.process.send_signal(signal.SIGTERM)
        code = node.finish()
    finally:
        if node.process.poll() is None:
            node.process.kill()
    assert code == 0, node.output
    assert "received SIGTERM; stopping 2 workers gracefully" in node.output
    assert re.search(r"worker 0 \(pid \d+\) stopped", node.output)
    assert re.search(r"worker 1 \(pid \d+\) stopped", node.output)
    assert node.lines[-1] == "stopped" and "Traceback" not in node.output
    # Each worker answered some: 16 connections all on one worker would be a 1 in 32,768 chance.
    assert answered == REQUESTERS * ROUNDS * 2 and sum(per_worker) == answered
    assert all(n > 0 for n in per_worker), per_worker
    verified = bidui("audit", "verify", "--config", config)
    assert verified.exit_code == 0, verified.output
    records = audited(config)
    comparisons = [r for r in records if r["action"] == "comparison"]
    assert sum(r["outcome"] == "answered" for r in comparisons) == answered
    assert sum(r["outcome"] == "opened" for r in comparisons) == answered // 2  # blinded ones
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_a_worker_that_dies_stops_the_node_which_names_it(tmp_path: Path) -> None:
    config, _, _ = build_node_dir(tmp_path)
    node = Serve(config, "--workers", "2", *ANY_PORTS, "--grace", "1")
    try:
        node.wait_for(r"with 2 workers")
        pid = int(node.wait_for(r"worker 1 \(pid (\d+)\) serving")[1])
        os.kill(pid, signal.SIGKILL)
        code = node.finish()
    finally:
        if node.process.poll() is None:
            node.process.kill()
    assert code == 2, node.output
    died = f"worker 1 (pid {pid}) was killed by SIGKILL unexpectedly"
    assert f"{died}; stopping the other workers" in node.output
    assert re.search(r"worker 0 \(pid \d+\) stopped", node.output)
    assert node.lines[-1] == f"error: {died}", node.output
    assert "Traceback" not in node.output


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    config, _, _ = build_node_dir(tmp_path)
    node = Serve(config, "--workers", "2", *ANY_PORTS, "--grace", "1")
    pids: list[int] = []
    try:
        node.wait_for(r"with 2 workers")
        pids += [int(node.wait_for(rf"worker {i} \(pid (\d+)\) serving")[1]) for i in range(2)]
        node.process.kill()
        node.finish()
        deadline = time.monotonic() + 60
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in pids)
    finally:
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    verified = bidui("audit", "verify", "--config", config)
    assert verified.exit_code == 0, verified.output


def _rpc_counts(metrics_ports: list[int], method: str) -> list[float]:
    """Per worker: how many ``method`` RPCs it handled (``bidui_rpc_duration_seconds``)."""
    counts = []
    for port in metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            families = text_string_to_metric_families(response.read().decode())
        counts.append(
            sum(
                s.value
                for f in families
                for s in f.samples
                if s.name == "bidui_rpc_duration_seconds_count" and s.labels["method"] == method
            )
        )
    return counts


def test_an_open_blinded_comparison_lives_in_the_worker_that_opened_it(tmp_path: Path) -> None:
    config_path, residents, _ = build_node_dir(tmp_path)
    config = load_config(config_path)
    resource = build_catalog(config)["residents"]
    domain = Domain("residents", "id_number", 1)
    inputs = [encode_record(domain, resource.comparison_key("id_number"), {"id_number": r[0]})
              for r in residents[:2]]  # fmt: skip
    pki = tmp_path / "pki"
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.key").read_bytes(),
        (pki / "clients" / "luzhou-civil-affairs.pem").read_bytes(),
    )
    header = comparison_pb2.ComparisonHeader(
        resource_id="residents", comparison_key="id_number", purpose="workers", key_version=1
    )
    node = Serve(config_path, "--workers", "2", *ANY_PORTS, "--grace", "1")
    try:
        port = int(node.wait_for(r"serving on port (\d+) \(mutual TLS\) with 2 workers")[1])
        ready = r"worker {} \(pid \d+\) serving on port {}; metrics port (\d+)"
        metrics = [int(node.wait_for(ready.format(i, port))[1]) for i in range(2)]
        target = f"localhost:{port}"
        with grpc.secure_channel(target, credentials) as first:
            step_1 = comparison_pb2_grpc.ComparisonServiceStub(first).BlindEvaluate(
                comparison_pb2.BlindEvaluateRequest(
                    header=header, blinded_elements=OprfClient().blind(inputs).message
                ),
                timeout=20,
            )
            opener = _rpc_counts(metrics, "BlindEvaluate").index(1)
            step_2 = comparison_pb2.MatchBlindedRequest(
                comparison_id=step_1.comparison_id, outputs=[bytes(64)]
            )
            for _ in range(40):  # a new connection (its own subchannel) until another worker
                before = _rpc_counts(metrics, "ListResources")
                options = [("grpc.use_local_subchannel_pool", 1)]
                with grpc.secure_channel(target, credentials, options=options) as other:
                    catalog_pb2_grpc.CatalogServiceStub(other).ListResources(
                        catalog_pb2.ListResourcesRequest(), timeout=20
                    )
                    after = _rpc_counts(metrics, "ListResources")
                    if after[opener] > before[opener]:
                        continue  # the same worker: try another connection
                    with pytest.raises(grpc.RpcError) as elsewhere:
                        comparison_pb2_grpc.ComparisonServiceStub(other).MatchBlinded(
                            step_2, timeout=20
                        )
                    break
            else:
                pytest.fail("40 new connections all reached the same worker")
            assert elsewhere.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no open blinded comparison" in (elsewhere.value.details() or "")
            # On its own connection the comparison is still open: a wrong step 2 is judged there.
            with pytest.raises(grpc.RpcError) as here:
                comparison_pb2_grpc.ComparisonServiceStub(first).MatchBlinded(step_2, timeout=20)
            assert here.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        node.process.send_signal(signal.SIGTERM)
        assert node.finish() == 0, node.output
    finally:
        if node.process.poll() is None:
            node.process.kill()
