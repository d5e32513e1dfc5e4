"""python manage.py run_gateway: the inference gateway (docs/gateway.md)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from service.inference.gateway import Gateway, install
from service.inference.server import SERVERS


class Command(BaseCommand):
    help = (
        "Serves the gated model over HTTP (OpenAI-compatible /v1/chat/completions and /v1/completions, "
        "/api/v1/generate with the gate decision, /healthz) and follows the adapter registry: units "
        "activated or deactivated there are loaded or unloaded within a few seconds, without a restart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1; 0.0.0.0 in a container).")
        parser.add_argument("--port", type=int, default=8100, help="Port (default 8100).")
        parser.add_argument("--poll-seconds", type=float, default=2.0, help="How often the registry generation is read (default 2).")
        parser.add_argument("--gateway-id", default="", help="The id this gateway reports to the registry (default host:port).")
        parser.add_argument("--device", default=None, help="torch device for the model and the detectors (default: cuda if available, else cpu).")
        parser.add_argument("--max-batch", type=int, default=16, help="Most prompts of different calls run together in one batch (default 16).")
        parser.add_argument(
            "--adapter-budget",
            type=int,
            default=settings.GATEWAY_ADAPTER_BUDGET,
            help="Most adapters kept resident, least recently fired dropped and reloaded on demand (default GATEWAY_ADAPTER_BUDGET, 0: all).",
        )
        parser.add_argument("--max-queue", type=int, default=256, help="Most prompts waiting; beyond, calls get 503 overloaded (default 256).")
        parser.add_argument("--request-timeout", type=float, default=120.0, help="Seconds a call may wait for its answer (default 120; then 504).")
        parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: torch's choice).")
        parser.add_argument("--cache-dir", default=None, help="Where verified units are copied before loading (default $FORGET_VAR_DIR/gateway-cache).")
        parser.add_argument(
            "--server",
            choices=SERVERS,
            default="uvicorn",
            help="HTTP server: uvicorn (default; ASGI, keep-alive, streaming, graceful shutdown) or threaded (the previous wsgiref server, to compare).",
        )
        parser.add_argument("--keep-alive", type=float, default=5.0, help="Seconds an idle keep-alive connection stays open (uvicorn; default 5).")
        parser.add_argument(
            "--graceful-timeout", type=float, default=30.0, help="On SIGTERM, seconds the calls in flight may take to finish (uvicorn; default 30)."
        )
        parser.add_argument("--limit-concurrency", type=int, default=1024, help="Most open connections; beyond, new ones get 503 (uvicorn; default 1024).")

    def handle(
        self,
        *args,
        host,
        port,
        poll_seconds,
        gateway_id,
        device,
        max_batch,
        max_queue,
        request_timeout,
        torch_threads,
        cache_dir,
        server,
        keep_alive,
        graceful_timeout,
        limit_concurrency,
        adapter_budget,
        **options,
    ):
        if poll_seconds <= 0:
            raise CommandError("--poll-seconds must be positive.")
        if adapter_budget < 0:
            raise CommandError("--adapter-budget must be 0 (every adapter resident) or positive.")
        if not 0 < port < 65536:
            raise CommandError("--port must be between 1 and 65535.")
        gateway_id = (gateway_id or f"{socket.gethostname()}:{port}")[:128]
        started = time.monotonic()

        from service.inference.engine import GatewayEngine
        from service.inference.server import make_server, make_uvicorn_server
        from service.inference.watcher import RegistryWatcher

        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.stdout.write(f"Gateway {gateway_id}: loading the base model and the detector encoder...")
        engine = GatewayEngine.from_runtime(device=device, max_batch=max_batch, max_queue=max_queue, adapter_budget=adapter_budget)
        self.stdout.write(f"  model {engine.model_name} (fingerprint {engine.fingerprint[:12]}) on {engine.base.device}, in {time.monotonic() - started:.1f} s")

        root = cache_dir or os.path.join(settings.VAR_DIR, "gateway-cache")
        local = os.path.join(root, f"{re.sub(r'[^A-Za-z0-9._-]', '_', gateway_id)}-{os.getpid()}")
        os.makedirs(local, exist_ok=True)
        watcher = RegistryWatcher(engine, gateway_id=gateway_id, cache_dir=local, poll_seconds=poll_seconds)
        server_kind = server
        server = None
        stop = threading.Event()

        def on_signal(signum, frame):
            # uvicorn handles the signals itself while it serves (graceful shutdown) and passes them on here after.
            if not stop.is_set():
                self.stdout.write(f"Gateway {gateway_id}: {signal.Signals(signum).name}, shutting down.")
            stop.set()
            watcher.interrupt()
            if server is not None and server_kind == "threaded":
                threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            # Serve nothing before the registry's active units are loaded: a gateway that answered
            # first would reveal what those units erase.
            if not watcher.wait_until_loaded():
                return
            install(Gateway(engine, gateway_id=gateway_id, watcher=watcher, request_timeout=request_timeout))
            watcher.start()
            if server_kind == "threaded":
                try:
                    server = make_server(host, port)
                except OSError as exc:
                    raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
            else:
                server = make_uvicorn_server(
                    host,
                    port,
                    keep_alive=keep_alive,
                    graceful_timeout=graceful_timeout,
                    limit_concurrency=limit_concurrency,
                    on_started=lambda: self._ready(ready),
                )
            ready = (
                f"Gateway {gateway_id} serving at http://{host}:{port}/ ({server_kind}) with {len(engine.unit_ids)} units "
                f"(registry generation {watcher.generation}), polling every {poll_seconds:g} s; ready in {time.monotonic() - started:.1f} s."
            )
            if stop.is_set():
                return
            if server_kind == "threaded":
                self._ready(ready)
                server.serve_forever(poll_interval=0.5)
            else:
                try:
                    server.run()  # returns after a graceful shutdown (SIGTERM, SIGINT)
                except SystemExit as exc:  # uvicorn's answer to an address it cannot bind (logged)
                    raise CommandError(f"Cannot listen on {host}:{port} (see the log above).") from exc
        finally:
            install(None)
            watcher.stop()
            if server is not None and server_kind == "threaded":
                server.server_close()
            engine.close()
            shutil.rmtree(local, ignore_errors=True)
            self.stdout.write(f"Gateway {gateway_id} stopped.")

    def _ready(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
