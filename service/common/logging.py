"""Logging filters.

Django's `django.request` logger writes a 403 (PermissionDenied) or a 404 (Http404) raised in a view
with the exception's whole traceback: an ordinary refusal or a mistyped address then fills the log
like a crash. `ExpectedErrorsOneLine` keeps those records to their one line (method, path, status);
a 5xx keeps its traceback.
"""

from __future__ import annotations

import logging


class ExpectedErrorsOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in (403, 404, 405):
            record.exc_info = None
            record.exc_text = None
        return True
