"""Operational metrics, served at ``GET /metrics`` in the Prometheus text exposition format.

One ``CollectorRegistry`` per app, never prometheus-client's process-wide default: two
apps in one process (the tests, ``tests/test_two_gateways.py``) must not add up into one
set of counters, and a closed app must not keep its series alive.

Counters and histograms are counted by the parts that act (submission, inbox writer,
dispatcher, dead-letter recorder, expiry, the database's commit); the backlog and audit
log figures are read from the database just before each scrape (``StoreCollector``), so
they are database-wide and every gateway process on the same database reports the same.

Labels are closed sets, so the number of series stays bounded and no series says anything
about a person or a message (UK GDPR Art. 5(1)(c), data minimisation): message types
(``gateway.domain.model.MessageType``), delivery channels, refusal reasons (the RFC 9457 problem
type slugs of ``gateway.domain.errors``) and the fixed list of leader roles. Never a message id,
an organisation code, a PNC ID or a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.domain.model import MessageType

# How a message reached its recipient: ``inbox`` (the gateway's own inbox, read through
# the API or stream, whichever transport brought it), ``amqp`` (handed over into the
# organisation's own RabbitMQ queue), ``webhook`` and ``mesh`` (pushed by the dispatcher),
# and ``email`` (a notice to the SPOC about an alert, also pushed by the dispatcher).
DELIVERY_CHANNELS = ("inbox", "amqp", "webhook", "mesh", "email")
# Channels the dispatcher pushes on: a backlog of 0 is reported for each even when empty,
# so an alert rule on the backlog never meets a missing series.
PUSH_CHANNELS = ("webhook", "mesh", "email")
# Jobs only the leader runs (gateway.services.leadership): checkpoint signing, expiry,
# escalation, MESH acknowledgement polling. The leader reports 1 for each it is configured
# for; a standby reports 0 until it takes over.
LEADER_ROLES = ("audit-checkpointer", "expiry", "alert-escalation", "mesh-acknowledgements")
# Refusals by policy, the reason pre-created for every type (the slug of PolicyRefused).
POLICY_REFUSAL = "refused-by-policy"
OTHER_TYPE = "other"

_TYPES = tuple(t.value for t in MessageType)
# SQLite with synchronous=FULL commits in about a millisecond on an SSD and tens of
# milliseconds on a network disk; a commit over a second is an incident.
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Operations per commit: on SQLite's group commit 1 when idle, up to its max_batch (256);
# on PostgreSQL always 1 (a transaction per operation).
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# From acceptance to the recipient's inbox: milliseconds when delivery keeps up; intake
# pauses at DIPGW_DELIVERY_LAG_LIMIT_SECONDS (1 s by default), so the top buckets are
# for an incident.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SHARED = "read from the database at scrape time, so every gateway process on the same "\
    "database reports the same figure"


def message_type_label(raw: object) -> str:
    """The ``type`` label for a submitted document: its type when it names one the
    gateway knows, else ``other``, so a hostile document cannot add series."""
    return raw if isinstance(raw, str) and raw in _TYPES else OTHER_TYPE


@dataclass(frozen=True, slots=True)
class Backlog:
    """Rows waiting, and how long the oldest has waited (0 when none wait)."""

    count: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """What the database says at one moment, for one scrape."""

    outbox: Backlog
    dispatches: Mapping[str, Backlog]
    audit_entries: int
    # The newest signed checkpoint: the entries it covers and seconds since it was
    # signed; None before the first (an empty log has none).
    checkpoint_size: int | None
    checkpoint_age_s: float | None


class StoreCollector(Collector):
    """Reports the figures last read from the database.

    prometheus-client calls ``collect`` synchronously while rendering; a database read
    there would block the event loop, so the ``/metrics`` handler reads the figures
    asynchronously first (``update``) and this only reports them.
    """

    def __init__(self) -> None:
        self._figures: StoreFigures | None = None

    def update(self, figures: StoreFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterable[GaugeMetricFamily]:
        figures = self._figures
        if figures is None:
            return []
        outbox = GaugeMetricFamily(
            "dipgw_outbox_backlog",
            f"Outbox rows not yet confirmed by the transport; {_SHARED}.",
            value=figures.outbox.count,
        )
        outbox_age = GaugeMetricFamily(
            "dipgw_outbox_oldest_age_seconds",
            f"Seconds the oldest unpublished outbox row has waited (0 when none); {_SHARED}.",
            value=figures.outbox.oldest_age_s,
        )
        dispatches = GaugeMetricFamily(
            "dipgw_dispatch_backlog",
            f"Pushes owed and not yet made (webhook, MESH, e-mail), by channel; {_SHARED}.",
            labels=["channel"],
        )
        dispatch_age = GaugeMetricFamily(
            "dipgw_dispatch_oldest_age_seconds",
            f"Seconds the oldest owed push has waited (0 when none), by channel; {_SHARED}.",
            labels=["channel"],
        )
        empty = Backlog(0, 0.0)
        for channel in sorted({*PUSH_CHANNELS, *figures.dispatches}):
            backlog = figures.dispatches.get(channel, empty)
            dispatches.add_metric([channel], backlog.count)
            dispatch_age.add_metric([channel], backlog.oldest_age_s)
        found = [
            outbox, outbox_age, dispatches, dispatch_age,
            GaugeMetricFamily(
                "dipgw_audit_log_entries",
                f"Entries in the audit log (sequenced, signed or not yet); {_SHARED}.",
                value=figures.audit_entries,
            ),
        ]
        if figures.checkpoint_size is not None and figures.checkpoint_age_s is not None:
            found.append(GaugeMetricFamily(
                "dipgw_checkpoint_size",
                f"Audit entries covered by the newest signed checkpoint; {_SHARED}.",
                value=figures.checkpoint_size,
            ))
            found.append(GaugeMetricFamily(
                "dipgw_checkpoint_age_seconds",
                f"Seconds since the newest signed checkpoint was signed; {_SHARED}.",
                value=figures.checkpoint_age_s,
            ))
        return found


@dataclass(frozen=True, slots=True)
class Metrics:
    """The instruments of one app, all in its own ``registry``."""

    registry: CollectorRegistry
    accepted: Counter
    refused: Counter
    deliveries: Counter
    dead_letters: Counter
    expired: Counter
    commit_seconds: Histogram
    commit_batch_size: Histogram
    delivery_lag: Histogram
    intake_paused: Gauge
    leader: Gauge
    witness_requests: Counter
    store: StoreCollector
    # Each label set's child, looked up once: ``labels()`` takes a lock and builds a key
    # on every call, which on every message cost more than the increment itself.
    _children: dict[tuple[object, ...], Counter] = field(default_factory=dict)
    _lag_children: dict[str, Histogram] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        metrics = cls(
            registry=registry,
            accepted=Counter(
                "dipgw_messages_accepted", "Messages accepted for at least one recipient, "
                "by message type (an identical resubmission is not counted again).",
                ["type"], registry=registry,
            ),
            refused=Counter(
                "dipgw_messages_refused", "Submissions refused, by message type ('other' "
                "when the document names none the gateway knows) and reason: the problem "
                "type slug, refused-by-policy when the policy permitted no recipient.",
                ["type", "reason"], registry=registry,
            ),
            deliveries=Counter(
                "dipgw_deliveries", "Messages delivered to recipients (and e-mail notices "
                "sent), by channel: inbox, amqp, webhook, mesh, email.",
                ["channel"], registry=registry,
            ),
            dead_letters=Counter(
                "dipgw_dead_letters", "Deliveries the transport dead-lettered, closed and "
                "reported to the sender.", registry=registry,
            ),
            expired=Counter(
                "dipgw_messages_expired", "Deliveries closed unacknowledged after the "
                "expiry period and reported to the sender.", registry=registry,
            ),
            commit_seconds=Histogram(
                "dipgw_commit_seconds", "Duration of each database COMMIT (one group "
                "commit, durable on return), seconds.",
                buckets=_COMMIT_BUCKETS, registry=registry,
            ),
            commit_batch_size=Histogram(
                "dipgw_commit_batch_size", "Operations committed together by one group "
                "commit.", buckets=_BATCH_BUCKETS, registry=registry,
            ),
            delivery_lag=Histogram(
                "dipgw_delivery_lag_seconds", "From acceptance to delivery into the "
                "recipient's inbox or own queue, seconds, by channel (inbox, amqp), as this "
                "process delivered them.", ["channel"], buckets=_LAG_BUCKETS,
                registry=registry,
            ),
            intake_paused=Gauge(
                "dipgw_intake_paused", "1 while this process answers new messages 503 "
                "because delivery is behind intake (gateway.services.backpressure), else 0.",
                registry=registry,
            ),
            leader=Gauge(
                "dipgw_leader", "1 while this process leads and runs the role's job, "
                "else 0 (a standby, or a role it is not configured for).",
                ["role"], registry=registry,
            ),
            witness_requests=Counter(
                "dipgw_witness_requests", "Requests to witnesses to cosign a checkpoint "
                "(C2SP tlog-witness), by configured witness name and outcome: cosigned, "
                "refused, unreachable, invalid-response, ahead-of-log (evidence of a split "
                "view).", ["witness", "outcome"], registry=registry,
            ),
            store=StoreCollector(),
        )
        registry.register(metrics.store)
        # Every series of a closed label set exists from the start at 0, so rate() and
        # alerting see the first event rather than a series appearing.
        for message_type in _TYPES:
            metrics.accepted.labels(type=message_type)
            metrics.refused.labels(type=message_type, reason=POLICY_REFUSAL)
        for channel in DELIVERY_CHANNELS:
            metrics.deliveries.labels(channel=channel)
        for role in LEADER_ROLES:
            metrics.leader.labels(role=role).set(0)
        return metrics

    def on_commit(self, seconds: float, batch_size: int) -> None:
        """The database's commit observer (``Database.observe_commits``). It runs on the
        database's own thread; prometheus-client's instruments are thread-safe."""
        self.commit_seconds.observe(seconds)
        self.commit_batch_size.observe(batch_size)

    def count_accepted(self, message_type: str) -> None:
        self._child(self.accepted, message_type).inc()

    def count_refused(self, message_type: str, reason: str) -> None:
        self._child(self.refused, message_type, reason).inc()

    def delivered(self, channel: str, lag_s: float | None = None) -> None:
        self._child(self.deliveries, channel).inc()
        if lag_s is not None:
            lag = self._lag_children.get(channel)
            if lag is None:
                lag = self._lag_children[channel] = self.delivery_lag.labels(channel)
            lag.observe(lag_s)

    def _child(self, counter: Counter, *values: str) -> Counter:
        key = (id(counter), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*values)
        return child

    def holds(self, role: str, held: bool) -> None:
        """Whether this process now runs the role's job (see ``LEADER_ROLES``)."""
        self.leader.labels(role=role).set(1 if held else 0)
