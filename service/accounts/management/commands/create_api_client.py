from django.core.management.base import BaseCommand, CommandError

from service.accounts.services import api_client_create
from service.common.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API client and print its secret key once (it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", default="create,read", help="comma-separated: create, read, trusted_identity")
        parser.add_argument("--rate", default="", help="this client's quota, e.g. 600/m or 10000/h (default: FORGET_API_CLIENT_RATE)")

    def handle(self, name, scopes, rate, **options):
        try:
            client, key = api_client_create(name=name, scopes=[s.strip() for s in scopes.split(",") if s.strip()], rate_limit=rate)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"API client {client.name} (scopes: {', '.join(client.scopes)}; quota: {client.rate_limit or 'the default, FORGET_API_CLIENT_RATE'})")
        self.stdout.write("Secret key (shown once; store it now):")
        self.stdout.write(key)
