"""Access to the staff pages: login first, then a capability, for every app's staff views."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import reverse

from service.common.errors import NotFound, PermissionDenied

from .roles import Capability, actor_for_request


def staff_view(capability: Capability):
    """Login required (302 to the login page), then `capability` (403 without it).

    The wrapped view gets the Actor as its second argument. The services' own refusals come out
    as the same pages: PermissionDenied -> 403, NotFound -> 404.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                # After logging in, a POST cannot be replayed: send the user to a page instead.
                return redirect_to_login(request.get_full_path() if request.method == "GET" else reverse("staff-queue"))
            actor = actor_for_request(request)
            try:
                actor.require(capability)
                return view(request, actor, *args, **kwargs)
            except PermissionDenied as exc:
                raise DjangoPermissionDenied(exc.detail) from exc
            except NotFound as exc:
                raise Http404(exc.detail) from exc

        return wrapper

    return decorate
