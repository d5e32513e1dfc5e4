"""Demo accounts: one staff user per role and an API client, for the embedded demo only.

Idempotent. Re-running keeps the users (their password and role are set back to the demo values)
and keeps the API client and its key: the key is saved under FORGET_VAR_DIR at the first seeding
(readable by the owner only) and printed again from there. Only --rotate-key issues a new key.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from service.accounts.models import ApiClient
from service.accounts.roles import Role, Scope
from service.accounts.services import api_client_create, api_client_for_key, api_client_rotate_key, staff_user_ensure

# Published on purpose: these accounts exist to be logged into by anyone trying the demo.
DEMO_USERS = [(Role.REVIEWER, "reviewer", "reviewer-demo"), (Role.AUDITOR, "auditor", "auditor-demo"), (Role.ADMIN, "admin", "admin-demo")]
DEMO_CLIENT = "demo-client"
# `generate` too: bin/demo's story asks the inference gateway with this client's key.
DEMO_SCOPES = [Scope.CREATE.value, Scope.READ.value, Scope.TRUSTED_IDENTITY.value, Scope.GENERATE.value]


def demo_key_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-api-key"


def _save_key(key: str) -> None:
    path = demo_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


def _saved_key(client: ApiClient) -> str | None:
    """The key saved at the first seeding, if it still opens this client."""
    try:
        key = demo_key_path().read_text().strip()
    except OSError:
        return None
    found = api_client_for_key(key)
    return key if found is not None and found.pk == client.pk else None


class Command(BaseCommand):
    help = "Create the demo users (one per role) and a demo API client, and print their credentials. Demo only."

    def add_arguments(self, parser):
        parser.add_argument("--rotate-key", action="store_true", help="issue a new key for the demo API client (the old one stops working)")
        parser.add_argument("--force", action="store_true", help="seed a database other than the embedded SQLite one (never a production database)")

    def handle(self, *args, rotate_key: bool, force: bool, **options):
        if connection.vendor != "sqlite" and not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts whose passwords are published; it seeds the embedded SQLite database only. "
                "Pass --force to seed this database anyway (never a production one)."
            )
        self.stdout.write("Demo users (demo only: these passwords are public; never use them on a real deployment):")
        for role, username, password in DEMO_USERS:
            staff_user_ensure(username=username, password=password, role=role, email=f"{username}@demo.forget.example")
            self.stdout.write(f"  {role.value:<9} username {username:<9} password {password}")

        client = ApiClient.objects.filter(name=DEMO_CLIENT).first()
        if client is None:
            client, key = api_client_create(name=DEMO_CLIENT, scopes=DEMO_SCOPES)
            _save_key(key)
            origin = "new"
        elif not rotate_key and (key := _saved_key(client)):
            origin = "unchanged since the first seeding"
        else:
            key = api_client_rotate_key(client=client)
            _save_key(key)
            origin = "new key; the previous one no longer works" if rotate_key else "new key: the saved one was missing or stale"
        if sorted(client.scopes) != sorted(DEMO_SCOPES):  # seeded by an older version: back to the demo scopes
            ApiClient.objects.filter(pk=client.pk).update(scopes=sorted(DEMO_SCOPES))
            client.refresh_from_db()
        self.stdout.write(f"Demo API client {client.name} (scopes: {', '.join(client.scopes)}), key {origin}:")
        self.stdout.write(f"  {key}")
        self.stdout.write(f"  (saved in {demo_key_path()}; use it as 'Authorization: Bearer <key>')")
