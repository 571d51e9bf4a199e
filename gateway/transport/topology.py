"""The RabbitMQ topology, as pure data: names, routing keys, queue arguments, definitions.

One durable topic exchange carries messages, routed by ``<ORG-CODE>.<message_type>`` to
one durable quorum queue per organisation, bound only for the types that organisation
may receive. Each queue dead-letters (at-least-once) to a per-organisation dead-letter
queue after ``x-delivery-limit`` failed deliveries. The same topology is declared by the
gateway at start-up and exported as ``deploy/rabbitmq/definitions.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.domain.model import MessageType, Organisation, OrgKind
from gateway.pipeline.access import SENDING_RULES

DEFAULT_PREFIX = "dipgw"
DEFAULT_DELIVERY_LIMIT = 5
GATEWAY_USER = "dipgw-gateway"


def receivable_types(kind: OrgKind) -> list[MessageType]:
    return [t for t, rules in SENDING_RULES.items() if any(kind in r for r in rules.values())]


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = DEFAULT_PREFIX
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def exchange(self) -> str:
        return f"{self.prefix}.messages"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dead-letter"

    def queue(self, org_code: str) -> str:
        return f"{self.prefix}.org.{org_code}"

    def dead_letter_queue(self, org_code: str) -> str:
        return f"{self.prefix}.org.{org_code}.dead-letter"

    @staticmethod
    def routing_key(org_code: str, message_type: str) -> str:
        return f"{org_code}.{message_type}"

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            # At-least-once dead-lettering needs reject-publish overflow (RabbitMQ 3.10+).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    @staticmethod
    def dead_letter_queue_arguments() -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def bindings(self, org: Organisation) -> list[str]:
        """Routing keys bound to the organisation's queue: only what its kind receives."""
        return [self.routing_key(org.code, t.value) for t in receivable_types(org.kind)]

    @staticmethod
    def user(org_code: str) -> str:
        return f"dipgw-{org_code.lower()}"

    def definitions(
        self, organisations: Iterable[Organisation], vhost: str = "/"
    ) -> dict[str, Any]:
        """An importable RabbitMQ definitions document (``rabbitmqctl import_definitions``).

        Users carry no password: the operator sets one per user (``rabbitmqctl
        change_password``), so no secret is ever in the repository. Each organisation's
        user may only read (consume) its own queues; only the gateway publishes.
        """
        orgs = sorted(organisations, key=lambda o: o.code)
        own = "^" + re.escape(self.prefix) + r"\."
        users = [{"name": GATEWAY_USER, "password_hash": "", "tags": []}]
        permissions = [
            {"user": GATEWAY_USER, "vhost": vhost, "configure": own, "write": own, "read": own}
        ]
        queues: list[dict[str, Any]] = []
        bindings: list[dict[str, Any]] = []
        for org in orgs:
            users.append({"name": self.user(org.code), "password_hash": "", "tags": []})
            readable = (
                "^" + re.escape(self.queue(org.code)) + r"(\.dead-letter)?$"
            )
            permissions.append(
                {"user": self.user(org.code), "vhost": vhost,
                 "configure": "^$", "write": "^$", "read": readable}
            )
            queues.append(self._queue_doc(self.queue(org.code), vhost, self.queue_arguments()))
            queues.append(
                self._queue_doc(
                    self.dead_letter_queue(org.code), vhost, self.dead_letter_queue_arguments()
                )
            )
            bindings += [
                self._binding_doc(self.exchange, self.queue(org.code), key, vhost)
                for key in self.bindings(org)
            ]
            bindings.append(
                self._binding_doc(
                    self.dead_letter_exchange, self.dead_letter_queue(org.code),
                    f"{org.code}.#", vhost,
                )
            )
        return {
            "rabbit_version": "3.10.0",
            "vhosts": [{"name": vhost}],
            "users": users,
            "permissions": permissions,
            "exchanges": [
                self._exchange_doc(self.exchange, vhost),
                self._exchange_doc(self.dead_letter_exchange, vhost),
            ],
            "queues": queues,
            "bindings": bindings,
        }

    @staticmethod
    def _exchange_doc(name: str, vhost: str) -> dict[str, Any]:
        return {"name": name, "vhost": vhost, "type": "topic", "durable": True,
                "auto_delete": False, "internal": False, "arguments": {}}

    @staticmethod
    def _queue_doc(name: str, vhost: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False,
                "arguments": arguments}

    @staticmethod
    def _binding_doc(source: str, queue: str, key: str, vhost: str) -> dict[str, Any]:
        return {"source": source, "vhost": vhost, "destination": queue,
                "destination_type": "queue", "routing_key": key, "arguments": {}}
