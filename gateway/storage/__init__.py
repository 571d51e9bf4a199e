"""Persistence: small repository interfaces (``base``) and their SQLite implementation.

Storage knows nothing of HTTP; it raises only ``gateway.domain.errors`` domain errors.
"""
