"""Deadline-first scheduling of the GPU queue (docs/pipeline.md, "Which job trains next"): the order
in which queued jobs are taken, and the forecast that says which of them may not finish in time.

The order: the request's legal deadline, earliest first; on the same deadline, the job queued first
(a retry is queued when the reviewer retries); then the job's id, so that two workers asking at the
same moment agree. Every task message is a ticket for the first job in that order, not only for the
job it was sent for (services.job_claim_next), so the broker's first-come order never decides.

The forecast plays the queue forward: each GPU worker takes the next job in that order when it is
free, each job takes the measured training time (the median of recent jobs; a running job, what is
left of it by its progress). A job whose projected finish, plus the margin a reviewer needs to act
on the unit, falls after its deadline is at risk: reviewers are told once, before it is late.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# QuerySet.order_by of the queued jobs: deadline, then queue time, then id (the documented tie-break).
SCHEDULE_ORDER = ("request__deadline_at", "created_at", "pk")


@dataclass(frozen=True)
class QueuedWork:
    job_id: int
    reference: str
    deadline_at: datetime
    remaining_seconds: float  # the whole estimate for a queued job; what is left of a running one


@dataclass(frozen=True)
class Forecast:
    job_id: int
    reference: str
    position: int  # 0: running now; 1: next to start; ...
    deadline_at: datetime
    projected_start: datetime
    projected_finish: datetime
    at_risk: bool


def median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def forecast(*, running: Iterable[QueuedWork], queued: Iterable[QueuedWork], workers: int, now: datetime, margin: timedelta) -> list[Forecast]:
    """Running jobs first (each on its own worker), then the queued ones in schedule order, each on
    the worker that is free first. `workers` is at least the number of running jobs."""
    running, queued = list(running), list(queued)
    workers = max(workers, 1)
    free_at: list[float] = []  # seconds from now at which each worker is free: a heap
    out: list[Forecast] = []
    for work in running:
        finish = max(work.remaining_seconds, 0.0)
        heapq.heappush(free_at, finish)
        out.append(_row(work, 0, now, 0.0, finish, margin))
    for _ in range(max(workers - len(running), 0)):
        heapq.heappush(free_at, 0.0)
    for position, work in enumerate(queued, start=1):
        start = heapq.heappop(free_at)
        finish = start + max(work.remaining_seconds, 0.0)
        heapq.heappush(free_at, finish)
        out.append(_row(work, position, now, start, finish, margin))
    return out


def _row(work: QueuedWork, position: int, now: datetime, start: float, finish: float, margin: timedelta) -> Forecast:
    projected_finish = now + timedelta(seconds=finish)
    return Forecast(
        job_id=work.job_id,
        reference=work.reference,
        position=position,
        deadline_at=work.deadline_at,
        projected_start=now + timedelta(seconds=start),
        projected_finish=projected_finish,
        at_risk=projected_finish + margin > work.deadline_at,
    )
