"""The job state machine's table (service/unlearning/states.py)."""

from service.unlearning.states import FINISHED_JOB_STATUSES, JOB_TRANSITIONS, JobStatus, job_can_transition, job_sources


def test_finished_jobs_never_move_again():
    for to, sources in JOB_TRANSITIONS.items():
        assert not sources & FINISHED_JOB_STATUSES, f"{to} may be entered from a finished status"
    assert FINISHED_JOB_STATUSES == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.NOT_FOUND, JobStatus.NEEDS_REVIEW}


def test_every_status_but_the_first_is_entered_from_somewhere():
    assert set(JOB_TRANSITIONS) == set(JobStatus) - {JobStatus.QUEUED}
    assert job_sources(JobStatus.QUEUED) == frozenset()  # a job is created queued; a retry is a new job


def test_the_transitions_the_worker_takes():
    assert job_can_transition("queued", JobStatus.RUNNING)
    assert job_can_transition("running", JobStatus.RUNNING)  # resumed after its worker died
    assert job_can_transition("running", JobStatus.SUCCEEDED)
    assert not job_can_transition("queued", JobStatus.SUCCEEDED)
    assert not job_can_transition("succeeded", JobStatus.RUNNING)
    assert job_can_transition("queued", JobStatus.CANCELLED) and job_can_transition("running", JobStatus.FAILED)
