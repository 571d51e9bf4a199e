"""``dipgw witness``: a small C2SP tlog-witness server, run apart from the gateway.

A witness cosigns a log's checkpoint only when it is consistent with the last one it
cosigned for that log, so an operator cannot show an auditor one history and an agency
another (a split view) without some witness refusing. The decision is pure
(``gateway.tlog.witness``); this package holds what is not: the key and configuration
files (``files``), the one-row-per-log state with compare-and-swap (``state``) and the
HTTP front end (``server``).
"""
