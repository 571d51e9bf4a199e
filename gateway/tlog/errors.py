"""Exceptions raised by :mod:`gateway.tlog`; every one derives from :class:`TlogError`."""


class TlogError(Exception):
    """Base class of every error the transparency-log core raises."""


class ProofError(TlogError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 §2.1.3.2, §2.1.4.2)."""


class CanonicalizationError(TlogError):
    """A value cannot be serialised under RFC 8785 (JCS) as the audit log requires."""


class MalformedNote(TlogError):
    """A signed note, signature line or verifier key violates C2SP signed-note v1.0.0."""


class NoteVerificationError(TlogError):
    """A signed note is not validly signed by any of the trusted verifier keys."""


class MalformedCheckpoint(TlogError):
    """A checkpoint body violates C2SP tlog-checkpoint v1.0.0."""


class MalformedTile(TlogError):
    """A tile, entry bundle or tile path violates C2SP tlog-tiles."""


class VerificationError(TlogError):
    """An exported bundle failed offline verification; the message says what and where."""
