"""A node whose ``[[calendar.years]]`` announces the year after the ``chinese-calendar`` package's
last, over real gRPC and mutual TLS: an application made on the package's last day gets its
decision deadline in the announced year, and /metrics says when the calendar runs out.

The node's clock is 10:00 China time on December 31 of the package's last year; without the
announcement that application is refused FAILED_PRECONDITION (tests/client_sdk/test_node_refusals).
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bidui.v1 import catalog_pb2, sharing_pb2, sharing_pb2_grpc
from provider_node.core.workdays import announce, china_midnight
from tests.integration.conftest import NodeUnderTest, start
from tests.provider_node.core.test_announced_years import LAST, MAKE_UP, NEXT, notice_toml

SUBMITTED = dt.datetime(LAST, 12, 31, 2, 0, tzinfo=dt.UTC)  # 10:00 in China


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    running = start(
        tmp_path_factory.mktemp("calendar"), clock=lambda: SUBMITTED, extra_config=notice_toml()
    )
    yield running
    running.started.stop(grace=1.0)
    announce(())  # the calendar is one per process: leave the package's alone for other tests


def test_an_application_on_the_last_known_day_is_due_in_the_announced_year(
    node: NodeUnderTest,
) -> None:
    channel = node.channel()
    try:
        application = sharing_pb2_grpc.SharingServiceStub(channel).Apply(
            sharing_pb2.ApplyRequest(
                resource_id="household_register",
                comparison_keys=["id_number"],
                modes=[catalog_pb2.MODE_HASHED],
                duty="verifying applicants for housing subsidies",
                items_per_day=100,
                valid_until=f"{NEXT}-06-30",
            ),
            timeout=10,
        )
    finally:
        channel.close()
    # January 1-7 are the notice's holidays; from the 8th, weekdays and its make-up day count.
    days = (dt.date(NEXT, 1, 8) + dt.timedelta(n) for n in range(14))
    working = [d for d in days if d.weekday() < 5 or d == MAKE_UP]
    assert application.status == sharing_pb2.APPLICATION_STATUS_PENDING
    assert application.decision_deadline == working[4].isoformat()


def test_metrics_say_when_the_calendar_runs_out(node: NodeUnderTest) -> None:
    url = f"http://127.0.0.1:{node.started.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        families = text_string_to_metric_families(response.read().decode())
    values = [
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "bidui_working_day_calendar_end_timestamp_seconds"
    ]
    assert values == [china_midnight(dt.date(NEXT + 1, 1, 1)).timestamp()]
