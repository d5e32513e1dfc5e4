"""One unlearning job, worker side: what workers.tasks.unlearning.run_job calls. It runs in the GPU
worker with Django set up; it imports torch and the engine (the task imports this module inside its
body, so the web process, which sends tasks by name, never loads it).

    claim (deadline first) -> forget set (built once, frozen) -> "is it in the model?" ->
    train the unit against the active units -> [registration lock of the base model: project it
    out of units that went live meanwhile] -> certificate -> PASS: register -> staged
                                                          -> not PASS: remediation rounds (retrain
                                                             with a new seed, longer, with more
                                                             prompts in the failing shapes; each
                                                             round audited) -> still not PASS:
                                                             register -> needs_review

The certification probes stay the same frozen set across the rounds (remediation changes the unit,
not the test); the training prompts of every round come from the development phrasings only.

Every write goes through service.unlearning.services, guarded by this worker's claim. Progress goes
to the job row (throttled to FORGET['JOB_PROGRESS_SECONDS']); a heartbeat thread keeps the row
fresh every FORGET['JOB_HEARTBEAT_SECONDS'] even when the engine reports nothing for a while
(evaluation), so a silent row means a dead worker. A redelivered job resumes from scratch in a new
unit directory: training is deterministic (seeded), and the unit id comes from the job
(`<reference>-a<attempt>`), so the registry cannot get two units for one attempt.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection

from adapters_store.models import AdapterVersion
from adapters_store.selectors import active_versions, version_for_unit
from adapters_store.services import adapter_register, adapter_verify_stored
from service.accounts.roles import SYSTEM
from service.common.locks import advisory_lock
from service.unlearning import forget_set_builder, selectors, services
from service.unlearning.models import JobPhase, UnlearningJob
from workers import runtime
from workers.engine import remediation
from workers.engine.certificate import EVALUATION_STAGES, Thresholds, answer_budget, evaluate_units, probe_fits
from workers.engine.config import UnlearnConfig
from workers.engine.detector import DetectorConfig
from workers.engine.families import Fact, classify_attribute
from workers.engine.forget_set import ForgetSet
from workers.engine.generation import context_length, generate_answers
from workers.engine.orthogonalise import orthogonalise_unit
from workers.engine.pipeline import PipelineCallbacks, UnitCancelled, train_unit
from workers.engine.probes import build_probes, facts_suite, probe_config_for
from workers.engine.prompting import format_prompt
from workers.engine.unit_manifest import UnitIntegrityError, verify_unit
from workers.engine.world import load_world

logger = logging.getLogger(__name__)

# The job's progress bar: each phase gets a slice of 0..100.
TRAIN_FROM, TRAIN_TO = 5.0, 70.0
EVAL_FROM, EVAL_TO = 70.0, 97.0
CANCEL_CHECK_SECONDS = 1.0


class PipelineError(Exception):
    """The job cannot go on; the message is the failure reason shown to the reviewer."""


class _Stop(Exception):
    """The request was cancelled (or this worker lost its claim) between two steps."""


def unit_id_for(job: UnlearningJob) -> str:
    """One unit id per attempt: a redelivered job registers the same id, which the registry
    answers idempotently; a reviewer's retry is a new attempt and a new id."""
    return f"{job.request.reference.lower()}-a{job.attempt}"


@lru_cache(maxsize=2)
def _load_world(path: str):

    return load_world(path)


def demo_world(model_dir: Path):
    """The demo world travelling with a demo model (world.json), or None for any other model."""
    path = Path(model_dir) / "world.json"
    return _load_world(str(path)) if path.is_file() else None


# --- the job's pulse -------------------------------------------------------------------------------


class _Heartbeat(threading.Thread):
    """Touches the job row every `interval` seconds until stopped; notes when the claim is gone."""

    def __init__(self, job_id: int, worker: str, interval: float):
        super().__init__(name=f"heartbeat-job-{job_id}", daemon=True)
        self.job_id, self.worker, self.interval = job_id, worker, interval
        self.lost = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.interval):
                try:
                    if not services.job_heartbeat(job_id=self.job_id, worker=self.worker):
                        self.lost = True
                        return
                except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                    logger.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


