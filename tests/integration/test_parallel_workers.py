"""Several GPU workers training for one base model at once, with real processes: two Celery workers,
four requests filed and approved through the REST API, every unit trained, certified, registered and
activated. Training runs in parallel; each unit is checked, certified and registered under the base
model's registration lock (service/common/locks.py), where a unit that went live while it trained
is projected out of the new adapter (workers/engine/orthogonalise.py).

The proof is read from what was registered: every active unit is orthogonal to every other active
one, either by the training penalty (it was trained against the other) or exactly (it was projected
out of it), and each unit's manifest says which. The certificate thresholds are opened and there
are no remediation rounds: this test is about orthogonality under concurrency, and needs every unit
live whatever its forgetting scores (tests/service/unlearning/test_pipeline.py holds the default
certificate). The throughput of one worker against two is measured by bench/parallel_workers.py.
"""

from __future__ import annotations

import itertools
import json

import pytest

from adapters_store.models import AdapterVersion
from adapters_store.services import adapter_verify_stored
from service.audit.models import AuditEvent
from service.requests.models import ErasureRequest
from service.unlearning.models import UnlearningJob
from tests.integration.processes import wait_for
from workers.engine.artifacts import load_unit
from workers.engine.orthogonalise import penalty

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

REQUESTS = 4
OPEN_THRESHOLDS = json.dumps({"leak_F": 1.0, "leak": 1.0, "leak_previous": 1.0, "retain": 0.0, "union_fpr": 1.0})


def _file_and_approve(client, key: str, reviewer, name: str, city: str) -> ErasureRequest:
    body = {"subject_name": name, "subject_email": "subject@example.org", "regulation": "gdpr", "facts": [f"{name} lives in {city}"]}
    created = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert created.status_code == 202, created.content
    client.force_login(reviewer)
    approved = client.post(f"/api/v1/requests/{created.json()['id']}/approve", data="{}", content_type="application/json")
    assert approved.status_code == 200, approved.content
    client.logout()
    return ErasureRequest.objects.get(pk=created.json()["id"])


def test_two_workers_train_at_once_and_every_active_unit_is_orthogonal_to_every_other(start_worker, client, api_client_key, staff, tiny_world, tmp_path):
    env = {"FORGET_CERTIFICATE_THRESHOLDS": OPEN_THRESHOLDS, "FORGET_REMEDIATION_ROUNDS": "0"}
    workers = [start_worker("para-a", **env), start_worker("para-b", **env)]
    logs = [worker.log for worker in workers]
    wait_for(lambda: all("ready." in log.read_text(errors="replace") for log in logs), "The workers did not start", seconds=120, logs=logs)

    _, key = api_client_key(("create", "read", "trusted_identity"))
    reviewer = staff("reviewer")
    people = sorted(tiny_world.people, key=lambda person: person.name)[:REQUESTS]  # the rule: the first four by name
    requests = [_file_and_approve(client, key, reviewer, person.name, person.attributes["city"]) for person in people]
    wait_for(
        lambda: UnlearningJob.objects.filter(request__in=requests, finished_at__isnull=False).count() == REQUESTS,
        "The workers did not finish the four jobs",
        seconds=780,
        logs=logs,
        lines=80,
    )

    jobs = list(UnlearningJob.objects.filter(request__in=requests).select_related("request"))
    assert {job.status for job in jobs} == {"succeeded"}, [(job.request.reference, job.status, job.failure_reason) for job in jobs]
    assert len({job.worker.split(":")[0] for job in jobs}) == 2  # both workers trained
    versions = list(AdapterVersion.objects.filter(request__in=requests))
    assert len(versions) == REQUESTS and {version.status for version in versions} == {"active"}

    units = {}
    for version in versions:
        local = adapter_verify_stored(version=version, dest_dir=tmp_path / "check" / version.unit_id).path
        units[version.unit_id] = load_unit(local)
    # Each pair: the unit registered later knows the earlier one. Projected out of it: orthogonal
    # exactly. Trained against it: within the O3 penalty the training left, which its manifest (and
    # its certificate) records against all the units it was trained against.
    order = sorted(versions, key=lambda version: version.pk)
    projected, trained = [], []
    for earlier, later in itertools.combinations(order, 2):
        extra = units[later.unit_id].manifest.extra
        assert earlier.unit_id in extra["previous_units"], (later.unit_id, extra["previous_units"])
        overlap = penalty(units[later.unit_id].adapter, [units[earlier.unit_id].adapter])
        if earlier.unit_id in extra.get("orthogonalised", {}).get("against", []):
            assert overlap < 1e-9, (earlier.unit_id, later.unit_id, overlap)
            projected.append(overlap)
        else:
            assert overlap <= extra["orthogonality_penalty"] + 1e-9, (earlier.unit_id, later.unit_id, overlap, extra["orthogonality_penalty"])
            trained.append(overlap)
    # Two workers started together: at least one unit trained while another went live, and was
    # projected; unaware of each other, the two adapters overlapped far more than trained ones do.
    events = list(AuditEvent.objects.filter(action="unlearning.orthogonalised", target_id__in=[r.reference for r in requests]))
    assert projected and len(events) >= 1
    for event in events:
        assert event.data["penalty_after"] < 1e-9 and event.data["penalty_before"] > max(trained, default=0.0), (event.data, trained)
