"""Properties of the one authority table (gateway/pipeline/access.py), for every role set,
action and organisation hypothesis tries: deny by default, more roles never mean less authority,
own-organisation scope holds, a system is never an administrator, and a token's role claim
can only narrow what is held."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.errors import AccessDenied, AuthenticationFailed
from gateway.domain.model import Organisation, Principal, Role
from gateway.pipeline import access
from gateway.pipeline.access import AUTHORITY, Action, Scope, allowed
from gateway.services.auth import _narrowed
from gateway.services.directory import DEMO_AUTHORITIES, DEMO_ORGANISATIONS

ORGANISATIONS = (*DEMO_ORGANISATIONS, *DEMO_AUTHORITIES)
CODES = [org.code for org in ORGANISATIONS]
ADMINISTRATION = frozenset(Action) - {
    Action.SEND, Action.RECEIVE, Action.READ_STATUS, Action.DECIDE, Action.HANDLE_CONSENT,
    Action.VIEW_DELIVERY, Action.FOLLOW_AUDIT,
}

principals = st.builds(
    lambda org, roles: Principal(org=org, roles=frozenset(roles), subject="x", token_id="t"),
    st.sampled_from(ORGANISATIONS),
    st.sets(st.sampled_from(list(Role))),
)


@given(principals, st.sampled_from(list(Action)), st.none() | st.sampled_from(CODES))
def test_authorise_refuses_exactly_what_is_not_allowed(
    principal: Principal, action: Action, code: str | None
) -> None:
    if allowed(principal, action, code):
        access.authorise(principal, action, code)
    else:
        with pytest.raises(AccessDenied):
            access.authorise(principal, action, code)


@given(principals, st.sets(st.sampled_from(list(Role))), st.sampled_from(list(Action)),
       st.none() | st.sampled_from(CODES))
def test_holding_more_roles_never_takes_authority_away(
    principal: Principal, more: set[Role], action: Action, code: str | None
) -> None:
    wider = Principal(org=principal.org, roles=principal.roles | more, subject="x",
                      token_id="t")
    if allowed(principal, action, code):
        assert allowed(wider, action, code)


@given(st.sampled_from(ORGANISATIONS), st.sampled_from(list(Action)),
       st.none() | st.sampled_from(CODES))
def test_no_roles_no_authority(org: Organisation, action: Action, code: str | None) -> None:
    nobody = Principal(org=org, roles=frozenset(), subject="x", token_id="t")
    assert not allowed(nobody, action, code)


@given(st.sampled_from(ORGANISATIONS), st.sampled_from(sorted(ADMINISTRATION)),
       st.none() | st.sampled_from(CODES))
def test_a_system_is_never_an_administrator(
    org: Organisation, action: Action, code: str | None
) -> None:
    system = Principal(org=org, roles=frozenset({Role.SYSTEM}), subject="x", token_id="t")
    assert not allowed(system, action, code)


@given(principals, st.sampled_from(list(Action)), st.sampled_from(CODES))
def test_only_any_organisation_roles_reach_another_organisation(
    principal: Principal, action: Action, code: str
) -> None:
    if code != principal.org.code and allowed(principal, action, code):
        reaching = {r for a in AUTHORITY[action] if a.scope is Scope.ANY_ORGANISATION
                    for r in a.roles}
        assert principal.roles & reaching


def test_every_action_has_a_row() -> None:
    assert set(AUTHORITY) == set(Action)


@given(st.sets(st.sampled_from(list(Role))),
       st.none() | st.sampled_from([r.value for r in Role]) | st.text(max_size=12))
def test_a_role_claim_only_narrows(held: set[Role], claimed: str | None) -> None:
    try:
        acting = _narrowed(frozenset(held), claimed, "someone")
    except (AccessDenied, AuthenticationFailed):
        assert claimed is not None
        return
    assert acting <= frozenset(held)
    assert claimed is None or acting == {Role(claimed)}
