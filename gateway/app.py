"""The app factory: builds the gateway from its settings, with no global state.

Resources open and close in one ``cleanup_ctx`` each, so tests build a full app with
real parts on a temporary directory and everything is closed in reverse order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway import keyfiles, keys
from gateway.channels.choice import notice_rule
from gateway.channels.email import EmailNotifier
from gateway.channels.mesh import MeshMailbox
from gateway.channels.mesh_channel import MeshSender, follow_mesh_acknowledgements
from gateway.channels.notices import EmailNoticeSender
from gateway.channels.outcome import ChannelSender
from gateway.channels.webhook import WebhookSender
from gateway.config import Settings
from gateway.console import setup_console
from gateway.domain.model import IdentityProvider
from gateway.http import openapi
from gateway.http.context import authentication_middleware, request_context_middleware
from gateway.http.limits import AddressLimits, OrganisationLimits
from gateway.http.problems import problems_middleware
from gateway.http.routes import audit as audit_routes
from gateway.http.routes import consents as consent_routes
from gateway.http.routes import directory, health, inbox, messages, people
from gateway.http.routes import metrics as metrics_routes
from gateway.http.routes import policy as policy_routes
from gateway.http.services import SERVICES, Services
from gateway.metrics import LEADER_ROLES, Metrics
from gateway.periodic import Periodic
from gateway.pipeline.audit import Pseudonymiser
from gateway.pipeline.validation import SchemaSet
from gateway.services.administration import Administration
from gateway.services.alerts import escalate_alerts
from gateway.services.auth import TokenRules, TokenVerifier
from gateway.services.backpressure import BacklogBounds, DeliveryPressure
from gateway.services.checkpoints import AuditKeys, Checkpointer, pseudonym_key
from gateway.services.consents import ConsentService
from gateway.services.directory import Directory
from gateway.services.dispatch import Dispatcher
from gateway.services.handover import QueueHandover
from gateway.services.inbox import InboxNotifier, InboxWriter
from gateway.services.leadership import leadership_for
from gateway.services.policy import PolicyService
from gateway.services.relay import OutboxRelay
from gateway.services.submission import SubmissionService
from gateway.services.undelivered import DeadLetterRecorder, expire_unacknowledged
from gateway.services.wakeups import WakeUpListener
from gateway.services.witnessing import Witnessing, read_witnesses
from gateway.storage.audit_log import AuditLogStore
from gateway.storage.consents import ConsentStore
from gateway.storage.directory import DirectoryStore
from gateway.storage.engine import open_database
from gateway.storage.messages import MessageStore
from gateway.storage.policy_versions import PolicyVersionStore
from gateway.storage.sessions import SessionStore
from gateway.storage.tokens import TokenStore
from gateway.transport.base import Transport, TransportState
from gateway.transport.inprocess import InProcessTransport
from gateway.transport.rabbitmq import RabbitMqTransport
from gateway.transport.topology import Topology

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _topology(settings: Settings) -> Topology:
    return Topology(prefix=settings.amqp_prefix, delivery_limit=settings.delivery_limit)


def _transport_for(settings: Settings, directory: Directory) -> Transport:
    if settings.amqp_url is None:
        return InProcessTransport()
    return RabbitMqTransport(
        settings.amqp_url, _topology(settings), directory.agencies,
        prefetch=settings.amqp_prefetch,
    )


def _senders(
    settings: Settings,
    session: aiohttp.ClientSession,
    delivery_key: dict[str, Any],
    mesh: MeshMailbox | None,
) -> dict[str, ChannelSender]:
    senders: dict[str, ChannelSender] = {"webhook": WebhookSender(session, delivery_key)}
    if settings.smtp is not None:
        senders["email"] = EmailNoticeSender(EmailNotifier(settings.smtp), settings.base_url)
    if mesh is not None:
        senders["mesh"] = MeshSender(mesh)
    return senders


def create_app(
    settings: Settings,
    *,
    schema_dir: Path = SCHEMA_DIR,
    transport: Transport | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> web.Application:
    # Compiled once here: a broken schema stops start-up instead of failing requests.
    schemas = SchemaSet.load(schema_dir)
    # This app's own registry: nothing is counted in prometheus-client's global one.
    metrics = Metrics.create()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_context_middleware,
            problems_middleware,
            AddressLimits(settings),
            authentication_middleware,
            OrganisationLimits(settings),
        ],
    )
    for module in (
        messages, inbox, directory, people, health, consent_routes, policy_routes,
        audit_routes, openapi, metrics_routes,
    ):
        app.add_routes(module.routes)
    # The web console: its pages, assets and session middleware (innermost).
    setup_console(app)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        # Keys first, before anything opens: production never makes one (every process
        # must hold the installation's copy), so a missing file stops start-up here.
        make_keys = not settings.is_production
        audit_keys = AuditKeys(settings.audit_keys_dir, settings.audit_origin, create=make_keys)
        pseudonyms = Pseudonymiser(pseudonym_key(settings.audit_keys_dir, create=make_keys))
        delivery_key = keyfiles.delivery_key(settings.delivery_key_file, create=make_keys)
        db = open_database(settings.database_url, settings.sqlite_path)
        db.observe_commits(metrics.on_commit)
        await db.open()
        directory_ = Directory(DirectoryStore(db))
        chosen_transport = transport or _transport_for(settings, directory_)
        relay: OutboxRelay | None = None
        wake_ups: WakeUpListener | None = None
        dispatcher: Dispatcher | None = None
        clocks: list[Periodic] = []
        push_session = aiohttp.ClientSession()
        mesh = MeshMailbox(settings.mesh) if settings.mesh is not None else None
        audit_log = AuditLogStore(db, pseudonyms)
        # Checkpoint signing, expiry, escalation and MESH polling run only in the leader
        # (gateway.services.leadership); dipgw_leader says, role by role, while it leads.
        led_roles = [role for role in LEADER_ROLES
                     if role != "mesh-acknowledgements" or mesh is not None]

        def leading(leads: bool) -> None:
            for role in led_roles:
                metrics.holds(role, leads)

        leadership = leadership_for(
            settings.database_url, leading, retry_s=settings.leader_retry_s)
        witnessing = Witnessing(
            read_witnesses(settings.witnesses_file), audit_log, leadership,
            metrics.witness_requests, timeout_s=settings.witness_timeout_s,
            interval_s=settings.checkpoint_interval_s, clock=clock,
        )
        checkpointer = Checkpointer(
            audit_log, audit_keys, leadership, interval_s=settings.checkpoint_interval_s,
            clock=clock, on_signed=witnessing.checkpoint_signed,
        )
        consents = ConsentStore(db)
        policy = PolicyService(
            PolicyVersionStore(db), consents, directory_, audit_log, leadership, clock=clock
        )
        try:
            await directory_.refresh()
            if settings.seed_demo_directory:
                await directory_.seed_demo(
                    settings.dev_keys_dir, clock(), audit_log,
                    IdentityProvider(settings.demo_oidc_issuer, settings.demo_oidc_client_id)
                    if settings.demo_oidc_issuer else None,
                )
            await leadership.start()
            witnessing.start()
            await checkpointer.start()
            await policy.start()
            message_store = MessageStore(db)
            notifier = InboxNotifier()
            senders = _senders(settings, push_session, delivery_key, mesh)
            notice_to = notice_rule(directory_.get, enabled="email" in senders)
            dispatcher = Dispatcher(
                message_store, audit_log, senders, directory_, notifier, metrics,
                notice_to=notice_to, retry_base_s=settings.push_retry_base_s,
                retry_cap_s=settings.push_retry_cap_s, clock=clock,
            )
            pressure = DeliveryPressure(
                message_store,
                BacklogBounds(settings.delivery_backlog_limit, settings.delivery_lag_limit_s),
                clock=clock,
                on_change=lambda paused: metrics.intake_paused.set(int(paused)),
                transport_up=lambda: chosen_transport.state is TransportState.READY,
            )
            writer = InboxWriter(
                message_store, audit_log, notifier, directory_, metrics,
                on_dispatch_owed=dispatcher.wake, on_lag=pressure.delivered,
                notice_to=notice_to, clock=clock,
            )
            relay = OutboxRelay(
                message_store, chosen_transport, idle_wait_s=settings.relay_interval_s,
                clock=clock,
                on_confirmed=QueueHandover(
                    writer, chosen_transport.consumes, _topology(settings).queue
                ) if isinstance(chosen_transport, RabbitMqTransport) else None,
            )
            app[SERVICES] = Services(
                settings=settings,
                schemas=schemas,
                directory=directory_,
                administration=Administration(directory_, audit_log, clock),
                verifier=TokenVerifier(
                    directory_,
                    TokenStore(db),
                    TokenRules(
                        audience=settings.audience,
                        max_lifetime_s=settings.max_token_lifetime_s,
                        clock_skew_s=settings.clock_skew_s,
                    ),
                    clock=clock,
                ),
                submissions=SubmissionService(
                    schemas, directory_, policy, message_store, audit_log, relay.hand,
                    metrics, clock, admission=pressure.admit,
                    into_inbox=writer if chosen_transport.delivers_at_acceptance else None,
                ),
                policy=policy,
                consents=consents,
                consent_withdrawals=ConsentService(
                    consents, policy, directory_, audit_log, clock
                ),
                messages=message_store,
                notifier=notifier,
                transport=chosen_transport,
                relay=relay,
                audit=audit_log,
                checkpointer=checkpointer,
                witnessing=witnessing,
                audit_keys=audit_keys,
                clock=clock,
                delivery_key_public=keys.public_jwk(delivery_key),
                sessions=SessionStore(db),
                metrics=metrics,
            )
            await chosen_transport.start(
                writer, DeadLetterRecorder(message_store, audit_log, notifier, metrics, clock)
            )
            # New organisations get their queues, and changed delivery channels their
            # consumers, whichever process changed the directory.
            directory_.follow(chosen_transport.follow_directory)
            relay.start()
            dispatcher.start()
            if db.dialect == "postgresql" and settings.database_url is not None:
                # What other processes on the database deliver, change or queue wakes
                # this one's streams, directory and relay too (gateway.services.wakeups).
                wake_ups = WakeUpListener(
                    settings.database_url, inbox=notifier.notify,
                    directory=directory_.refresh, outbox=relay.wake,
                    everything=notifier.wake_all,
                )
                wake_ups.start()
            # Unacknowledged messages expire (MESH-style); unacknowledged alerts escalate.
            clocks = [
                Periodic(
                    "expiry",
                    leadership.guard(lambda: expire_unacknowledged(
                        message_store, audit_log, notifier, metrics,
                        timedelta(seconds=settings.expiry_s), clock(),
                    )),
                    settings.expiry_check_s,
                ),
                Periodic(
                    "alert-escalation",
                    leadership.guard(lambda: escalate_alerts(
                        message_store, audit_log, notifier,
                        timedelta(seconds=settings.alert_escalation_s), clock(),
                        notice_to=notice_to, on_notice_owed=dispatcher.wake,
                    )),
                    settings.expiry_check_s,
                ),
                # Another gateway process on the same database may grant, revoke or
                # withdraw a key: this one follows within the interval, not at its next
                # own write. Every process runs it, leader or not.
                Periodic("directory-refresh", directory_.refresh, settings.directory_refresh_s),
                # Every process reads the backlog for its own intake (no leader needed).
                Periodic("delivery-backlog", pressure.read, settings.backlog_check_s),
            ]
            if mesh is not None:
                clocks.append(Periodic(
                    "mesh-acknowledgements",
                    leadership.guard(lambda: follow_mesh_acknowledgements(
                        message_store, audit_log, mesh, clock)),
                    settings.mesh_ack_check_s,
                ))
            for periodic in clocks:
                periodic.start()
            yield
        finally:
            await checkpointer.stop()
            await witnessing.stop()
            await policy.stop()
            for periodic in clocks:
                await periodic.stop()
            # After the singleton jobs: ending the lock's session hands them over.
            await leadership.stop()
            if relay is not None:
                await relay.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            await push_session.close()
            if mesh is not None:
                await mesh.close()
            await chosen_transport.close()
            if wake_ups is not None:
                await wake_ups.stop()
            await db.close()

    async def end_streams(app: web.Application) -> None:
        app[SERVICES].notifier.close()

    app.cleanup_ctx.append(services_ctx)
    app.on_shutdown.append(end_streams)
    return app
