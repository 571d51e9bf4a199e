"""Moving committed messages from the outbox to recipients' inboxes.

``base`` defines the contract every transport keeps (at-least-once, confirmed publish,
ack only after the inbox commit); ``inprocess`` is the embedded default.
"""
