"""The console's menu: one entry per area, shown only to people whose grants open it.

Each entry asks ``gateway.pipeline.access`` the question its pages ask, so a link is never shown for
a page that would answer 403 (and a page never relies on its link being hidden)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain.errors import AccessDenied
from gateway.domain.model import Principal
from gateway.pipeline import access


@dataclass(frozen=True, slots=True)
class Entry:
    label: str
    href: str
    opens_for: Callable[[Principal], bool]


def _own(action: access.Action) -> Callable[[Principal], bool]:
    return lambda principal: access.allowed(principal, action, principal.org.code)


def _any(action: access.Action) -> Callable[[Principal], bool]:
    return lambda principal: access.allowed(principal, action, None)


def may_handle_consent(principal: Principal) -> bool:
    """Whether the consent pages are this person's: the API's own check, not a copy."""
    try:
        access.check_consent_handler(principal)
    except AccessDenied:
        return False
    return True


MENU: tuple[Entry, ...] = (
    Entry("Inbox", "/console/inbox", _own(access.Action.RECEIVE)),
    Entry("Send a message", "/console/compose", _own(access.Action.SEND)),
    Entry("Sent", "/console/sent", _own(access.Action.READ_STATUS)),
    Entry("Consent", "/console/consents", may_handle_consent),
    Entry("Sharing policy", "/console/policy", _any(access.Action.WORK_ON_POLICY)),
    Entry("People", "/console/people", _own(access.Action.VIEW_PEOPLE)),
    Entry("Directory", "/console/directory", _any(access.Action.IMPORT_DIRECTORY)),
    Entry("Audit", "/console/audit", _any(access.Action.READ_AUDIT)),
)


def menu_for(principal: Principal, path: str) -> list[dict[str, object]]:
    """The entries this person may open, the one ``path`` lies under marked current."""
    return [
        {"label": entry.label, "href": entry.href,
         "current": path == entry.href or path.startswith(entry.href + "/")}
        for entry in MENU if entry.opens_for(principal)
    ]
