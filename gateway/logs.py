"""structlog configuration, done once by the app factory or the CLI.

Logs carry message ids, types and organisation codes, never a person's details. The
redaction processor is the safety net for a mistake elsewhere: any field that could
hold personal data is masked before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PERSONAL_KEYS = frozenset(
    {
        "subject",
        "given_name",
        "family_name",
        "name",
        "date_of_birth",
        "pnc_id",
        "custody_record_number",
        "address",
        "phone",
        "email",
        "body",
        "document",
        "envelope",
        "payload",
    }
)
REDACTED = "[redacted]"


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k in PERSONAL_KEYS else _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in PERSONAL_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def configure(level: str = "INFO", *, json_output: bool | None = None) -> None:
    """Console output on a terminal, JSON lines otherwise."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
