"""service.common.reasons: one rule for every decision's reason (requests and the registry)."""

import pytest

from service.common.errors import ApplicationError
from service.common.reasons import MAX_REASON, require_reason


def test_a_reason_is_stripped_and_kept():
    assert require_reason("  duplicate request \n", "reject a request") == "duplicate request"
    assert require_reason("x" * MAX_REASON, "reject a request") == "x" * MAX_REASON


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_blank_reason_is_refused(reason):
    with pytest.raises(ApplicationError) as refused:
        require_reason(reason, "roll back a request")
    assert refused.value.code == "reason_required" and str(refused.value.detail) == "A reason is required to roll back a request."


def test_a_reason_past_the_limit_is_refused():
    with pytest.raises(ApplicationError) as refused:
        require_reason("x" * (MAX_REASON + 1), "revoke a unit")
    assert refused.value.code == "reason_too_long"
