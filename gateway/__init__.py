"""dipgw: secure messaging gateway for the UK Drug Interventions Programme.

A message flows one way, and the folders say so (``gateway.layers`` gives the order):
HTTP (``gateway.http``) → authentication (``gateway.services.auth``) → the pure rules of
``gateway.pipeline`` (access, validation, recipients, consent, policy, redaction) → the
submission service (``gateway.services.submission``) storing message, audit entry and
outbox in one transaction (``gateway.storage``) → transport (``gateway.transport``) → the
recipient's inbox (``gateway.services.inbox``) or a delivery channel (``gateway.channels``).
"""

__version__ = "0.1.0"
