"""Edge adapters: small programs an agency runs beside its own system.

Each turns an export of that system (custody records, a court result list, prison
reception and release lists) into gateway messages and sends them through
``gateway.client.GatewayClient``. Mapping is pure (a row in, an envelope or the row's
problems out); files, the journal, the report and the network are handled at the edges
(``adapters.cli``, ``adapters.bulk``). Every import is resumable: see ``adapters.journal``.
"""