class _Reporter:
    """Throttled progress writes, cancellation polling, and the claim check."""

    def __init__(self, job: UnlearningJob, worker: str, heartbeat: _Heartbeat):
        self.job, self.worker, self.heartbeat = job, worker, heartbeat
        self.interval = settings.FORGET["JOB_PROGRESS_SECONDS"]
        self._last_write, self._last_phase = 0.0, None
        self._checked, self.cancelled = 0.0, False
        self.lost = False

    def report(self, phase: str, percent: float, step: int = 0, total: int = 0, loss: float | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and phase == self._last_phase and now - self._last_write < self.interval:
            return
        if not services.job_report_progress(job_id=self.job.pk, worker=self.worker, phase=phase, percent=percent, step=step, total=total, loss=loss):
            self.lost = True
        self._last_write, self._last_phase = now, phase

    def should_stop(self) -> bool:
        if self.lost or self.heartbeat.lost:
            self.lost = True
            return True
        now = time.monotonic()
        if now - self._checked >= CANCEL_CHECK_SECONDS:
            self.cancelled = services.job_request_cancelled(job_id=self.job.pk)
            self._checked = now
        return self.cancelled

    def checkpoint(self) -> None:
        """Between phases: stop here if the request was cancelled or the claim is gone."""
        self._checked = 0.0
        if self.should_stop():
            raise _Stop()


# --- the job -----------------------------------------------------------------------------------------


def process_job(job_id: int | None = None, *, node: str | None = None, message_id: str = "") -> dict[str, Any]:
    """Runs one job in this process: the most urgent queued one (services.job_claim_next: deadline
    first), or resumes the one task message `message_id` was carrying when its worker died. `job_id`
    is the job the message was sent for. Raises services.JobBusy when another live worker holds the
    job this message carries (the task retries later); any other problem ends the job `failed` with
    its reason. Returns a small summary for the worker's log."""
    worker = f"{node or socket.gethostname()}:{os.getpid()}"
    claim = services.job_claim_next(worker=worker, message_id=message_id, job_id=job_id)
    if claim is None:
        return {"job": job_id, "outcome": "nothing to do"}
    return _JobRun(claim.job, worker, resumed=claim.resumed).run()


class _JobRun:
    def __init__(self, job: UnlearningJob, worker: str, *, resumed: bool):
        self.job, self.worker, self.resumed = job, worker, resumed
        self.unit_id = unit_id_for(job)
        self.heartbeat = _Heartbeat(job.pk, worker, settings.FORGET["JOB_HEARTBEAT_SECONDS"])
        self.reporter = _Reporter(job, worker, self.heartbeat)
        self.work_dir = Path(settings.UNITS_WORK_DIR)

    def _summary(self, outcome: str, **extra: Any) -> dict[str, Any]:
        return {"job": self.job.pk, "request": self.job.request.reference, "attempt": self.job.attempt, "outcome": outcome, **extra}

    def run(self) -> dict[str, Any]:
        self.heartbeat.start()
        unit_dir = None
        try:
            outcome, unit_dir = self._run()
            return outcome
        except _Stop:
            return self._stopped()
        except services.JobLost:
            logger.warning("job %s: this worker lost its claim; another worker carries on", self.job.pk)
            return self._summary("lost")
        except Exception as exc:  # noqa: BLE001 - every failure is recorded with its reason
            if isinstance(exc, UnitCancelled):
                return self._stopped()
            logger.exception("job %s failed", self.job.pk)
            if isinstance(exc, SoftTimeLimitExceeded):
                reason = f"The job ran past its time limit ({settings.FORGET['JOB_TIME_LIMIT_SECONDS']} s)."
            else:
                reason = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
            try:
                services.job_fail(job_id=self.job.pk, worker=self.worker, reason=reason)
            except services.JobLost:
                return self._summary("lost")
            return self._summary("failed", reason=reason)
        finally:
            self.heartbeat.stop()
            if unit_dir is not None:
                shutil.rmtree(unit_dir, ignore_errors=True)  # the registry holds the stored copy

    def _stopped(self) -> dict[str, Any]:
        if self.reporter.lost:
            logger.warning("job %s: this worker lost its claim; another worker carries on", self.job.pk)
            return self._summary("lost")
        services.job_cancel(job_id=self.job.pk, worker=self.worker)
        return self._summary("cancelled")

    def _timed(self, name: str, started: float) -> None:
        services.job_add_timings(job_id=self.job.pk, worker=self.worker, **{f"{name}_seconds": time.perf_counter() - started})

    def _run(self) -> tuple[dict[str, Any], Path | None]:
        job, report = self.job, self.reporter.report
        report(JobPhase.FORGET_SET, 0.0, force=True)
        started = time.perf_counter()
        base_dir = runtime.base_model_dir()
        world = demo_world(base_dir)
        forget_set = services.forget_set_freeze(request_id=job.request_id, world=world)
        if forget_set.items is None:
            raise PipelineError("The forget set was purged after its retention window; there is nothing left to train on.")
        self._timed("forget_set", started)
        report(JobPhase.FORGET_SET, 2.0, force=True)
        self.reporter.checkpoint()

        base = runtime.get_base()
        if self._needs_model_check(forget_set):
            started = time.perf_counter()
            report(JobPhase.MODEL_CHECK, 3.0, force=True)
            findings = self._model_check(base, forget_set)
            self._timed("model_check", started)
            if not findings["in_model"]:
                services.job_not_found(job_id=job.pk, worker=self.worker, findings=findings)
                return self._summary("not found in the model", **findings), None
        self.reporter.checkpoint()

        # A resumed job whose previous worker died after registering its unit only finishes it.
        version, unit_dir = version_for_unit(self.unit_id), None
        if version is None:
            version, unit_dir = self._train_certify_register(base, world, forget_set)

        job.refresh_from_db(fields=["certificate"])
        if version.certificate_passed:
            services.job_succeed(job_id=job.pk, worker=self.worker, unit_id=version.unit_id)
            return self._summary("staged", unit_id=version.unit_id, version_status=version.status), unit_dir
        services.job_needs_review(
            job_id=job.pk, worker=self.worker, unit_id=version.unit_id, reason=_certificate_failure(job.certificate or version.certificate_metrics)
        )
        return self._summary("needs review", unit_id=version.unit_id), unit_dir

    def _train_certify_register(self, base, world, forget_set) -> tuple[AdapterVersion, Path]:
        """The request enters training; its unit is trained against the live units, certified (with
        remediation rounds) and registered, passing or not.

        Several GPU workers may train for one base model at once. Training and the certificate run
        in parallel: before its certificate the unit is checked against the units live then (one
        that went live while it trained is projected out of its adapter: engine/orthogonalise.py,
        exact orthogonality, no second training run) and certified with every one of them. The
        registration (which activates a passing unit) holds the base model's registration lock
        (service/common/locks.py) and happens only if the live units are still those the unit was
        certified with; if one went live or left meanwhile, the check and the certificate are done
        again under the lock. What is registered is what was certified, together with what was live
        when it went live."""
        job = self.job
        if not services.job_begin_training(job=job, resumed=self.resumed):
            raise _Stop() if services.job_request_cancelled(job_id=job.pk) else PipelineError("The request left the pipeline while the job was starting.")
        unlearn, detector = self._configs()
        rounds = settings.FORGET["REMEDIATION_ROUNDS"]
        previous = self._previous_units(base)
        probes, probes_for = None, None
        unit_dir = None
        for round_ in range(rounds + 1):
            if unit_dir is not None:
                shutil.rmtree(unit_dir, ignore_errors=True)
                services.job_begin_training(job=job, resumed=False)
            started = time.perf_counter()
            unit_dir = self._train(base, forget_set, previous, unlearn, detector, round_)
            self._timed(f"train{'' if round_ == 0 else f'_round{round_}'}", started)
            self.reporter.checkpoint()
            # The certificate runs outside the lock, with the units live now; under the lock the
            # unit is registered if the live units are still those it was certified with, and is
            # checked and certified again (the rare case) if one went live or left meanwhile.
            suffix = "" if round_ == 0 else f"_round{round_}"

            def check_and_certify(timing: str):
                """Projects the unit out of newcomers, then certifies it with every live unit."""
                nonlocal unit_dir, previous, probes, probes_for
                live = self._previous_units(base)
                unit_dir = self._orthogonalised(unit_dir, trained_against=previous, live=live)
                previous = live
                if probes_for != _ids(previous):  # the same test across rounds unless the live units changed
                    probes, probes_for = self._probes(base, world, forget_set, previous), _ids(previous)
                return self._certify(base, previous, unit_dir, probes, timing)

            certificate = check_and_certify(f"evaluate{suffix}")
            if certificate["verdict"] == "pass" or round_ == rounds:
                started = time.perf_counter()
                with advisory_lock(f"unit-registration:{base.fingerprint}"):
                    self._timed(f"lock_wait{suffix}", started)
                    if [version.unit_id for version in self._live_versions(base)] != probes_for:
                        logger.info("job %s: the live units changed while it was certified; certified again", job.pk)
                        certificate = check_and_certify(f"recertify{suffix}")
                    if certificate["verdict"] == "pass" or round_ == rounds:
                        return self._register(unit_dir, certificate), unit_dir
            unlearn, detector, changes = remediation.remediated(unlearn, detector, certificate, round_ + 1)
            services.job_remediation(
                job_id=job.pk,
                worker=self.worker,
                entry={
                    "round": round_ + 1,
                    "verdict": certificate["verdict"],
                    "reason": remediation.reason(certificate),
                    "failing_families": certificate.get("failing_families", []),
                    "changes": changes,
                },
            )
            self.reporter.checkpoint()
        raise AssertionError("unreachable: the last round registers")  # pragma: no cover

    def _orthogonalised(self, unit_dir: Path, *, trained_against, live) -> Path:
        """The unit, projected out of the units that went live while it trained (none: as it is)."""
        known = {version.unit_id for version, _ in trained_against}
        newcomers = [(version, path) for version, path in live if version.unit_id not in known]
        if not newcomers:
            return unit_dir
        started = time.perf_counter()
        out_dir = unit_dir.with_name(f"{unit_dir.name}-o")
        shutil.rmtree(out_dir, ignore_errors=True)  # left by a worker that died here
        orthogonalise_unit(unit_dir, [path for _, path in newcomers], out_dir, also_previous=[path for _, path in trained_against])
        shutil.rmtree(unit_dir, ignore_errors=True)
        manifest = verify_unit(out_dir)
        ids = [version.unit_id for version, _ in newcomers]
        logger.info("job %s: units %s went live while it trained; its adapter is projected out of theirs", self.job.pk, ids)
        services.job_orthogonalised(
            job_id=self.job.pk,
            worker=self.worker,
            newcomers=ids,
            penalty_before=manifest.extra["orthogonalised"]["penalty_before"],
            penalty_after=manifest.extra["orthogonalised"]["penalty_after"],
        )
        self._timed("orthogonalise", started)
        return out_dir

    def _register(self, unit_dir: Path, certificate: dict[str, Any]) -> AdapterVersion:
        job = self.job
        services.job_record_certificate(job_id=job.pk, worker=self.worker, certificate=certificate, unit_id=self.unit_id)
        started = time.perf_counter()
        self.reporter.report(JobPhase.REGISTERING, EVAL_TO, force=True)
        public = {key: value for key, value in certificate.items() if key != "personal_data"}
        version = adapter_register(
            unit_dir=unit_dir, actor=SYSTEM, request=job.request, certificate_passed=bool(certificate["passed"]), certificate_metrics=public
        )
        self._timed("register", started)
        return version

    def _configs(self):
        """The deployment's UnlearnConfig and DetectorConfig, with a reviewer's retry options."""

        unlearn = UnlearnConfig(**settings.FORGET["UNLEARN_CONFIG"])
        options = dict(self.job.options or {})
        changes = {key: options[key] for key in ("epochs", "rank", "seed") if key in options}
        if options.get("more_prompts_for"):
            changes["synthesis"] = {**unlearn.synthesis, **{f: 4 * max(1, unlearn.synthesis.get(f, 0)) for f in options["more_prompts_for"]}}
        unlearn = UnlearnConfig.from_dict({**unlearn.to_dict(), **changes})
        detector = DetectorConfig(**({"seed": options["seed"]} if "seed" in options else {}))
        return unlearn, detector

    # -- phases --------------------------------------------------------------------------------

    def _needs_model_check(self, forget_set) -> bool:
        """Once per request. After a 'not found' a reviewer who approves again overrides the finding."""
        if forget_set.findings:
            return False
        return not selectors.request_was_not_found(request_id=self.job.request_id)

    def _model_check(self, base, forget_set) -> dict[str, Any]:
        """Asks the base model the evidence prompts and the probes; records what it revealed."""

        subjects = forget_set.subjects or {}
        prompts = forget_set_builder.check_prompts(forget_set.items, subjects.get("values", []))
        budget = answer_budget(base.tokenizer, subjects.get("values", []))
        limit = context_length(base.model)
        if limit:  # a prompt the model cannot even read cannot reveal anything
            prompts = [p for p in prompts if len(base.tokenizer(format_prompt(p.prompt))["input_ids"]) + budget <= limit]
        answers = generate_answers(base.model, base.tokenizer, [p.prompt for p in prompts], max_new_tokens=budget, batch_size=16) if prompts else []
        facts = [item["text"] for item in forget_set.items if item["source"] == "fact"]
        findings, details = forget_set_builder.read_model_check(
            prompts, answers, facts=facts, name=subjects.get("name", ""), corpus_documents=forget_set.sources.get("corpus_documents", 0)
        )
        services.forget_set_record_check(forget_set_id=forget_set.pk, findings=findings, details=details)
        return findings

    def _live_versions(self, base) -> list[AdapterVersion]:
        """The units live now for this base model, other requests' (this request's own earlier
        unit is replaced by the new one)."""
        live = []
        for version in active_versions():
            if version.request_id == self.job.request_id:
                continue
            if version.base_fingerprint and version.base_fingerprint != base.fingerprint:
                logger.warning("active unit %s was trained for another base model; not used", version.unit_id)
                continue
            live.append(version)
        return live

    def _previous_units(self, base) -> list[tuple[Any, Path]]:
        """The units live now (other requests'), verified and cached locally: the new adapter is
        trained orthogonal to them and certified together with them."""

        cache = self.work_dir / "active"
        cache.mkdir(parents=True, exist_ok=True)
        previous = []
        for version in self._live_versions(base):
            local = cache / f"{version.unit_id}-{version.manifest_sha256[:16]}"
            if local.is_dir():
                try:
                    verify_unit(local, expected_manifest_digest=version.manifest_sha256)
                    previous.append((version, local))
                    continue
                except UnitIntegrityError:
                    shutil.rmtree(local, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version.unit_id}-", dir=cache))
            staging.rmdir()  # adapter_verify_stored creates it
            adapter_verify_stored(version=version, dest_dir=staging)
            try:
                os.rename(staging, local)
            except OSError:  # another worker on this host cached it first
                shutil.rmtree(staging, ignore_errors=True)
            previous.append((version, local))
        return previous

    def _engine_set(self, forget_set):
        """The engine's ForgetSet of the frozen items, with the subjects (the request's name, or
        the demo people it is about) and the values found: the gate recognises the person by them."""

        subjects = forget_set.subjects or {}
        names = list(subjects.get("people") or []) or ([subjects["name"]] if subjects.get("name") else [])
        records = forget_set_builder.engine_records(forget_set.items)
        engine_set = ForgetSet.from_records(records, subjects=names, source=f"forget set of {self.job.request.reference}")
        engine_set = ForgetSet(engine_set.items, engine_set.subjects, engine_set.identifiers, engine_set.source, values=tuple(subjects.get("values") or ()))
        if engine_set.hash != forget_set.content_hash:
            raise PipelineError("The frozen forget set does not match its recorded hash.")
        return engine_set

    def _train(self, base, forget_set, previous, unlearn_config, detector_config, round_: int = 0) -> Path:

        jobs_dir = self.work_dir / "jobs"
        jobs_dir.mkdir(parents=True, exist_ok=True)
        for stale in jobs_dir.glob(f"{self.unit_id}-d*"):  # left by a worker that died
            shutil.rmtree(stale, ignore_errors=True)
        out_dir = jobs_dir / f"{self.unit_id}-d{self.job.deliveries}" if round_ == 0 else jobs_dir / f"{self.unit_id}-d{self.job.deliveries}-r{round_}"
        engine_set = self._engine_set(forget_set)

        def on_progress(event) -> None:
            percent = TRAIN_FROM + (TRAIN_TO - TRAIN_FROM) * event.percent / 100.0
            phase = JobPhase.WRITE if event.phase == "done" else event.phase
            self.reporter.report(phase, percent, event.step, event.total, event.loss, force=phase == JobPhase.WRITE)

        return train_unit(
            base,
            engine_set,
            out_dir=out_dir,
            previous_units=[path for _, path in previous],
            unlearn_config=unlearn_config,
            detector_config=detector_config,
            encoder=runtime.get_encoder(str(base.device)),
            callbacks=PipelineCallbacks(on_progress=on_progress, should_stop=self.reporter.should_stop),
            unit_id=self.unit_id,
            manifest_extra={"request_reference": self.job.request.reference, "attempt": self.job.attempt, "remediation_round": round_},
            record_subjects=False,  # names stay in the encrypted forget set, not in the registry's manifest
        )

    def _certify(self, base, previous, unit_dir: Path, probes, timing: str) -> dict[str, Any]:
        services.job_begin_evaluation(job=self.job)
        started = time.perf_counter()
        certificate = self._evaluate(base, previous, unit_dir, probes)
        self._timed(timing, started)
        return certificate

    def _evaluate(self, base, previous, unit_dir: Path, probes) -> dict[str, Any]:

        def on_stage(name: str) -> None:
            index = EVALUATION_STAGES.index(name) if name in EVALUATION_STAGES else 0
            self.reporter.report(
                JobPhase.EVALUATING, EVAL_FROM + (EVAL_TO - EVAL_FROM) * index / len(EVALUATION_STAGES), index + 1, len(EVALUATION_STAGES), force=True
            )
            if self.reporter.should_stop():
                raise _Stop()

        certificate = evaluate_units(
            base,
            [*(path for _, path in previous), unit_dir],
            probes,
            thresholds=Thresholds.from_dict(settings.FORGET["CERTIFICATE_THRESHOLDS"]),
            encoder=runtime.get_encoder(str(base.device)),
            request_id=self.job.request.reference,
            on_stage=on_stage,
        )
        return certificate.to_json()

    def _probes(self, base, world, forget_set, previous):
        """The certification probe families (EVAL.md), generated from the forget facts. Demo model:
        from the world, for the request's people and the earlier units' people (while their forget
        sets are not purged). Any other model: from the forget set's questions with answers, with
        other people's questions from the corpus index as negatives (none there: the certificate
        cannot pass, it is INCONCLUSIVE)."""

        fits = probe_fits(base)
        config = probe_config_for(base.path, **settings.FORGET["PROBE_CONFIG"])
        people = (forget_set.subjects or {}).get("people", [])
        if world is not None and people:
            earlier = []
            for version, _ in previous:
                names = selectors.forget_set_people(request_id=version.request_id) if version.request_id else None
                if names:
                    earlier.append((version.unit_id, names))
            return build_probes(world, people, earlier=earlier, config=config, unit_id=self.unit_id, fits=fits)
        engine_set = self._engine_set(forget_set)
        facts = engine_set.facts()
        for check in forget_set.model_check or []:  # evidence prompts the base model answered with the data
            if check.get("revealed") and engine_set.subjects:
                facts.append(Fact(engine_set.subjects[0], classify_attribute(check["prompt"]), check["revealed"], check["prompt"]))
        if not facts:
            raise PipelineError(
                "No forget fact with a known answer: the certificate cannot be computed. "
                "Add evidence prompts that reveal the data, or load the training corpus."
            )
        parts = {part.lower() for name in engine_set.subjects for part in name.split() if len(part) > 2}
        others, neighbours = [], []
        for question, answer, name in selectors.corpus_negatives():
            if name in engine_set.subjects:
                continue
            fact = Fact(name, classify_attribute(question), answer, question)
            shared = {part.lower() for part in name.split()} & parts
            (neighbours.append(("surname" if name.split()[-1].lower() in shared else "given_name", fact)) if shared else others.append(fact))
        return facts_suite(facts, others=others, neighbours=neighbours, config=config, unit_id=self.unit_id, fits=fits)


def _ids(units: list[tuple[Any, Path]]) -> list[str]:
    """The unit ids of (version, local copy) pairs, in order."""
    return [version.unit_id for version, _ in units]


def _certificate_failure(certificate: dict[str, Any]) -> str:
    """The reviewer's one-line reason: the verdict and every rule that did not pass, with its bounds."""

    verdict = str(certificate.get("verdict") or "fail").upper()
    return f"The certificate is {verdict} after the automatic remediation: {remediation.reason(certificate)}."
