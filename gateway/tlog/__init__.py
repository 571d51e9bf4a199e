"""Transparency-log core: RFC 6962/9162 Merkle trees, C2SP signed notes, checkpoints and tiles.

Modules (all pure except :mod:`gateway.tlog.bundle` and :mod:`gateway.tlog.verify`,
which read and write a bundle directory):

* :mod:`~gateway.tlog.merkle` — hashes, compact ranges, inclusion and consistency proofs.
* :mod:`~gateway.tlog.canonical` — RFC 8785 JSON canonicalisation of audit entries.
* :mod:`~gateway.tlog.note` — C2SP signed-note v1.0.0 with Ed25519.
* :mod:`~gateway.tlog.checkpoint` — C2SP tlog-checkpoint v1.0.0 note bodies.
* :mod:`~gateway.tlog.cosignature` — C2SP tlog-cosignature v1 (Ed25519 witness cosignatures).
* :mod:`~gateway.tlog.witness` — the C2SP tlog-witness add-checkpoint decision.
* :mod:`~gateway.tlog.tiles` — C2SP tlog-tiles paths, tiles and entry bundles.
* :mod:`~gateway.tlog.bundle` — the exporter writing an offline-verifiable bundle.
* :mod:`~gateway.tlog.verify` — the offline verifier of such a bundle.
"""
