"""Output serializers of the pipeline, shared with the request representation (service.requests.api
nests JobProgressSerializer as `progress`). No personal data goes through them."""

from __future__ import annotations

from rest_framework import serializers

from .models import JobPhase, JobStatus


class JobProgressSerializer(serializers.Serializer):
    """The request's latest unlearning job: what the progress bar shows."""

    attempt = serializers.IntegerField(help_text="1 for the first job; each reviewer's retry is the next attempt.")
    status = serializers.ChoiceField(choices=JobStatus.choices)
    phase = serializers.ChoiceField(choices=JobPhase.choices)
    phase_label = serializers.CharField()
    percent = serializers.FloatField(help_text="0 to 100, across every phase (forget set, check, training, evaluation, registration).")
    step = serializers.IntegerField(help_text="Step within the phase (optimiser step while training; stage while evaluating).")
    total = serializers.IntegerField(help_text="Steps of the phase; 0 when it has none.")
    loss = serializers.FloatField(allow_null=True, help_text="Training loss of the last step, when the phase has one.")
    heartbeat_at = serializers.DateTimeField(allow_null=True, help_text="Last sign of life of the worker running the job.")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    restarts = serializers.IntegerField(help_text="Times the job was resumed on another worker after its worker died.")
    failure_reason = serializers.CharField(allow_null=True)
    unit_id = serializers.CharField(allow_null=True, help_text="The unit this attempt produced (its id in the adapter registry).")
    certificate_passed = serializers.BooleanField(allow_null=True)


VERDICTS = [("pass", "pass"), ("inconclusive", "inconclusive"), ("fail", "fail")]


class CertificateRuleSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="e.g. `leak P`, `leak language`, `retain N`, `union FPR`.")
    family = serializers.CharField(allow_null=True, required=False, help_text="The probe family the rule judges, if one.")
    metric = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    lower95 = serializers.FloatField(allow_null=True, required=False, help_text="Clopper-Pearson one-sided 95% lower bound.")
    upper95 = serializers.FloatField(allow_null=True, required=False, help_text="Clopper-Pearson one-sided 95% upper bound.")
    n = serializers.IntegerField(allow_null=True, required=False)
    threshold = serializers.FloatField()
    comparison = serializers.CharField(help_text="`<=` or `>=`.")
    status = serializers.ChoiceField(choices=VERDICTS, help_text="pass: the bound shows the rule holds; fail: it shows it broken; inconclusive: neither.")


class CertificateSummarySerializer(serializers.Serializer):
    """The erasure certificate of the request's newest evaluated attempt, without the answers."""

    attempt = serializers.IntegerField()
    unit_id = serializers.CharField(allow_null=True)
    passed = serializers.BooleanField(help_text="True exactly when the verdict is pass.")
    verdict = serializers.ChoiceField(choices=VERDICTS)
    failing_families = serializers.ListField(child=serializers.CharField(), help_text="Probe families whose leak rule did not pass.")
    rules = CertificateRuleSerializer(many=True)
    thresholds = serializers.DictField(child=serializers.FloatField())
    leak = serializers.DictField(
        help_text="Per positive probe family (F, P, statement, open, language, name_forms, wrapper, chat, D, F<t): "
        "the served system's any-value leak rate with its bounds and counts."
    )
    retain = serializers.DictField(help_text="Per retain set (R, N, W): the gated system's retain ratio and counts.")
    gate_union = serializers.DictField(help_text="AUROC, FPR at 95% TPR and the share of negatives above weight 0.5, over all live units.")
    probes = serializers.DictField(child=serializers.IntegerField(), help_text="Probe counts per set.")
    base = serializers.DictField(help_text="The base model: fingerprint, name, type.")
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
