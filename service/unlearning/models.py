"""The unlearning pipeline's records: the operator's training-corpus index, each request's frozen
forget set, and the jobs (attempts) that turn a forget set into a registered unit.

Writes go through services.py; the GPU worker reports progress and heartbeats onto the job row, so
the request page and the API can show a progress bar without asking the worker anything.
"""

from __future__ import annotations

from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone

from service.common.crypto import EncryptedJSONField

from .states import FINISHED_JOB_STATUSES, JobStatus  # JobStatus is imported from here too (with the models)


class CorpusDocument(models.Model):
    """One document of the operator's training corpus, indexed for the subject-identifier search.

    On PostgreSQL `search` holds the document's tsvector (the 'simple' configuration: names and
    email addresses are not stemmed) behind a GIN index (migration 0002); on SQLite it stays empty
    and the search falls back to a case-insensitive substring match.
    """

    source = models.CharField(max_length=64, help_text="Which corpus it belongs to, e.g. 'demo-world:3f2a9c1b7d4e'.")
    external_id = models.CharField(max_length=128, help_text="The document's id within its source.")
    kind = models.CharField(max_length=32, blank=True, help_text="profile, person_qa, fact_qa, text, ...")
    text = models.TextField()
    search = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source", "id"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="unique_corpus_document_per_source")]

    def __str__(self) -> str:
        return f"{self.source}/{self.external_id}"


class FrozenForgetSet(models.Model):
    """A request's forget set, built once and frozen: what its unit must stop revealing.

    Everything personal is encrypted at rest (`items`, `subjects`, `model_check`) and purged after
    the retention window; `content_hash` (the engine's forget-set hash, also in the unit's manifest
    and the audit log) and the counts stay.
    """

    request = models.OneToOneField("requests.ErasureRequest", on_delete=models.PROTECT, related_name="forget_set")
    items = EncryptedJSONField(null=True, help_text="[{'question', 'answer'?} | {'text'}, each with its 'source'], in training order; None once purged.")
    subjects = EncryptedJSONField(null=True, help_text="The demo-world people the request is about (names); None once purged.")
    model_check = EncryptedJSONField(null=True, help_text="The 'is it in the model?' check: prompts, answers, values found; None once purged.")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the items (workers.engine.unit_manifest.hash_forget_set).")
    sources = models.JSONField(default=dict, help_text="Item counts per source: facts, evidence_prompts, corpus_documents, probe_questions.")
    findings = models.JSONField(default=dict, blank=True, help_text="The model check's outcome, without personal data (counts, in_model).")
    frozen_at = models.DateTimeField(default=timezone.now)
    retain_until = models.DateTimeField(null=True, blank=True, help_text="When the raw items are purged (set once the request is active or closed).")
    purged_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"forget set of {self.request_id}"

    @property
    def item_count(self) -> int:
        return sum(self.sources.values()) if self.sources else 0

    @property
    def purged(self) -> bool:
        return self.purged_at is not None


class JobPhase(models.TextChoices):
    QUEUED = "queued", "Waiting for a GPU worker"
    FORGET_SET = "forget_set", "Building the forget set"
    MODEL_CHECK = "model_check", "Checking that the model reveals the data"
    DETECTOR = "detector", "Training the detector"
    ADAPTER = "adapter", "Training the adapter"
    WRITE = "write", "Writing the unit"
    EVALUATING = "evaluating", "Evaluating (certificate)"
    REMEDIATING = "remediating", "Retraining after a certificate that did not pass"
    REGISTERING = "registering", "Registering the unit"
    DONE = "done", "Done"


class UnlearningJob(models.Model):
    """One attempt at a request's unit. A reviewer's retry is a new attempt (a new row); a worker
    that dies mid-way does not make a new attempt: the redelivered task resumes the same row."""

    request = models.ForeignKey("requests.ErasureRequest", on_delete=models.PROTECT, related_name="unlearning_jobs")
    attempt = models.PositiveSmallIntegerField(help_text="1 for the first job of the request, 2 after a retry, ...")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    celery_task_id = models.CharField(max_length=64, blank=True, help_text="The id of the task message sent for this job.")
    carried_by = models.CharField(
        max_length=64,
        blank=True,
        help_text="The task message running it: under deadline-first scheduling any job's message takes the most urgent queued job (docs/pipeline.md).",
    )
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the task message reached the broker.")
    worker = models.CharField(max_length=255, blank=True, help_text="The worker holding the job: 'node name:pid'.")
    deliveries = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it (more than 1: resumed after a worker died).")

    phase = models.CharField(max_length=16, choices=JobPhase.choices, default=JobPhase.QUEUED)
    percent = models.FloatField(default=0.0)
    step = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_alert_at = models.DateTimeField(null=True, blank=True, help_text="When reviewers were told that it may not finish before the request's deadline.")
    deadline_alert_for = models.DateTimeField(
        null=True, blank=True, help_text="The deadline that alert was about: an extended deadline at risk again is alerted again."
    )

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)

    unit_id = models.CharField(max_length=64, blank=True)
    certificate = models.JSONField(null=True, blank=True, help_text="The certificate without its personal_data part (rules, metrics, units).")
    certificate_personal = EncryptedJSONField(null=True, help_text="The certificate's personal_data (answers to the probes); None once purged.")
    certificate_passed = models.BooleanField(null=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase, and the wait in the queue.")
    options = models.JSONField(
        default=dict, blank=True, help_text="A reviewer's retry options (stronger training, a new seed), validated by services.job_options."
    )
    remediation = models.JSONField(
        default=list, blank=True, help_text="The worker's own remediation rounds: per round its reason (rules, no personal data), changes and verdict."
    )

    class Meta:
        ordering = ["request", "-attempt"]
        constraints = [models.UniqueConstraint(fields=["request", "attempt"], name="unique_attempt_per_request")]
        indexes = [models.Index(fields=["status", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.request_id} attempt {self.attempt}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES

    @property
    def status_label(self) -> str:
        return JobStatus(self.status).label

    @property
    def phase_label(self) -> str:
        return JobPhase(self.phase).label
