from django.core.management.base import BaseCommand, CommandError

from service.audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit chain; exit non-zero naming the first broken event."

    def handle(self, **options):
        status = audit_chain_verify()
        if not status.ok:
            raise CommandError(f"audit chain BROKEN at event #{status.first_broken_seq}: {status.reason} ({status.checked} events verified before it)")
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {status.checked} events verified"))
