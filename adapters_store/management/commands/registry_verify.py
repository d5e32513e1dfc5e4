"""Re-hash stored units against the digests the registry recorded (exit status 1 on any mismatch)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from service.accounts.roles import Actor
from workers.engine.unit_manifest import UnitIntegrityError

CLI = Actor(kind="system", id="cli", label="manage.py registry_verify")


class Command(BaseCommand):
    help = "Fetch stored units and check every file against the registry's digests (default: the active units)."

    def add_arguments(self, parser):
        parser.add_argument("unit_ids", nargs="*", help="Units to check (default: every active unit).")
        parser.add_argument("--all", action="store_true", help="Check every registered unit, whatever its status.")

    def handle(self, *args, unit_ids: list[str], all: bool, **options):
        from adapters_store.models import AdapterVersion
        from adapters_store.selectors import active_versions
        from adapters_store.services import adapter_verify_stored

        if unit_ids:
            versions = list(AdapterVersion.objects.filter(unit_id__in=unit_ids).order_by("unit_id"))
            unknown = sorted(set(unit_ids) - {v.unit_id for v in versions})
            if unknown:
                raise CommandError(f"no such unit: {', '.join(unknown)}")
        else:
            versions = list(AdapterVersion.objects.order_by("unit_id") if all else active_versions())
        failed = []
        for version in versions:
            try:
                adapter_verify_stored(version=version, actor=CLI)
            except UnitIntegrityError as exc:
                failed.append(version.unit_id)
                self.stdout.write(f"FAILED {version.unit_id}: {exc}")
            else:
                self.stdout.write(f"ok     {version.unit_id}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(versions)} unit(s) failed their integrity check: {', '.join(failed)}")
        self.stdout.write(f"{len(versions)} unit(s) verified.")
