"""The registry's commands: registering a unit from the command line, re-verifying stored units."""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from adapters_store.models import AdapterVersion

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_register_a_unit_with_its_certificate(store, make_unit, erasure, tmp_path):
    request = erasure("staged")
    certificate = tmp_path / "cert.json"
    certificate.write_text(json.dumps({"passed": True, "metrics": {"leak_upper_bound": 0.03}}))
    output = run("registry_register", str(make_unit("cli-unit")), "--request", request.reference, "--certificate", str(certificate))
    version = AdapterVersion.objects.get(unit_id="cli-unit")
    assert f"unit cli-unit: active (version 1), stored at {version.storage_uri}" in output
    assert version.adapter_sha256 in output and version.request == request
    assert version.certificate_metrics == {"leak_upper_bound": 0.03}


def test_register_without_certificate_leaves_a_candidate(store, make_unit):
    assert "unit bare: candidate" in run("registry_register", str(make_unit("bare")))
    assert AdapterVersion.objects.get(unit_id="bare").request is None


def test_register_refuses_a_tampered_unit(store, make_unit):
    unit = make_unit("bad")
    (unit / "detector" / "scorer.npz").write_bytes(b"something else")
    with pytest.raises(CommandError, match="tampered with.*detector/scorer.npz"):
        run("registry_register", str(unit))
    assert not AdapterVersion.objects.exists()


def test_registry_verify_fails_when_a_stored_unit_changed(store, register):
    good = register("good", passed=True)
    register("bad", passed=True)
    assert "2 unit(s) verified." in run("registry_verify")
    weights = store / "bad" / "adapter" / "adapter_model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(b"replaced")
    with pytest.raises(CommandError, match="1 of 2 unit\\(s\\) failed their integrity check: bad"):
        run("registry_verify")
    assert "ok     good" in run("registry_verify", good.unit_id)
    with pytest.raises(CommandError, match="no such unit: nope"):
        run("registry_verify", "nope")
