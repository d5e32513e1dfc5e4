"""The staff playground (/staff/playground/): ask the gated model questions through the running
gateway and see, per question, the answer and which units fired with what weight.

Reviewers and admins may ask (the capability `review`): they judge whether an erasure holds, and
may see personal data anyway. Auditors may not: the playground sends arbitrary prompts to the
production model and its answers may contain personal data, which is not the auditor's read-only
record (they have the dossiers and the audit log). The gateway checks the same capability again.

Thin view: the form validates, client.py calls the gateway over HTTP (GATEWAY_URL); torch is never
imported here.
"""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from service.accounts.roles import Actor, Capability
from service.accounts.staff_access import staff_view

from .client import GatewayError, GatewayUnreachable, gateway_generate, gateway_health, gateway_url
from .protocol import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT

MAX_PLAYGROUND_PROMPTS = 16
START_HINT = "Start it with `python manage.py run_gateway`, or set GATEWAY_URL to where it runs."


class PlaygroundForm(forms.Form):
    prompts = forms.CharField(
        label="Questions",
        error_messages={"required": "Write at least one question."},
        widget=forms.Textarea(attrs={"rows": 5, "aria-describedby": "id_prompts-help"}),
        help_text=f"One question per line, at most {MAX_PLAYGROUND_PROMPTS}. They go through the gate together, as one batch: each gets its own unit weights.",
    )
    max_tokens = forms.IntegerField(
        label="Longest answer (tokens)",
        min_value=1,
        max_value=MAX_TOKENS_LIMIT,
        initial=32,
        widget=forms.NumberInput(attrs={"aria-describedby": "id_max_tokens-help"}),
        help_text=f"1 to {MAX_TOKENS_LIMIT}, and the question and the answer must fit in the model's context; decoding is greedy.",
    )

    def clean_prompts(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["prompts"].splitlines() if line.strip()]
        if not lines:
            raise forms.ValidationError("Write at least one question.")
        if len(lines) > MAX_PLAYGROUND_PROMPTS:
            raise forms.ValidationError(f"At most {MAX_PLAYGROUND_PROMPTS} questions at a time (you wrote {len(lines)}).")
        too_long = [i + 1 for i, line in enumerate(lines) if len(line) > MAX_PROMPT_CHARS]
        if too_long:
            raise forms.ValidationError(f"Line {too_long[0]} is longer than {MAX_PROMPT_CHARS} characters.")
        return lines


@never_cache
@require_http_methods(["GET", "POST"])
@staff_view(Capability.REVIEW)
def playground(request, actor: Actor):
    form = PlaygroundForm(request.POST or None, initial={"max_tokens": 32})
    result, error, status = None, "", 200
    reachable = True
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        else:
            try:
                result = gateway_generate(user=request.user, prompts=form.cleaned_data["prompts"], max_tokens=form.cleaned_data["max_tokens"])
            except GatewayUnreachable as exc:
                error, status, reachable = f"{exc} {START_HINT}", 503, False
            except GatewayError as exc:
                error, status = str(exc), 400 if exc.status < 500 else 502
    health, health_error = None, ""
    if reachable:
        try:
            health = gateway_health()
        except (GatewayUnreachable, GatewayError) as exc:
            health_error = f"{exc} {START_HINT}" if isinstance(exc, GatewayUnreachable) else str(exc)
    context = {
        "form": form,
        "result": result,
        "error": error,
        "health": health,
        "health_error": health_error or ("" if reachable else error),
        "gateway_url": gateway_url(),
    }
    return render(request, "inference/playground.html", context, status=status)
