"""Register a unit directory written by the engine (e.g. `unlearn` on the command line)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from service.accounts.roles import Actor
from service.common.errors import ApplicationError
from workers.engine.unit_manifest import UnitIntegrityError

CLI = Actor(kind="system", id="cli", label="manage.py registry_register")


class Command(BaseCommand):
    help = "Verify a unit directory's digests, store it and record it in the adapter registry."

    def add_arguments(self, parser):
        parser.add_argument("unit_dir", type=Path, help="The unit directory (manifest.json, adapter/, detector/).")
        parser.add_argument("--request", default=None, help="The erasure request it serves: reference (RTBF-...) or id.")
        parser.add_argument(
            "--certificate",
            type=Path,
            default=None,
            help='JSON file {"passed": true|false, "metrics": {...}}; without it the certificate counts as not passed.',
        )

    def handle(self, *args, unit_dir: Path, request, certificate: Path | None, **options):
        from adapters_store.services import adapter_register

        passed, metrics = False, {}
        if certificate is not None:
            try:
                data = json.loads(certificate.read_text())
                passed, metrics = data["passed"], data.get("metrics", {})
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise CommandError(f"{certificate}: expected a JSON object with 'passed' and 'metrics' ({exc})") from exc
            if not isinstance(passed, bool) or not isinstance(metrics, dict):
                raise CommandError(f"{certificate}: 'passed' must be true or false and 'metrics' an object")
        try:
            version = adapter_register(unit_dir=unit_dir, actor=CLI, request=request, certificate_passed=passed, certificate_metrics=metrics)
        except UnitIntegrityError as exc:
            raise CommandError(f"refused, the unit was tampered with: {exc}") from exc
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"unit {version.unit_id}: {version.status} (version {version.version}), stored at {version.storage_uri}")
        self.stdout.write(f"adapter sha256  {version.adapter_sha256}")
        self.stdout.write(f"detector sha256 {version.detector_sha256 or '(no detector)'}")
        self.stdout.write(f"manifest sha256 {version.manifest_sha256}")
