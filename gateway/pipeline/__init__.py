"""The pure rules a message meets, in this order (no I/O; services supply what they read):

1. ``access``: may this caller send this type, from this organisation (handbook 2-3)?
2. ``validation``: is the document one of the JSON Schemas in ``schemas/``?
3. ``routing`` and ``resolution``: to whom, named or worked out from the body and history;
   ``consistency``: does ``to`` agree with what the body names?
4. ``consent``: which recorded consents speak to each share?
5. ``policy``: the decision per recipient (route, consent, legal basis); ``decision``
   combines them into the answer.
6. ``redaction``: what each recipient may see.

Beside them: ``audit`` (the events each step records), ``reports`` and ``consent_notice``
(the gateway's own reports to a sender), ``directory_import`` (reading a directory CSV).
"""
