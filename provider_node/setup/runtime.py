"""Assemble a running node from its configuration: keys, catalog, indexes, audit log, metrics.

``open_node`` does the work that ``bidui provider serve`` and ``bidui demo`` share; ``serve`` runs
the node in the foreground until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from comparator.oprf import OprfServer, VoprfServer
from comparator.periods import duration_seconds
from provider_node.access.policy import AccessPolicy, ItemsPerDay, ItemsPerMinute
from provider_node.access.quotas import QuotaPruner
from provider_node.audit.checkpoints import Checkpointer
from provider_node.audit.log import AuditLog
from provider_node.comparison.node import NodeLimits, ProviderNode
from provider_node.config import ConfigError, NodeConfig
from provider_node.config.models import metrics_listen_problem
from provider_node.core.errors import AuditUnavailableError
from provider_node.core.vocabulary import OprfMode
from provider_node.core.workdays import announce, calendar_end, supported_years
from provider_node.governance import catalog_changes, provisional_deadlines
from provider_node.governance.discrepancies import DiscrepancyDesk
from provider_node.governance.sharing import SharingDesk
from provider_node.identity.auth import Authenticator, RevocationList
from provider_node.identity.certificates import revoked_in_chain, revoked_serials
from provider_node.observability.endpoint import MetricsServer, MetricsTls, start_metrics_server
from provider_node.observability.metrics import NodeMetrics
from provider_node.resources.catalog import (
    OPRF_PROTOCOL_MODES,
    Resource,
    ServedResource,
    build_catalog,
)
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import index_built_at, load_indexes
from provider_node.store.engine import make_engine, migrate, session_factory
from provider_node.store.gate import StoreGate
from provider_node.transport.server import (
    RunningServer,
    SessionReaper,
    TlsMaterial,
    TransportLimits,
    create_server,
)
from provider_node.transport.workers import worker_registry

_log = logging.getLogger(__name__)


@dataclass
class OpenNode:
    """Everything a node holds while it runs."""

    config: NodeConfig
    node: ProviderNode
    metrics: NodeMetrics
    registry: CollectorRegistry
    audit: AuditLog
    engine: Engine
    revocations: RevocationList
    desk: SharingDesk
    pruner: QuotaPruner
    checkpointer: Checkpointer
    discrepancies: DiscrepancyDesk


def oprf_servers(
    keys: NodeKeys, resource: Resource
) -> tuple[dict[OprfMode, OprfServer | VoprfServer], bytes | None]:
    """The servers of the RFC 9497 modes ``resource`` offers, and modeVOPRF's public key."""
    servers: dict[OprfMode, OprfServer | VoprfServer] = {}
    public_key = None
    for mode in resource.offered_oprf_modes:
        private, public = keys.oprf_key_pair(
            resource.id, resource.key_version, OPRF_PROTOCOL_MODES[mode]
        )
        if mode is OprfMode.VOPRF:
            servers[mode], public_key = VoprfServer(private), public
        else:
            servers[mode] = OprfServer(private)
    return servers, public_key


