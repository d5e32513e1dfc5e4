"""Staff pages of a request's dossier (auditors, reviewers, admins): the page, its reveal of the
answers (audited), the score plot, and the signed certificate as JSON or printable HTML.

Thin views: reads through selectors, the signed downloads and reveals through services, which
check the actor's role and audit.
"""

from __future__ import annotations

import base64
import hashlib
import re

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view
from service.requests import services as request_services

from . import plots, selectors, services
from .services import CertificateFormat


def _page(request, actor: Actor, dossier: selectors.Dossier):
    return render(
        request,
        "dossier/dossier.html",
        {
            "dossier": dossier,
            "req": dossier.request,
            "can_reveal": actor.can(Capability.REVEAL_PERSONAL_DATA) and not dossier.revealed,
        },
    )


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def dossier(request, actor: Actor, request_id):
    return _page(request, actor, selectors.dossier_get(actor=actor, request_id=request_id))


@require_POST
@never_cache
@staff_view(Capability.REVEAL_PERSONAL_DATA)
def dossier_reveal(request, actor: Actor, request_id):
    """The dossier with the answers unmasked, answered directly (never stored in the session); the
    reveal is audited like the request page's."""
    erasure = request_services.request_reveal_personal_data(actor=actor, request_id=request_id)
    return _page(request, actor, selectors.dossier_get(actor=actor, request_id=erasure.pk, revealed=True))


@require_GET
@staff_view(Capability.READ_ALL_REQUESTS)
def dossier_scores_png(request, actor: Actor, request_id):
    histogram = selectors.score_histogram_of(actor=actor, request_id=request_id)
    if histogram is None:
        raise Http404("This request's certificate recorded no score histogram.")
    etag = f'"{plots.histogram_key(histogram)}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(plots.score_histogram_png(histogram), content_type="image/png")
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@never_cache
@staff_view(Capability.READ_ALL_REQUESTS)
def certificate_download(request, actor: Actor, request_id, document_format: str):
    issued = services.certificate_issue(actor=actor, request_id=request_id, document_format=CertificateFormat(document_format))
    response = HttpResponse(issued.content, content_type=issued.content_type)
    response["Content-Disposition"] = f'attachment; filename="{issued.filename}"'
    if issued.content_type.startswith("text/html"):
        # The printable certificate is one self-contained (signed) file with its own <style>: the
        # Content-Security-Policy allows exactly that block, by its hash, and nothing else inline.
        response._csp_update = {"style-src": [style_hash(block) for block in re.findall(rb"<style>(.*?)</style>", issued.content, re.S)]}
    return response


def style_hash(block: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
