import json

from django.core.management.base import BaseCommand, CommandError

from service.audit.offline_verify import verify_export
from service.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit chain; exit non-zero naming the first broken event. With --export FILE, re-verify a JSON export instead (no database needed)."

    def add_arguments(self, parser):
        parser.add_argument("--export", metavar="FILE", help="A JSON export of the audit log (/audit/export.json) to re-verify offline.")

    def handle(self, **options):
        if options.get("export"):
            return self._verify_export(options["export"])
        status = audit_chain_verify()
        if not status.ok:
            raise CommandError(f"audit chain BROKEN at event #{status.first_broken_seq}: {status.reason} ({status.checked} events verified before it)")
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {status.checked} events verified"))

    def _verify_export(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        check = verify_export(document)
        if not check.ok:
            raise CommandError(check.summary())
        self.stdout.write(self.style.SUCCESS(check.summary()))
