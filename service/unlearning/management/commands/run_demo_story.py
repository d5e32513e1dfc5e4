"""python manage.py run_demo_story: the story bin/demo tells, against a running web app and gateway.

Three people of the demo world ask to be forgotten. The story files their erasure requests through
the REST API (as the demo API client, which has `trusted_identity`: they start verified), approves
them through the staff API (logged in as the demo reviewer), follows each request's progress bar
until the inference gateway confirms that it serves the request's unit (`active`), then asks the
gateway about the people in every probe family's shape (the certificate's own prompts: a trained
phrasing, a paraphrase, another language, a misspelt name, a sentence to complete through
/v1/completions, a chat that names them in an earlier turn through /v1/chat/completions...), plus
questions about a control person, and prints the base model's answers beside the gateway's. Last,
where each certificate is: the staff request page and GET /api/v1/requests/{id}/certificate.

The people are drawn by a stated rule, never chosen by their results: a seeded draw of four people
of the world (`story_people`): the first three ask to be forgotten, the fourth is the control.

Everything goes through HTTP, as a product and a reviewer would do it; the database is read only
for the base model's answers, which the worker recorded in each certificate (they are personal
data, and the API never returns them). The story is idempotent: the requests are filed with fixed
Idempotency-Keys, so a second run finds them (already active) instead of filing them again.

It needs the web app (--base-url), a Celery worker on the gpu queue, and the gateway (GATEWAY_URL)
running on the same database; bin/demo starts them all. Exit status 0 when every request became
active and the answers are as promised (no forgotten value comes out of the gateway, the control
person's answers did not change); 1 otherwise.
"""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

# The seed of the draw of the story's people (story_people). Change it and the story tells the same
# thing about other people: nothing in the product depends on who they are.
STORY_SEED = 0
# Probe families shown in the before/after table, one prompt each per person (the certificate's
# own prompts, where the base model revealed something), in this order.
SHOWN_FAMILIES = ("F", "P", "language", "name_forms", "statement", "chat", "open")
# Attributes of the control person's questions, most telling first.
SHOWN_ATTRIBUTES = ("condition", "city", "employer", "phone", "account", "birth_year", "address", "job", "email")
MAX_TOKENS = 48  # more than the gateway's default (32): the whole refusal, or the whole leak
POLL_SECONDS = 1.0
DONE = frozenset({"active"})
STOPPED = frozenset({"failed", "needs_review", "rejected", "cancelled", "expired", "rolled_back", "verified"})


class StoryError(Exception):
    """The story cannot go on; the message says why and what to look at."""


@dataclass
class Filed:
    name: str
    id: str
    reference: str
    status: str
    progress: dict[str, Any] | None = None
    effective_at: str | None = None
    decided_at: str | None = None
    last_line: str = ""
    last_key: str = ""
    last_print: float = 0.0
    certificate: dict[str, Any] | None = None


def story_people(world, seed: int = STORY_SEED) -> tuple[list[str], str]:
    """The rule that picks the story's people: four distinct people drawn with `seed` from the
    world's (trained) people, in draw order; three ask to be forgotten, the fourth is the control."""
    import random

    drawn = random.Random(f"demo-story:{seed}").sample([p.name for p in world.people], 4)
    return drawn[:3], drawn[3]


@dataclass
class Row:
    person: str
    role: str  # "forgotten" or "control"
    kind: str  # the probe family (F, P, language, ...) or, for the control, "trained" / "held-out"
    question: str  # the prompt's text (a chat: its last message)
    gold: str
    before: str = ""
    after: str = ""
    weights: dict[str, float] = field(default_factory=dict)
    shape: str = "question"  # question (/api/v1/generate), raw (/v1/completions) or chat (/v1/chat/completions)
    messages: list[dict[str, str]] | None = None
    values: tuple[str, ...] = ()  # the person's data: any of it in the answer is a leak

    @property
    def ok(self) -> bool:
        from workers.engine.leaks import leaks

        if self.role == "forgotten":
            return not leaks(self.after, [v for v in self.values if not leaks(self.question, [v])])
        # The control person's answer is unchanged (or, if batching shifted a token, still as right as before).
        return self.after == self.before or (leaks(self.before, [self.gold]) and leaks(self.after, [self.gold]))


