"""Audit events for what other apps signal instead of calling the audit log: staff logins that
fail, and the lockout django-axes imposes after too many (settings.AXES_*). Connected in apps.py.

Neither the username typed nor the address is stored in clear: whatever was typed into the form
(a password in the wrong field, a stranger's name) goes in as a keyed hash that matches the hash of
the same name or address elsewhere.
"""

from __future__ import annotations

from service.accounts.roles import Actor
from service.common.hashing import pii_hash
from service.common.ratelimits import client_ip

from .services import audit_record

LOGIN_FORM = Actor(kind="anonymous", id="login", label="staff login form")


def _data(request, credentials) -> dict:
    username = (credentials or {}).get("username") or ""
    return {"username": pii_hash(username), "address": pii_hash(client_ip(request)) if request is not None else ""}


def login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    audit_record(action="staff.login_failed", actor=LOGIN_FORM, target_type="login", data=_data(request, credentials))


def locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    audit_record(action="staff.locked_out", actor=LOGIN_FORM, target_type="login", data=_data(request, {"username": username or ""}))
