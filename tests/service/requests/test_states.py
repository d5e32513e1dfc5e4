"""The transition table and the compare-and-set transitions."""

import pytest

from service.accounts.roles import SYSTEM
from service.common.errors import InvalidTransition
from service.requests.models import ErasureRequest
from service.requests.services import _transition, request_submit_web
from service.requests.states import TERMINAL, TRANSITIONS, Status, can_transition


def _submit():
    return request_submit_web(name="Bo Test", email="bo@example.com", regulation="gdpr", facts=["Bo lives in Rome"], evidence_prompts=[], attested=True)


def test_terminal_states_lead_nowhere():
    for target, sources in TRANSITIONS.items():
        assert not (sources & TERMINAL), f"{target} can be entered from a terminal state"


def test_pipeline_edges_exist():
    assert can_transition(Status.SUBMITTED, Status.VERIFIED)
    assert can_transition(Status.STAGED, Status.ACTIVE)
    assert not can_transition(Status.SUBMITTED, Status.ACTIVE)
    assert not can_transition(Status.REJECTED, Status.APPROVED)


@pytest.mark.django_db
def test_illegal_transition_is_refused_and_changes_nothing():
    request = _submit()
    with pytest.raises(InvalidTransition, match="cannot become active"):
        _transition(request, Status.ACTIVE, actor=SYSTEM)
    assert ErasureRequest.objects.get(pk=request.pk).status == Status.SUBMITTED


@pytest.mark.django_db
def test_lost_race_is_refused():
    request = _submit()
    stale = ErasureRequest.objects.get(pk=request.pk)
    _transition(request, Status.EXPIRED, actor=SYSTEM)
    with pytest.raises(InvalidTransition, match="is expired"):
        _transition(stale, Status.VERIFIED, actor=SYSTEM)
