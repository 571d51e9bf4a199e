"""Use cases. Each one is a unit of work: it reads what the pure rules in
``gateway.pipeline`` need, applies them, and writes the outcome with its audit entry in
one storage transaction. ``submission`` takes a message in; ``relay`` and ``handover`` move
it through the transport; ``inbox`` delivers it; ``dispatch`` pushes it to a webhook, MESH
or e-mail; ``undelivered`` and ``alerts`` close or escalate what is not acknowledged;
``consents``, ``policy``, ``directory``, ``administration``, ``checkpoints`` and
``disclosures`` serve the people and auditors.
"""
