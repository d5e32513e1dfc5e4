"""The registry watcher: keeps the gateway's loaded units equal to the registry's active set.

A background thread polls `registry_generation()` (one indexed row) every `poll_seconds`. When the
generation moves, `sync()`:

1. reads the active set (consistently: the generation before and after the read must agree);
2. unloads the units that are no longer active (deactivated, rolled back, revoked);
3. for each new unit: fetches it from storage into the local cache and re-hashes every file against
   the digests recorded at registration (`adapter_verify_stored`; a mismatch is refused there,
   audited as `adapter.integrity_failed` and alerted, and the copy removed), then loads the verified
   copy (`load_units` checks the digests and the base fingerprint once more) and adds it to the live
   GatedModel, without reloading the base model;
4. reports what it serves with `gateway_report_loaded` (audited as `gateway.loaded`);
5. marks the requests of newly served units `active` (`request_mark_active`): the report's time is
   the effective erasure time, and the subject is emailed.

A refused unit stays refused until the generation moves again (then it is tried once more, and a
still-tampered unit is audited and alerted again). A unit that could not be fetched for another
reason (storage unreachable) is retried at the next poll. The gateway keeps serving the units it
has throughout: a failed poll (database unreachable) changes nothing and is shown by /healthz.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from django.db import close_old_connections, connections
from django.utils import timezone

from adapters_store.selectors import active_versions, registry_generation
from adapters_store.services import adapter_integrity_failed, adapter_verify_stored, gateway_report_loaded
from service.accounts.roles import SYSTEM
from service.common.errors import InvalidTransition
from service.requests.models import ErasureRequest
from service.requests.services import request_mark_active
from service.requests.states import Status
from workers.engine.unit_manifest import UnitIntegrityError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedUnit:
    unit_id: str
    manifest_sha256: str
    request_id: UUID | None
    reference: str | None
    path: Path
    loaded_at: datetime


@dataclass(frozen=True)
class Refusal:
    unit_id: str
    kind: str  # "integrity": its files do not match the registry; "incompatible": it cannot run on this model
    problem: str
    at: datetime


def _remove_tree(path: Path) -> None:
    def writable_then_retry(function, target, _exc_info):
        os.chmod(os.path.dirname(target), stat.S_IRWXU)
        os.chmod(target, stat.S_IRWXU)
        function(target)

    if path.exists():
        shutil.rmtree(path, onerror=writable_then_retry)


class RegistryWatcher:
    def __init__(self, engine, *, gateway_id: str, cache_dir: str | Path, poll_seconds: float = 2.0):
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.engine, self.gateway_id, self.poll_seconds = engine, gateway_id, poll_seconds
        self.cache_dir = Path(cache_dir)
        self.generation: int | None = None  # the generation whose active set is loaded
        self._served: dict[str, ServedUnit] = {}
        self._refused: dict[str, Refusal] = {}
        self._state = threading.Lock()  # the HTTP threads read _served and _refused
        self._retry = False
        self.registry_reachable = True
        self.last_error = ""
        self.last_poll_at: datetime | None = None
        self.last_sync_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="registry-watcher", daemon=True)
        self._thread.start()

    def interrupt(self) -> None:
        """Asks the thread (and wait_until_loaded) to stop; safe from a signal handler."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.poll_seconds):
                self._poll_with_fresh_connection()
        finally:
            connections.close_all()  # this thread's own connection

    def _poll_with_fresh_connection(self) -> None:
        # A long-lived thread: drop a connection that broke or outlived CONN_MAX_AGE, as Django
        # does around each HTTP request.
        close_old_connections()
        try:
            self.poll_once()
        finally:
            close_old_connections()

    def wait_until_loaded(self) -> bool:
        """Polls until the first sync succeeded (the database may still be starting). False: stopped."""
        while self.generation is None:
            self._poll_with_fresh_connection()
            if self.generation is None and self._stop.wait(self.poll_seconds):
                return False
        return True

    def poll_once(self) -> bool:
        """One poll: syncs when the generation moved (or a fetch is to be retried). True if it synced.

        Never raises: a failure is logged, shown by health(), and the next poll tries again.
        """
        try:
            synced = False
            if registry_generation() != self.generation or self._retry:
                self.sync()
                synced = True
            else:
                self.confirm_staged()
            self.registry_reachable, self.last_error = True, ""
            return synced
        except Exception as exc:  # noqa: BLE001 - the gateway keeps serving what it has
            self.registry_reachable, self.last_error = False, f"{type(exc).__name__}: {exc}"
            logger.warning("registry poll failed (serving the %d units loaded): %s", len(self._served), self.last_error)
            return False
        finally:
            self.last_poll_at = timezone.now()

    # -- syncing ---------------------------------------------------------------------------------

    def _active_set(self) -> tuple[int, list]:
        """The generation and its active versions, read so that they belong together."""
        while True:
            generation = registry_generation()
            versions = list(active_versions())
            if registry_generation() == generation:
                return generation, versions

    def sync(self) -> None:
        generation, versions = self._active_set()
        self._retry = False
        active = {version.unit_id: version for version in versions}
        with self._state:
            if generation != self.generation:
                self._refused.clear()  # a new generation: refused units get another check
            else:
                self._refused = {uid: r for uid, r in self._refused.items() if uid in active}
        removed = [unit_id for unit_id in self._served if unit_id not in active]
        for unit_id in removed:
            self._unload(unit_id)
        added = [unit_id for unit_id, version in active.items() if unit_id not in self._served and unit_id not in self._refused and self._load(version)]
        self.generation = generation
        report = gateway_report_loaded(gateway_id=self.gateway_id, generation=generation, unit_ids=list(self._served))
        self.last_sync_at = report.at
        logger.info(
            "generation %d: serving %d units (+%d -%d)%s",
            generation,
            len(self._served),
            len(added),
            len(removed),
            f", refused {sorted(self._refused)}" if self._refused else "",
        )
        self.confirm_staged(at=report.at)

    def _load(self, version) -> bool:
        unit_id = version.unit_id
        if version.base_fingerprint and version.base_fingerprint != self.engine.fingerprint:
            self._refuse(
                unit_id, "incompatible", f"trained against base model {version.base_fingerprint[:12]}, this gateway serves {self.engine.fingerprint[:12]}"
            )
            return False
        local = self.cache_dir / f"{unit_id}-{version.manifest_sha256[:12]}"
        _remove_tree(local)
        try:
            verified = adapter_verify_stored(version=version, dest_dir=local)  # audits and alerts a mismatch itself
        except UnitIntegrityError as exc:
            self._refuse(unit_id, "integrity", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - storage unreachable and the like: try again next poll
            logger.warning("could not fetch unit %s (retrying at the next poll): %s: %s", unit_id, type(exc).__name__, exc)
            self._retry = True
            return False
        try:
            self.engine.load_unit(verified.path, expected_manifest_digest=version.manifest_sha256)
        except UnitIntegrityError as exc:
            # The local copy changed between its verification and its loading: same refusal, same alert.
            _remove_tree(local)
            adapter_integrity_failed(unit_id=unit_id, error=exc, problem=str(exc), stage="gateway_load", location=str(local), gateway_id=self.gateway_id)
            self._refuse(unit_id, "integrity", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - UnitCompatibilityError, DetectorError, GateError: not servable here
            _remove_tree(local)
            self._refuse(unit_id, "incompatible", f"{type(exc).__name__}: {exc}")
            return False
        served = ServedUnit(
            unit_id, version.manifest_sha256, version.request_id, version.request.reference if version.request_id else None, local, timezone.now()
        )
        with self._state:
            self._served[unit_id] = served
        logger.info("loaded unit %s%s", unit_id, f" (request {served.reference})" if served.reference else "")
        return True

    def _unload(self, unit_id: str) -> None:
        with self._state:
            served = self._served.pop(unit_id)
        try:
            self.engine.unload_unit(unit_id)
        finally:
            _remove_tree(served.path)
        logger.info("unloaded unit %s", unit_id)

    def _refuse(self, unit_id: str, kind: str, problem: str) -> None:
        problem = problem.replace(f"{self.cache_dir}{os.sep}", "")  # /healthz shows it: no local paths
        with self._state:
            self._refused[unit_id] = Refusal(unit_id, kind, problem, timezone.now())
        logger.error("refused unit %s (%s): %s; serving the others", unit_id, kind, problem)

    def confirm_staged(self, *, at: datetime | None = None) -> list[str]:
        """Marks `active` the staged requests whose unit this gateway serves; returns their references.

        `at`: the confirmation time (the report just made); later confirmations (a request staged
        after its unit was loaded) use the time of this poll."""
        with self._state:
            request_ids = {served.request_id for served in self._served.values() if served.request_id}
        if not request_ids:
            return []
        confirmed = []
        for request_id in ErasureRequest.objects.filter(pk__in=request_ids, status=Status.STAGED).values_list("pk", flat=True):
            try:
                erasure = request_mark_active(request_id=request_id, effective_at=at or timezone.now(), actor=SYSTEM, gateway_id=self.gateway_id)
            except InvalidTransition:
                continue  # another gateway confirmed it first, or it was cancelled meanwhile
            confirmed.append(erasure.reference)
            logger.info("request %s is active (effective %s)", erasure.reference, erasure.effective_at.isoformat())
        return confirmed

    # -- reads for the HTTP threads --------------------------------------------------------------

    def unit_requests(self) -> dict[str, str | None]:
        with self._state:
            return {unit_id: served.reference for unit_id, served in self._served.items()}

    def refused(self) -> list[Refusal]:
        with self._state:
            return sorted(self._refused.values(), key=lambda refusal: refusal.unit_id)

    def health(self) -> dict[str, Any]:
        return {
            "registry_reachable": self.registry_reachable,
            "last_error": self.last_error,
            "poll_seconds": self.poll_seconds,
            "last_poll_at": self.last_poll_at,
            "last_sync_at": self.last_sync_at,
            "refused": [{"unit_id": r.unit_id, "kind": r.kind, "problem": r.problem, "at": r.at} for r in self.refused()],
        }
