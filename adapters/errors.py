"""The adapters' errors: each says what is wrong in a sentence and carries an exit code.

``adapters.cli`` prints ``str(error)`` and exits with ``exit_code``; nothing else reaches
the user, and never a traceback.
"""

from __future__ import annotations


class AdapterError(Exception):
    exit_code = 2


class InputError(AdapterError):
    """The input file is missing, unreadable or not the export this adapter reads."""


class ConfigError(AdapterError):
    """No organisation, no usable key, or flags that do not fit together."""


class JournalMismatch(AdapterError):
    """The journal beside the report belongs to another import."""


class GatewayUnreachable(AdapterError):
    """The gateway did not answer; what was recorded stays recorded, run again to resume."""

    exit_code = 3


class ImportStopped(AdapterError):
    """The gateway refused the import as a whole (a bad key, a refused sender)."""

    exit_code = 4
