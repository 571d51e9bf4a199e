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

from gateway import keys
from gateway.administration import Administration
from gateway.alerts import escalate_alerts
from gateway.audit import Pseudonymiser
from gateway.auth import TokenRules, TokenVerifier
from gateway.channels.amqp import QueueHandover
from gateway.channels.choice import notice_rule
from gateway.channels.dispatcher import Dispatcher
from gateway.channels.email import EmailNotifier
from gateway.channels.mesh import MeshMailbox
from gateway.channels.mesh_channel import MeshSender, follow_mesh_acknowledgements
from gateway.channels.notices import EmailNoticeSender
from gateway.channels.outcome import ChannelSender
from gateway.channels.webhook import WebhookSender
from gateway.checkpoints import AuditKeys, Checkpointer, pseudonym_key
from gateway.config import Settings
from gateway.consent_service import ConsentService
from gateway.console import setup_console
from gateway.directory import Directory
from gateway.errors import ConfigurationError
from gateway.http import openapi
from gateway.http.context import authentication_middleware, request_context_middleware
from gateway.http.limits import AddressLimits, OrganisationLimits
from gateway.http.problems import problems_middleware
from gateway.http.routes import audit as audit_routes
from gateway.http.routes import consents as consent_routes
from gateway.http.routes import directory, health, inbox, messages, people
from gateway.http.routes import policy as policy_routes
from gateway.http.services import SERVICES, Services
from gateway.inbox import InboxNotifier, InboxWriter
from gateway.periodic import Periodic
from gateway.policy.service import PolicyService
from gateway.relay import OutboxRelay
from gateway.storage.sqlite import (
    SqliteAuditLog,
    SqliteConsents,
    SqliteDatabase,
    SqliteDirectory,
    SqliteMessages,
    SqlitePolicyVersions,
    SqliteSessions,
    SqliteTokenLedger,
)
from gateway.submission import SubmissionService
from gateway.transport.base import Transport
from gateway.transport.inprocess import InProcessTransport
from gateway.transport.rabbitmq import RabbitMqTransport
from gateway.transport.topology import Topology
from gateway.undelivered import DeadLetterRecorder, expire_unacknowledged
from gateway.validation import SchemaSet

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


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


def _delivery_key(path: Path) -> dict[str, Any]:
    """The gateway's webhook signing key, made on first start and kept 0600."""
    if not path.exists():
        keys.write_private(path, keys.generate("EdDSA"))
    return keys.read_private(path)


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
    if settings.database_url is not None:
        raise ConfigurationError(
            "DIPGW_DATABASE_URL is set but the PostgreSQL store is not built yet; unset it "
            "to use the embedded SQLite store."
        )
    # Compiled once here: a broken schema stops start-up instead of failing requests.
    schemas = SchemaSet.load(schema_dir)
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
        audit_routes, openapi,
    ):
        app.add_routes(module.routes)
    # The web console: its pages, assets and session middleware (innermost).
    setup_console(app)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        db = SqliteDatabase(settings.sqlite_path)
        await db.open()
        directory_ = Directory(SqliteDirectory(db))
        chosen_transport = transport or _transport_for(settings, directory_)
        relay: OutboxRelay | None = None
        dispatcher: Dispatcher | None = None
        clocks: list[Periodic] = []
        push_session = aiohttp.ClientSession()
        mesh = MeshMailbox(settings.mesh) if settings.mesh is not None else None
        audit_keys = AuditKeys(settings.audit_keys_dir, settings.audit_origin)
        audit_log = SqliteAuditLog(db, Pseudonymiser(pseudonym_key(settings.audit_keys_dir)))
        checkpointer = Checkpointer(
            audit_log, audit_keys, interval_s=settings.checkpoint_interval_s, clock=clock
        )
        consents = SqliteConsents(db)
        policy = PolicyService(
            SqlitePolicyVersions(db), consents, directory_, audit_log, clock=clock
        )
        try:
            await directory_.refresh()
            if settings.seed_demo_directory:
                await directory_.seed_demo(settings.dev_keys_dir, clock(), audit_log)
            await checkpointer.start()
            await policy.start()
            message_store = SqliteMessages(db)
            notifier = InboxNotifier()
            delivery_key = _delivery_key(settings.delivery_key_file)
            senders = _senders(settings, push_session, delivery_key, mesh)
            notice_to = notice_rule(directory_.get, enabled="email" in senders)
            dispatcher = Dispatcher(
                message_store, audit_log, senders, directory_, notifier,
                notice_to=notice_to, retry_base_s=settings.push_retry_base_s,
                retry_cap_s=settings.push_retry_cap_s, clock=clock,
            )
            writer = InboxWriter(
                message_store, audit_log, notifier, directory_,
                on_dispatch_owed=dispatcher.wake, notice_to=notice_to,
                clock=clock,
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
                    SqliteTokenLedger(db),
                    TokenRules(
                        audience=settings.audience,
                        max_lifetime_s=settings.max_token_lifetime_s,
                        clock_skew_s=settings.clock_skew_s,
                    ),
                    clock=clock,
                ),
                submissions=SubmissionService(
                    schemas, directory_, policy, message_store, audit_log, relay.wake, clock
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
                audit_keys=audit_keys,
                clock=clock,
                delivery_key_public=keys.public_jwk(delivery_key),
                sessions=SqliteSessions(db),
            )
            await chosen_transport.start(
                writer, DeadLetterRecorder(message_store, audit_log, notifier, clock)
            )
            relay.start()
            dispatcher.start()
            # Unacknowledged messages expire (MESH-style); unacknowledged alerts escalate.
            clocks = [
                Periodic(
                    "expiry",
                    lambda: expire_unacknowledged(
                        message_store, audit_log, notifier,
                        timedelta(seconds=settings.expiry_s), clock(),
                    ),
                    settings.expiry_check_s,
                ),
                Periodic(
                    "alert-escalation",
                    lambda: escalate_alerts(
                        message_store, audit_log, notifier,
                        timedelta(seconds=settings.alert_escalation_s), clock(),
                        notice_to=notice_to, on_notice_owed=dispatcher.wake,
                    ),
                    settings.expiry_check_s,
                ),
                # Another gateway process on the same database may grant, revoke or
                # withdraw a key: this one follows within the interval, not at its next
                # own write.
                Periodic("directory-refresh", directory_.refresh, settings.directory_refresh_s),
            ]
            if mesh is not None:
                clocks.append(Periodic(
                    "mesh-acknowledgements",
                    lambda: follow_mesh_acknowledgements(message_store, audit_log, mesh, clock),
                    settings.mesh_ack_check_s,
                ))
            for periodic in clocks:
                periodic.start()
            yield
        finally:
            await checkpointer.stop()
            await policy.stop()
            for periodic in clocks:
                await periodic.stop()
            if relay is not None:
                await relay.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            await push_session.close()
            if mesh is not None:
                await mesh.close()
            await chosen_transport.close()
            await db.close()

    async def end_streams(app: web.Application) -> None:
        app[SERVICES].notifier.close()

    app.cleanup_ctx.append(services_ctx)
    app.on_shutdown.append(end_streams)
    return app