def open_node(
    config: NodeConfig,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> OpenNode:
    """Load keys and indexes, open (and migrate) the audit store; raises on a missing part."""
    use_calendar(config, clock())
    keys = NodeKeys.load(config.keys.dir)
    catalog = build_catalog(config)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = NodeMetrics(registry, known_resources=catalog, clock=clock)
    served: dict[str, ServedResource] = {}
    for resource in catalog.values():
        servers, public_key = oprf_servers(keys, resource)
        indexes = load_indexes(resource, config, keys) if resource.comparable else {}
        built = [t for t in (index_built_at(i) for i in indexes.values()) if t is not None]
        for (key_name, mode), index in indexes.items():
            metrics.set_index(
                resource.id,
                key_name,
                mode,
                len(index),
                index_built_at(index) or clock(),
                duration_seconds(resource.update_period),
            )
        served[resource.id] = ServedResource(
            resource=resource,
            oprf_servers=servers,
            oprf_public_key=public_key,
            hmac_key=keys.hmac_key(resource.id, resource.key_version),
            indexes=indexes,
            last_refresh=min(built) if built else None,
        )
    engine = make_engine(
        config.audit.database_url, config.audit.timeouts(), pool_size=config.audit.store_slots
    )
    migrate(engine)
    sessions = session_factory(engine)
    metrics.track_applications(sessions)
    metrics.track_discrepancies(sessions)
    audit = AuditLog(
        sessions,
        clock=clock,
        retention_days=config.audit.retention_days,
        group_commit_max_records=config.audit.group_commit_max_records,
    )

    chain = ChainRevocations()

    def load_revoked() -> set[str]:
        with sessions() as session:
            return revoked_serials(session) | chain.read(session)

    revocations = RevocationList(load_revoked)
    per_minute = ItemsPerMinute(
        hashed=config.node.max_hashed_items_per_minute, blinded=config.node.max_items_per_minute
    )
    gate = StoreGate(
        workers=config.audit.store_slots, deadline=config.audit.request_deadline_seconds
    )
    per_day = {
        resource.id: ItemsPerDay(
            hashed=_first(
                resource.max_hashed_items_per_department_day,
                config.node.max_hashed_items_per_department_day,
            ),
            blinded=_first(
                resource.max_items_per_department_day, config.node.max_items_per_department_day
            ),
        )
        for resource in config.resources
    }
    access = AccessPolicy(sessions, per_minute, gate=gate, clock=clock, items_per_day=per_day)
    limits = NodeLimits(
        max_batch_items=config.node.max_batch_items,
        session_seconds=config.node.blinded_session_seconds,
        max_open_sessions=config.node.max_open_sessions,
        max_open_sessions_per_department=config.node.max_open_sessions_per_department,
        refusal_window_seconds=config.audit.refusal_window_seconds,
    )
    node = ProviderNode(
        served, audit, metrics, access, limits, gate=gate, clock=clock,
        payload_key=keys.payload_digest_key(),
    )  # fmt: skip
    # Comparisons a crashed node left open (kill -9 between the two steps) end as abandoned now;
    # younger ones may belong to another live process on this database: its reaper closes them.
    node.reconcile_open_comparisons(float(config.node.blinded_session_seconds))
    changed = catalog_changes.record(audit, config.resources, operator=config.node.department)
    if changed is not None:
        _log.info("audited: %s", changed.split(" | ")[0])
    settled = provisional_deadlines.settle(audit, operator=config.node.department)
    if any(settled):
        _log.info(
            "recounted on the announced calendar: %d application and %d discrepancy report "
            "deadlines that were provisional",
            *settled,
        )
    desk = SharingDesk(served, audit, clock=clock)
    pruner = QuotaPruner(sessions, clock=clock)
    checkpointer = Checkpointer(audit, config.keys.dir, config.node.data_dir, clock=clock)
    discrepancies = DiscrepancyDesk(audit, clock=clock)
    return OpenNode(
        config,
        node,
        metrics,
        registry,
        audit,
        engine,
        revocations,
        desk,
        pruner,
        checkpointer,
        discrepancies,
    )


# How long before the working-day calendar runs out the node warns at each start.
_CALENDAR_WARNING = timedelta(days=45)


def _first(given: int | None, default: int) -> int:
    return default if given is None else given


def use_calendar(config: NodeConfig, now: datetime) -> None:
    """The package's years and the operator's ``[[calendar.years]]``; a warning for a copy the
    package has made needless, and for a calendar about to run out (applications whose deadline
    falls after it are refused)."""
    for year in announce(config.calendar.announced()):
        _log.warning(
            "%s: [[calendar.years]] %d is known to the chinese-calendar package now: the "
            "package's dates are used, remove the copy",
            config.path,
            year,
        )
    end = calendar_end()
    if end - now < _CALENDAR_WARNING:
        last = supported_years()[1]
        _log.warning(
            "the working-day calendar runs out in %d days (it knows dates up to %d-12-31): "
            "deadlines falling later are provisional (weekdays less the fixed-date holidays). "
            "Once the State Council announces %d, add it to [[calendar.years]] in %s or update "
            "the chinese-calendar package, and restart: they are then recounted",
            max((end - now).days, 0),
            last,
            last + 1,
            config.path,
        )


def _close_open_sessions(node: ProviderNode, patience: float) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            node.abandon_open_sessions()
            node.resolve_answers_in_doubt()
            node.record_refusals(everything=True)
            return
        except AuditUnavailableError as problem:
            if time.monotonic() >= deadline:
                _log.error(
                    "stopping with %d blinded comparisons not recorded as abandoned and %d "
                    "refusals not recorded (%s): the next node to start on this audit log "
                    "records the comparisons; the refusals are in the metrics only",
                    node.open_sessions,
                    node.refusals_pending,
                    problem,
                )
                return
            time.sleep(1.0)


@dataclass
class StartedNode:
    """A node listening for gRPC and serving metrics; ``stop`` shuts all of it down."""

    opened: OpenNode
    grpc: RunningServer
    metrics_server: MetricsServer
    metrics_port: int
    reaper: SessionReaper

    @property
    def port(self) -> int:
        return self.grpc.port

    def stop(self, grace: float = 5.0, *, record_for: float = 30.0) -> None:
        """The safe order: NOT_SERVING, stop accepting, let in-flight RPCs finish within
        ``grace`` (each audited), then close every open blinded comparison as abandoned
        (retried for up to ``record_for`` seconds while the store is down), then let go."""
        self.grpc.stop(grace)
        self.reaper.stop()
        self.opened.pruner.stop()
        self.opened.checkpointer.stop()
        _close_open_sessions(self.opened.node, record_for)
        self.opened.checkpointer.run_once()  # the head as this node leaves it
        self.opened.revocations.stop()
        self.metrics_server.shutdown()
        self.opened.engine.dispose()


def start_node(
    opened: OpenNode,
    *,
    listen: str | None = None,
    metrics_listen: str | None = None,
    worker: int | None = None,
) -> StartedNode:
    """Start the gRPC server (mutual TLS) and the metrics endpoint of an opened node.

    ``worker``: this process is that worker of several sharing the port (``serve --workers``,
    see ``provider_node.transport.workers``): the port is bound with SO_REUSEPORT, and every metric
    series
    is labelled ``worker``.
    """
    config = opened.config
    config.tls.check_files(config.path)
    metrics_address = metrics_listen or config.node.metrics_listen
    refused = metrics_listen_problem(metrics_address, config.node.metrics_expose)
    if refused is not None:
        raise ConfigError(f"metrics address {metrics_address} {refused}")
    tls = TlsMaterial.from_files(config.tls.ca_cert, config.tls.server_cert, config.tls.server_key)
    opened.revocations.start()
    running = create_server(
        opened.node,
        opened.metrics,
        tls,
        Authenticator(opened.revocations, issuer=x509.load_pem_x509_certificate(tls.ca_cert)),
        opened.desk,
        listen or config.node.listen,
        discrepancies=opened.discrepancies,
        limits=TransportLimits(
            max_message_bytes=config.node.max_message_bytes,
            max_workers=config.transport.max_workers,
            max_concurrent_rpcs=config.transport.max_concurrent_rpcs,
            handshake_timeout_s=config.transport.handshake_timeout_seconds,
            max_connection_idle_s=config.transport.max_connection_idle_seconds,
            max_connection_age_s=config.transport.max_connection_age_seconds,
            reuse_port=worker is not None,
        ),
    )
    try:
        metrics_tls = None
        if config.node.metrics_tls:
            metrics_tls = MetricsTls(
                config.tls.server_cert, config.tls.server_key, config.tls.ca_cert
            )
        registry = opened.registry if worker is None else worker_registry(opened.registry, worker)
        metrics_server, metrics_port = start_metrics_server(
            metrics_listen or config.node.metrics_listen, registry, tls=metrics_tls
        )
    except BaseException:
        running.stop(0)
        opened.revocations.stop()
        raise
    lifetime = float(config.node.blinded_session_seconds)
    reaper = SessionReaper(opened.node, lifetime)
    reaper.start()
    opened.pruner.start()
    opened.checkpointer.start()
    return StartedNode(opened, running, metrics_server, metrics_port, reaper)


class ChainRevocations:
    """The revocations the audit chain records, read once and then from where the last read
    ended: a revocation undone in the certificates table still holds, because its record cannot
    be undone without breaking the chain."""

    def __init__(self) -> None:
        self._serials: set[str] = set()
        self._after = 0
        self._lock = threading.Lock()

    def read(self, session: Session) -> set[str]:
        with self._lock:
            serials, self._after = revoked_in_chain(session, self._after)
            self._serials |= serials
            return set(self._serials)
