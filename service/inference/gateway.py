"""The gateway object the HTTP views talk to: the engine, the registry watcher and what they report.

Torch-free (the engine is only referenced): `run_gateway` builds one Gateway and install()s it; the
tests install one around a tiny model. The views call current(), which answers 503 until then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from service.common.errors import ApplicationError, NotFound

from .batcher import BatcherClosed, Overloaded
from .openai_errors import openai_error_for
from .protocol import SSE_DONE, ChunkWriter, Completion, GenerationRequest, max_tokens_limit
from .streaming import StreamCancelled, StreamChannel, StreamEvent

if TYPE_CHECKING:  # pragma: no cover
    from .engine import GatewayEngine
    from .watcher import RegistryWatcher


class GatewayUnavailable(ApplicationError):
    status = 503
    code = "gateway_unavailable"
    title = "Service unavailable"


class Gateway:
    def __init__(self, engine: GatewayEngine, *, gateway_id: str, watcher: RegistryWatcher | None = None, request_timeout: float = 120.0):
        self.engine, self.gateway_id, self.watcher = engine, gateway_id, watcher
        self.request_timeout = request_timeout
        self.started_at: datetime = timezone.now()

    @property
    def model(self) -> str:
        return self.engine.model_name

    @property
    def generation(self) -> int | None:
        """The registry generation whose active set is loaded (None without a watcher)."""
        return self.watcher.generation if self.watcher is not None else None

    @property
    def system_fingerprint(self) -> str:
        """OpenAI's system_fingerprint: the base model and the registry generation served."""
        generation = self.generation
        return f"fp_{self.engine.fingerprint[:12]}" + (f"_g{generation}" if generation is not None else "")

    def unit_requests(self) -> dict[str, str | None]:
        """Loaded unit id -> its request's reference (None for units without a request)."""
        if self.watcher is None:
            return dict.fromkeys(self.engine.unit_ids)
        return self.watcher.unit_requests()

    @property
    def context_length(self) -> int | None:
        return self.engine.context_length

    @property
    def max_tokens_limit(self) -> int:
        """The largest max_tokens a call may send (the model's context minus one prompt token)."""
        return max_tokens_limit(self.context_length)

    def model_object(self) -> dict[str, Any]:
        """The served model as OpenAI's model object (GET /v1/models, /v1/models/{id}), with its context length."""
        return {
            "id": self.model,
            "object": "model",
            "created": int(self.started_at.timestamp()),
            "owned_by": "forget-service",
            "context_length": self.context_length,
        }

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.model:
            raise NotFound(f"The model {model!r} does not exist here; this gateway serves {self.model!r} (GET /v1/models).", code="model_not_found")

    def complete(self, request: GenerationRequest) -> list[Completion]:
        """The completions of every prompt (one batch through the gate), stop sequences applied and
        usage counted on what is returned."""
        try:
            results = self.engine.complete(request.prompts, max_tokens=request.max_tokens, timeout=self.request_timeout)
        except Overloaded as exc:
            raise _overloaded(exc) from exc
        except BatcherClosed as exc:
            raise _shutting_down() from exc
        except TimeoutError as exc:
            raise ApplicationError(f"No answer within {self.request_timeout:g} s.", code="generation_timeout", status=504) from exc
        _raise_context_errors(request, {i: r for i, r in enumerate(results)})
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        return [self._with_stop(r, request.stop) for r in results]

    def _with_stop(self, completion: Completion, stop: tuple[str, ...]) -> Completion:
        cut = completion.with_stop(stop) if stop else completion
        if cut is completion:
            return completion
        return replace(cut, completion_tokens=self.engine.count_completion_tokens(cut.text))  # usage counts what is returned

    def stream(self, request: GenerationRequest, writer: ChunkWriter) -> GatewayStream:
        """Starts a streamed call and waits until the gate has decided for every prompt (or an error
        would make the call fail: answered as an ordinary error, before any byte of the stream)."""
        from .engine import StreamRow  # gateway-only module, loaded with the engine already

        channel = StreamChannel(len(request.prompts))
        rows = [StreamRow(prompt, channel, i, request.stop) for i, prompt in enumerate(request.prompts)]
        try:
            group = self.engine.stream(rows, max_tokens=request.max_tokens)
        except Overloaded as exc:
            raise _overloaded(exc) from exc
        except BatcherClosed as exc:
            raise _shutting_down() from exc
        stream = GatewayStream(self, request, channel, group, writer)
        stream.wait_started()
        return stream

    def health(self) -> dict[str, Any]:
        watcher = self.watcher
        body: dict[str, Any] = {
            "status": "ok",
            "gateway_id": self.gateway_id,
            "model": self.model,
            "base_fingerprint": self.engine.fingerprint,
            "generation": self.generation,
            "units": sorted(self.engine.unit_ids),
            "started_at": self.started_at,
            "queued_prompts": self.engine.batcher.queued,
            "adapters": {
                "budget": self.engine.adapter_budget,
                "resident": len(self.engine.resident_adapters),
                "loaded_on_demand": self.engine.adapter_loads,
                "resident_hits": self.engine.adapter_hits,
            },
        }
        if watcher is not None:
            body.update(watcher.health())
            if not watcher.registry_reachable:
                body["status"] = "degraded"
        return body


