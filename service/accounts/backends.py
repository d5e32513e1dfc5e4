"""django-axes' backend, for logins that come with a request (the login form, the admin's).

`authenticate()` called without a request (a management command, the test client's `login()`)
has no address to lock out: it skips the lockout check instead of failing, and the model backend
decides as before.
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