class Http:
    """A small JSON client (standard library) with a cookie jar for the staff session."""

    def __init__(self, base_url: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def call(self, method: str, path: str, *, body: Any = None, form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.base_url + path
        data, all_headers = None, {"Accept": "application/json", **(headers or {})}
        if body is not None:
            data, all_headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data, all_headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json_or_text(exc.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise StoryError(f"{method} {url}: no answer ({getattr(exc, 'reason', exc)}).") from None

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.cookies if c.name == name), "")


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")[:500]


def _problem(answer: Any) -> str:
    if isinstance(answer, dict):
        return answer.get("detail") or answer.get("title") or json.dumps(answer)[:300]
    return str(answer)[:300]


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _after(item: Filed) -> str:
    """', N s after the approval' when both times are known."""
    from django.utils.dateparse import parse_datetime

    start, end = parse_datetime(item.decided_at or ""), parse_datetime(item.effective_at or "")
    return f", {(end - start).total_seconds():.0f} s after the approval" if start and end else ""


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(BaseCommand):
    help = "The demo's story: file three erasure requests, approve them, wait until they are active, show before/after answers."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the web app (default http://127.0.0.1:8000)")
        parser.add_argument("--gateway-url", default="", help="the inference gateway (default: GATEWAY_URL)")
        parser.add_argument("--key-file", default="", help="the demo API client's key (default: FORGET_VAR_DIR/demo-api-key, written by seed_demo)")
        parser.add_argument("--reviewer", default="reviewer:reviewer-demo", help="USERNAME:PASSWORD of the reviewer who approves (default: the demo reviewer)")
        parser.add_argument("--people", default="", help="three comma-separated names of the model's world (default: drawn by story_people)")
        parser.add_argument("--control", default="", help="a person whose answers must not change (default: drawn by story_people)")
        parser.add_argument("--seed", type=int, default=STORY_SEED, help=f"seed of the draw of the story's people (default {STORY_SEED})")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the requests to become active (default 600)")

    def handle(self, *args, base_url, gateway_url, key_file, reviewer, people, control, timeout, seed, **options):
        started = time.monotonic()
        self.started = started
        self.web = Http(base_url)
        self.gateway = Http(gateway_url or settings.GATEWAY_URL, timeout=max(settings.GATEWAY_TIMEOUT_SECONDS, 60.0))
        key_path = Path(key_file) if key_file else Path(settings.VAR_DIR) / "demo-api-key"
        try:
            self.key = key_path.read_text().strip()
        except OSError as exc:
            raise CommandError(f"No demo API key at {key_path} ({exc.strerror}): run 'manage.py seed_demo' first.") from None
        try:
            ok = self._story(people=people, control=control, reviewer=reviewer, timeout=timeout, seed=seed)
        except StoryError as exc:
            self.stdout.write(self.style.ERROR(f"The story stopped: {exc}"))
            ok = False
        self.stdout.write(f"\nStory {'done' if ok else 'FAILED'} in {_clock(time.monotonic() - started)} (min:s).")
        if not ok:
            raise SystemExit(1)

    # -- the story ---------------------------------------------------------------------------------

    def _say(self, text: str = "") -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _story(self, *, people: str, control: str, reviewer: str, timeout: float, seed: int = STORY_SEED) -> bool:
        world, preset, model_dir = self._world()
        drawn, drawn_control = story_people(world, seed)
        names = [n.strip() for n in people.split(",") if n.strip()] if people else drawn
        control = control or drawn_control
        if len(names) != 3:
            raise StoryError("pass three names to --people (A,B,C).")
        for name in [*names, control]:
            try:
                world.person(name)
            except KeyError:
                raise StoryError(f"{name!r} is not a person of the world of {model_dir}.") from None

        health = self._gateway_health()
        how = "chosen with --people" if people else f"drawn with seed {seed} from the world's {len(world.people)} people"
        self._say(f"==> The story: {', '.join(names)} ({how}) ask the model to forget them")
        self._say(
            f"    model {health.get('model')} (preset {preset}, {len(world.people)} people); "
            f"gateway {self.gateway.base_url} serves {len(health.get('units') or [])} units"
        )

        control_rows = self._control_rows(world, control)
        self._ask(control_rows, into="before")
        self._say(f"\n1. Filing three erasure requests through the REST API as demo-client (POST {reverse('api-requests')})")
        filed = [self._file(world.person(name)) for name in names]
        for item in filed:
            self._say(f"     {item.reference}  {item.name:<20} {item.status}")

        self._say("\n2. Approving them as the reviewer through the staff API (POST .../approve, session login)")
        self._login(reviewer)
        for item in filed:
            if item.status == "verified":
                item.status = self._approve(item)
                self._say(f"     {item.reference}  {item.name:<20} {item.status}")
            else:
                self._say(f"     {item.reference}  {item.name:<20} already {item.status} (filed by an earlier run)")

        self._say("\n3. Training, certifying and registering each unit (one Celery worker, gpu queue), until the gateway serves it")
        self._wait(filed, timeout=timeout)
        failed = [item for item in filed if item.status != "active"]
        for item in filed:
            item.certificate = self._certificate(item)
        if failed:
            for item in failed:
                reason = (item.progress or {}).get("failure_reason") or f"status {item.status}"
                self._say(self.style.ERROR(f"     {item.reference} {item.name}: {reason}"))
            self._print_certificates(filed)
            return False

        self._say("\n4. Before and after, one prompt of each kind per person: the base model's answers, and the gateway's now (greedy decoding)")
        rows = self._forgotten_rows(world, filed) + control_rows
        self._ask(rows, into="after")
        self._print_table(rows, {item.name: item.reference for item in filed})

        self._say("\n5. Where the time went, per request (approval to active, by phase)")
        self._print_phases(filed)

        self._say("\n6. The certificates")
        self._print_certificates(filed)
        bad = [row for row in rows if not row.ok]
        if bad:
            for row in bad:
                what = "still reveals" if row.role == "forgotten" else "changed its answer about"
                self._say(self.style.ERROR(f"     the gateway {what} {row.person}: {row.question!r} -> {row.after!r}"))
            return False
        self._say(
            self.style.SUCCESS(
                f"\n     The gateway refuses {len(filed)} people's data in {sum(r.role == 'forgotten' for r in rows)} prompts above "
                f"(questions, paraphrases, other languages, misspelt names, statements, chats) and still answers about {control}."
            )
        )
        return True

    def _world(self):
        """The world of the model the deployment serves (BASE_MODEL_DIR; bin/demo sets it)."""
        from workers.engine.world import load_world

        if not settings.BASE_MODEL_DIR:
            raise StoryError("BASE_MODEL_DIR is not set: the story reads the demo world beside the model (bin/demo sets it).")
        model_dir = Path(settings.BASE_MODEL_DIR)
        try:
            world = load_world(model_dir / "world.json")
        except OSError:
            raise StoryError(f"{model_dir} has no world.json: the story needs a demo model.") from None
        try:
            preset = json.loads((model_dir / "demo_model.json").read_text())["config"]["preset"]
        except (OSError, ValueError, KeyError):
            preset = ""
        return world, preset, model_dir

    def _gateway_health(self) -> dict[str, Any]:
        status, body = self.gateway.call("GET", "/healthz")
        if status != 200 or not isinstance(body, dict):
            raise StoryError(f"the gateway at {self.gateway.base_url} is not ready ({status}: {_problem(body)}).")
        return body

    # -- requests ----------------------------------------------------------------------------------

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def _file(self, person) -> Filed:
        attrs = person.attributes
        body = {
            "subject_name": person.name,
            "subject_email": attrs.get("email") or f"{person.name.lower().replace(' ', '.')}@example.com",
            "regulation": "gdpr",
            "facts": [f"{person.name} lives in {attrs['city']}.", f"{person.name} works for {attrs['employer']}."],
            "evidence_prompts": [f"Which city does {person.name} live in?"],
        }
        slug = person.name.lower().replace(" ", "-")
        status, answer = self.web.call("POST", reverse("api-requests"), body=body, headers={**self._bearer(), "Idempotency-Key": f"demo-story-{slug}"})
        if status not in (200, 201, 202) or not isinstance(answer, dict):
            raise StoryError(f"filing the request for {person.name} was refused ({status}): {_problem(answer)}")
        return Filed(person.name, answer["id"], answer["reference"], answer["status"], answer.get("progress"), answer.get("effective_at"))

    def _login(self, reviewer: str) -> None:
        username, _, password = reviewer.partition(":")
        login = reverse("login")
        self.web.call("GET", login, headers={"Accept": "text/html"})
        status, _ = self.web.call(
            "POST",
            login,
            form={"username": username, "password": password, "csrfmiddlewaretoken": self.web.cookie("csrftoken"), "next": reverse("staff-queue")},
            headers={"Accept": "text/html", "Referer": self.web.base_url + login},
        )
        if not self.web.cookie("sessionid"):
            raise StoryError(f"could not log in as {username!r} ({status}); run 'manage.py seed_demo' to reset the demo users.")

    def _approve(self, item: Filed) -> str:
        status, answer = self.web.call(
            "POST",
            reverse("api-request-approve", args=[item.id]),
            body={},
            headers={"X-CSRFToken": self.web.cookie("csrftoken"), "Referer": self.web.base_url + "/"},
        )
        if status != 200 or not isinstance(answer, dict):
            raise StoryError(f"approving {item.reference} was refused ({status}): {_problem(answer)}")
        return answer["status"]

    def _poll(self, item: Filed) -> None:
        status, answer = self.web.call("GET", reverse("api-request-detail", args=[item.id]), headers=self._bearer())
        if status != 200 or not isinstance(answer, dict):
            raise StoryError(f"reading {item.reference} failed ({status}): {_problem(answer)}")
        item.status, item.progress, item.effective_at = answer["status"], answer.get("progress"), answer.get("effective_at")
        item.decided_at = answer.get("decided_at")

    def _wait(self, filed: list[Filed], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for item in filed:
                if item.last_key.startswith(f"{item.status}/") and item.status in DONE | STOPPED:
                    continue  # finished, and said so
                self._poll(item)
                self._report(item)
            if all(item.status in DONE or item.status in STOPPED for item in filed):
                return
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{item.reference} {item.status}" for item in filed if item.status not in DONE)
                raise StoryError(f"not active within {timeout:g} s ({waiting}); see var/logs/worker.log and gateway.log")
            time.sleep(POLL_SECONDS)

    def _report(self, item: Filed) -> None:
        """One line per request when its status or phase changes, and at most every 5 s in between."""
        progress = item.progress or {}
        if item.status == "active":
            detail = f"served by the gateway since {item.effective_at} (the effective erasure time{_after(item)})"
        elif item.status == "staged":
            detail = "certified and registered; waiting for the gateway to load it"
        elif item.status in STOPPED:
            detail = progress.get("failure_reason") or ("back to review: not found in the model" if item.status == "verified" else "")
        elif progress and progress.get("status") != "succeeded":
            detail = f"{progress.get('percent', 0):5.1f}%  {progress.get('phase_label') or progress.get('phase')}"
            if progress.get("total"):
                detail += f" {progress.get('step')}/{progress.get('total')}"
            if progress.get("loss") is not None:
                detail += f", loss {progress['loss']:.3f}"
        elif progress:
            detail = "the job is done; the request follows"
        else:
            detail = ""
        line = f"{item.status:<10} {detail}"
        key = f"{item.status}/{progress.get('phase')}"
        now = time.monotonic()
        if line != item.last_line and (key != item.last_key or now - item.last_print >= 5.0):
            self._say(f"  {_clock(now - self.started):>6}  {item.reference}  {item.name:<20} {line}")
            item.last_line, item.last_key, item.last_print = line, key, now

    def _certificate(self, item: Filed) -> dict[str, Any] | None:
        status, answer = self.web.call("GET", reverse("api-request-certificate", args=[item.id]), headers=self._bearer())
        return answer if status == 200 and isinstance(answer, dict) else None

    # -- answers -------------------------------------------------------------------------------------

    def _control_rows(self, world, name: str) -> list[Row]:
        """Three questions about the control person: two attributes in a trained phrasing, the first also held-out."""
        person = world.person(name)
        first, second = [a for a in SHOWN_ATTRIBUTES if a in world.attribute_keys][:2]
        picks = [(first, "trained", "trained"), (first, "held-out", "heldout"), (second, "trained", "trained")]
        return [
            Row(name, "control", kind, qa.question, qa.answer)
            for attribute, kind, split in picks
            for qa in world.questions(person, split, attributes=[attribute])[:1]
        ]

    def _forgotten_rows(self, world, filed: list[Filed]) -> list[Row]:
        """Per person, one prompt of each SHOWN_FAMILIES family on which the base model revealed the
        person's data, with the base model's answer as the worker recorded it in the certificate."""
        from service.requests.models import ErasureRequest
        from service.unlearning.selectors import latest_certificate_job

        rows: list[Row] = []
        for item in filed:
            job = latest_certificate_job(ErasureRequest.objects.get(pk=item.id))
            answers = (job.certificate_personal or {}).get("answers", []) if job else []
            values = tuple(world.person(item.name).attributes.values())
            for family in SHOWN_FAMILIES:
                recorded = next((a for a in answers if a.get("person") == item.name and a.get("set") == family and a.get("base_correct")), None)
                if recorded is not None:
                    rows.append(
                        Row(
                            item.name,
                            "forgotten",
                            family,
                            recorded["question"],
                            recorded.get("gold") or "",
                            before=recorded["base_answer"],
                            shape=recorded.get("shape", "question"),
                            messages=recorded.get("messages"),
                            values=values,
                        )
                    )
        return rows

    def _ask(self, rows: list[Row], *, into: str) -> None:
        """Questions through /api/v1/generate (with the gate decision), statements through
        /v1/completions and chats through /v1/chat/completions, as a product would send them."""
        questions = [row for row in rows if row.shape == "question"]
        if questions:
            answer = self._gateway("/api/v1/generate", {"prompts": [row.question for row in questions], "max_tokens": MAX_TOKENS})
            for row, result in zip(questions, answer["results"], strict=True):
                setattr(row, into, result["text"])
                if into == "after":
                    row.weights = {unit["unit_id"]: unit["weight"] for unit in result["gate"]["units"]}
        model = self._gateway_health().get("model")
        for row in rows:
            if row.shape == "raw":
                answer = self._gateway("/v1/completions", {"model": model, "prompt": row.question, "max_tokens": MAX_TOKENS})
                setattr(row, into, answer["choices"][0]["text"])
            elif row.shape == "chat":
                answer = self._gateway("/v1/chat/completions", {"model": model, "messages": row.messages, "max_tokens": MAX_TOKENS})
                setattr(row, into, answer["choices"][0]["message"]["content"])

    def _print_phases(self, filed: list[Filed]) -> None:
        """The worker's own timings (seconds per phase) from each request's last job."""
        from service.requests.models import ErasureRequest
        from service.unlearning.selectors import latest_certificate_job

        for item in filed:
            job = latest_certificate_job(ErasureRequest.objects.get(pk=item.id))
            timings = dict(job.timings or {}) if job else {}
            parts = ", ".join(
                f"{name.removesuffix('_seconds').replace('_', ' ')} {float(value):.0f} s" for name, value in timings.items() if isinstance(value, (int, float))
            )
            self._say(f"     {item.reference}  {item.name:<20} {parts or 'no timings recorded'}")

    def _gateway(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.gateway.call("POST", path, body=body, headers=self._bearer())
        if status != 200 or not isinstance(answer, dict):
            hint = " (the demo client needs the 'generate' scope: run 'manage.py seed_demo')" if status == 403 else ""
            raise StoryError(f"the gateway refused {path} ({status}): {_problem(answer)}{hint}")
        return answer

    # -- printing ------------------------------------------------------------------------------------

    def _print_table(self, rows: list[Row], references: dict[str, str]) -> None:
        header = f"      {'prompt':<11}{'text':<47}{'before: base model':<25}{'after: gateway':<41}units fired (weight)"
        self._say(header)
        last = None
        for row in rows:
            if row.person != last:
                last = row.person
                about = f"forgotten, {references[row.person]}" if row.role == "forgotten" else "control: nobody asked to forget them"
                self._say(f"    {row.person} ({about})")
            fired = (
                ", ".join(f"{uid} {w:.2f}" for uid, w in sorted(row.weights.items(), key=lambda kv: -kv[1]))
                if row.weights
                else ("none" if row.shape == "question" else "(OpenAI endpoint)")
            )
            mark = "" if row.ok else "   <- not as promised"
            self._say(f"      {row.kind:<11}{_cut(row.question, 46):<47}{_cut(row.before, 24):<25}{_cut(row.after, 40):<41}{fired}{mark}")

    def _print_certificates(self, filed: list[Filed]) -> None:
        for item in filed:
            cert = item.certificate
            if cert is None:
                self._say(f"     {item.reference}  {item.name}: no certificate yet")
                continue
            rules = ", ".join(
                f"{rule['name']} {rule['value']:.2f} (<= {rule['upper95']:.2f})"
                if rule.get("comparison") == "<="
                else f"{rule['name']} {rule['value']:.2f} (>= {rule['lower95']:.2f})"
                for rule in cert.get("rules", [])
                if rule.get("value") is not None and rule.get("upper95") is not None
            )
            verdict = self.style.SUCCESS("PASS") if cert.get("passed") else self.style.ERROR(str(cert.get("verdict") or "fail").upper())
            self._say(f"     {item.reference}  {item.name:<20} {verdict}  ({rules})")
            self._say(f"         page  {self.web.base_url}{reverse('staff-request', args=[item.id])}  (log in as a reviewer or auditor)")
            self._say(f"         dossier  {self.web.base_url}{reverse('staff-dossier', args=[item.id])}  (signed certificate, score plot, timeline)")
            self._say(
                f'         API   curl -H "Authorization: Bearer $(cat {Path(settings.VAR_DIR) / "demo-api-key"})" '
                f"{self.web.base_url}{reverse('api-request-certificate', args=[item.id])}"
            )