def _overloaded(exc: Exception) -> GatewayUnavailable:
    return GatewayUnavailable(f"The gateway is busy ({exc}); retry in a moment.", code="overloaded")


def _shutting_down() -> GatewayUnavailable:
    return GatewayUnavailable("The gateway is shutting down; retry on another replica.", code="shutting_down")


def _raise_context_errors(request: GenerationRequest, results: dict[int, Any]) -> None:
    """OpenAI's context_length_exceeded for the prompts that do not fit with max_tokens."""
    from .engine import ContextLengthExceeded  # gateway-only module, loaded with the engine already

    too_long = sorted((i, r) for i, r in results.items() if isinstance(r, ContextLengthExceeded))
    if not too_long:
        return
    where = "messages" if request.param == "messages" else "prompt"

    def message(error: ContextLengthExceeded) -> str:
        room = error.limit - error.prompt_tokens
        advice = f"send max_tokens of at most {room}" if room > 0 else f"shorten the {where}: it leaves no room for an answer"
        return (
            f"This model's maximum context length is {error.limit} tokens. However, you requested {error.prompt_tokens + error.max_tokens} tokens "
            f"({error.prompt_tokens} in the {where}, {error.max_tokens} in the completion"
            f"{'' if request.max_tokens_given else ': the default max_tokens'}). Please reduce the length of the {where} or completion: {advice}."
        )

    index, first = too_long[0]
    field = (lambda i: f"prompts.{i}") if request.param == "prompts" else (lambda i: request.param)
    raise ApplicationError(
        message(first) if len(request.prompts) == 1 else f"Prompt {index}: {message(first)}",
        code="context_length_exceeded",
        extra={"errors": [{"field": field(i), "message": message(e), "code": "context_length_exceeded"} for i, e in too_long]},
    )


