"""The gateway object the HTTP views talk to: the engine, the registry watcher and what they report.

Torch-free (the engine is only referenced): `run_gateway` builds one Gateway and install()s it; the
tests install one around a tiny model. The views call current(), which answers 503 until then.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from service.common.errors import ApplicationError, NotFound

from .batcher import BatcherClosed, Overloaded
from .protocol import Completion, GenerationRequest

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

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.model:
            raise NotFound(f"The model {model!r} does not exist here; this gateway serves {self.model!r} (GET /v1/models).", code="model_not_found")

    def complete(self, request: GenerationRequest) -> list[Completion]:
        """The completions of every prompt (one batch through the gate), stop sequences applied."""
        from .engine import ContextLengthExceeded  # gateway-only module, loaded with the engine already

        try:
            results = self.engine.complete(request.prompts, max_tokens=request.max_tokens, timeout=self.request_timeout)
        except Overloaded as exc:
            raise GatewayUnavailable(f"The gateway is busy ({exc}); retry in a moment.", code="overloaded") from exc
        except BatcherClosed as exc:
            raise GatewayUnavailable("The gateway is shutting down; retry on another replica.", code="shutting_down") from exc
        except TimeoutError as exc:
            raise ApplicationError(f"No answer within {self.request_timeout:g} s.", code="generation_timeout", status=504) from exc
        too_long = [(i, r) for i, r in enumerate(results) if isinstance(r, ContextLengthExceeded)]
        if too_long:
            index, error = too_long[0]
            raise ApplicationError(
                str(error) if len(request.prompts) == 1 else f"Prompt {index}: {error}",
                code="context_length_exceeded",
                extra={"errors": [{"field": f"prompts.{i}", "message": str(e), "code": "context_length_exceeded"} for i, e in too_long]},
            )
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]
        return [r.with_stop(request.stop) if request.stop else r for r in results]

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
        }
        if watcher is not None:
            body.update(watcher.health())
            if not watcher.registry_reachable:
                body["status"] = "degraded"
        return body


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
