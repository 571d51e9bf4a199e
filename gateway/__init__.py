"""dipgw: secure messaging gateway for the UK Drug Interventions Programme.

A message flows one way: HTTP (``gateway.http``) → authentication (``gateway.auth``)
→ validation (``gateway.validation``) → access and routing (``gateway.access``,
``gateway.routing``) → decision (``gateway.decision``) → storage with audit seam and
outbox in one transaction (``gateway.storage``) → transport (``gateway.transport``)
→ recipient inbox.
"""

__version__ = "0.1.0"
