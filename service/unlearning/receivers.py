"""The unlearning pipeline's answers to what the requests app announces (service.requests.signals)."""

from __future__ import annotations

from . import services


def on_request_approved(sender, *, request_id, **kwargs) -> None:
    """An approval has committed: approved -> queued, and the job goes to the GPU queue."""
    services.job_enqueue_approved(request_id=request_id)