class GatewayStream:
    """A streamed call: the SSE bytes of its chunks, from a thread (`__iter__`, the WSGI server) or
    from the event loop (`__aiter__`, the ASGI server). Closing it early (the client went away)
    cancels its rows: the batch thread stops generating them at the next token."""

    POLL = 0.5  # seconds between checks that the batch thread still has the call

    def __init__(self, gateway: Gateway, request: GenerationRequest, channel: StreamChannel, group, writer: ChunkWriter):
        self.gateway, self.request, self.channel, self.group, self.writer = gateway, request, channel, group, writer
        self.deadline = time.monotonic() + gateway.request_timeout
        self._early: list[StreamEvent] = []  # events read while waiting for the starts
        self._ended: dict[int, Completion] = {}
        self._finished = False

    # -- before the response starts -------------------------------------------------------------

    def wait_started(self) -> None:
        started: set[int] = set()
        errors: dict[int, Exception] = {}
        try:
            while len(started) + len(errors) < self.channel.rows:
                for event in self._next_events_blocking():
                    if event.kind == "start":
                        started.add(event.row)
                    elif event.kind == "error" and event.row not in started:
                        errors[event.row] = event.value
                    else:
                        self._early.append(event)
        except BaseException:
            self.close()
            raise
        if errors:
            self.close()
            _raise_context_errors(self.request, errors)
            raise next(iter(errors.values()))

    def _next_events_blocking(self) -> list[StreamEvent]:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ApplicationError(f"No answer within {self.gateway.request_timeout:g} s.", code="generation_timeout", status=504)
            try:
                return self.channel.get(min(self.POLL, left))
            except TimeoutError:
                self._check_group()

    def _check_group(self) -> None:
        """The batch thread dropped the call (shutdown) or failed it without an event."""
        future = self.group.future
        if future.cancelled():
            raise _shutting_down()
        if future.done() and future.exception() is not None and not isinstance(future.exception(), StreamCancelled):
            raise future.exception()

    # -- the response ---------------------------------------------------------------------------

    def _render(self, events: list[StreamEvent]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if event.kind == "text":
                out.append(self.writer.text(event.row, event.value))
            elif event.kind == "end":
                self._ended[event.row] = event.value
                out.append(self.writer.end(event.row, event.value.finish_reason))
            elif event.kind == "error":
                raise event.value
        return out

    def _opening(self) -> list[bytes]:
        chunks = [c for c in (self.writer.start(i) for i in range(self.channel.rows)) if c]
        return chunks + self._render(self._early)

    def _closing(self) -> list[bytes]:
        self._finished = True
        usage = self.writer.usage([self._ended[i] for i in range(self.channel.rows)])
        return ([usage] if usage else []) + [SSE_DONE]

    def _error_chunk(self, exc: BaseException) -> bytes:
        return self.writer.error(openai_error_for(exc))

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._opening()
            while len(self._ended) < self.channel.rows:
                yield from self._render(self._next_events_blocking())
            yield from self._closing()
        except Exception as exc:  # noqa: BLE001 - the stream has begun: the error goes in it
            yield self._error_chunk(exc)
        finally:  # also when the server closes the iterator early (the client went away)
            self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self._opening():
                yield chunk
            while len(self._ended) < self.channel.rows:
                for chunk in self._render(await self._next_events_async()):
                    yield chunk
            for chunk in self._closing():
                yield chunk
        except Exception as exc:  # noqa: BLE001 - the stream has begun: the error goes in it
            yield self._error_chunk(exc)
        finally:  # also on cancellation (the ASGI server saw the client disconnect)
            self.close()

    async def _next_events_async(self) -> list[StreamEvent]:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ApplicationError(f"No answer within {self.gateway.request_timeout:g} s.", code="generation_timeout", status=504)
            try:
                return await self.channel.aget(min(self.POLL, left))
            except TimeoutError:
                self._check_group()

    def close(self) -> None:
        """Stops the call's rows unless they all ended: withdrawn if still queued, else cancelled."""
        if self._finished:
            return
        self._finished = True
        self.channel.cancel()
        self.gateway.engine.batcher.withdraw(self.group)


_lock = threading.Lock()
_current: Gateway | None = None


def install(gateway: Gateway | None) -> None:
    """Makes `gateway` the one the views serve (None: none)."""
    global _current
    with _lock:
        _current = gateway


def current() -> Gateway:
    gateway = _current
    if gateway is None:
        raise GatewayUnavailable("The gateway is starting: the model and its units are not loaded yet.", code="not_ready")
    return gateway
