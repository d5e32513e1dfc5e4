"""Unit directories: one request's adapter and detector, sealed by a manifest of SHA-256 digests.

    <unit>/
      manifest.json     format version, unit id, creation time, configs, library versions,
                        base-model fingerprint, forget-set hash, and the digest of every other file
      adapter/          the LoRA in PEFT format (adapter_config.json, adapter_model.safetensors)
      detector/         whatever the detector saves (opaque files to this module)

A unit is written into a temporary sibling directory and renamed into place, so readers never see
half a unit. Before anything in a unit is deserialised, every file is digested and compared with
the manifest, and a file the manifest does not list is refused: a tampered unit is never loaded.
The manifest cannot digest itself; `Manifest.digest` is the SHA-256 of manifest.json, for the
registry to store and pass back as `expected_manifest_digest`.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import UnlearnConfig
from .training import AdapterWeights

# The torch-free part (manifest, digests, verification) lives in unit_manifest, so that web code
# can check a unit without importing torch; it is re-exported here, the engine's public API.
from .unit_manifest import (  # noqa: F401  (re-exports)
    ADAPTER_CONFIG_NAME,
    ADAPTER_DIR,
    ADAPTER_WEIGHTS_NAME,
    DETECTOR_DIR,
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    UnitCompatibilityError,
    UnitIntegrityError,
    digest_of_files,
    fsync_dir,
    fsync_tree,
    hash_forget_set,
    list_files,
    sha256_bytes,
    sha256_file,
    verify_unit,
)


def library_versions() -> dict[str, str]:
    import numpy
    import peft
    import safetensors
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def write_unit(
    directory: str | Path,
    adapter: AdapterWeights,
    *,
    unit_id: str | None = None,
    config: UnlearnConfig | dict[str, Any] | None = None,
    detector_saver: Callable[[Path], None] | None = None,
    detector_config: dict[str, Any] | None = None,
    base_fingerprint: str | None = None,
    forget_set_hash: str | None = None,
    manifest_extra: dict[str, Any] | None = None,
) -> Manifest:
    """Write a unit atomically; `directory` must not exist yet (units are immutable).

    detector_saver(path) writes the detector's files into the (existing, empty) detector/ folder.
    base_fingerprint defaults to the one the adapter carries.
    """
    target = Path(directory)
    if target.exists():
        raise FileExistsError(f"unit directory already exists: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        os.chmod(staging, 0o755)
        adapter.save_pretrained(staging / ADAPTER_DIR)
        if detector_saver is not None:
            (staging / DETECTOR_DIR).mkdir()
            detector_saver(staging / DETECTOR_DIR)
        if isinstance(config, UnlearnConfig):
            config = config.to_dict()
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            unit_id=unit_id or target.name,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            config={"unlearn": config, "detector": detector_config},
            library_versions=library_versions(),
            base_fingerprint=base_fingerprint or adapter.base_fingerprint,
            forget_set_hash=forget_set_hash,
            files={path: sha256_file(staging / path) for path in list_files(staging)},
            extra=dict(manifest_extra or {}),
        )
        raw = manifest.to_json().encode()
        (staging / MANIFEST_NAME).write_bytes(raw)
        manifest.digest = sha256_bytes(raw)
        fsync_tree(staging)
        try:
            os.rename(staging, target)  # atomic; fails if another writer created `target` meanwhile
        except OSError as exc:
            raise FileExistsError(f"unit directory already exists: {target}") from exc
        fsync_dir(target.parent)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_unit_adapter(
    directory: str | Path,
    expected_base_fingerprint: str | None = None,
    expected_manifest_digest: str | None = None,
) -> AdapterWeights:
    """Verify the unit, check its base model, then parse the adapter from the bytes just verified."""
    return load_unit(directory, expected_base_fingerprint, expected_manifest_digest).adapter


@dataclass
class LoadedUnit:
    manifest: Manifest
    adapter: AdapterWeights
    detector: Any = None  # what detector_loader returned, if one was given
    # A group (consolidation.py): its members, whose detectors decide where the group's adapter applies.
    members: list[LoadedUnit] = field(default_factory=list)


def load_unit(
    directory: str | Path,
    expected_base_fingerprint: str | None = None,
    expected_manifest_digest: str | None = None,
    detector_loader: Callable[[Path], Any] | None = None,
) -> LoadedUnit:
    """Verify a unit, then load its adapter and (with detector_loader(path)) its detector."""
    root = Path(directory)
    manifest = verify_unit(root, expected_manifest_digest)
    if expected_base_fingerprint is not None and manifest.base_fingerprint != expected_base_fingerprint:
        raise UnitCompatibilityError(
            f"unit {manifest.unit_id!r} was trained against base model {manifest.base_fingerprint!r}, "
            f"not the loaded one {expected_base_fingerprint!r}; it cannot be served on this model"
        )
    blobs = {}
    for name in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME):
        path = f"{ADAPTER_DIR}/{name}"
        if path not in manifest.files:
            raise UnitIntegrityError(f"{root}: file {path} is missing")
        blobs[name] = (root / path).read_bytes()
        if sha256_bytes(blobs[name]) != manifest.files[path]:  # the bytes parsed are the bytes checked
            raise UnitIntegrityError(f"{root}: file {path} does not match its SHA-256 digest")
    adapter = AdapterWeights.from_bytes(blobs[ADAPTER_CONFIG_NAME], blobs[ADAPTER_WEIGHTS_NAME])
    if adapter.base_fingerprint and manifest.base_fingerprint and adapter.base_fingerprint != manifest.base_fingerprint:
        raise UnitIntegrityError(f"{root}: file {ADAPTER_DIR}/{ADAPTER_WEIGHTS_NAME} names another base model than the manifest")
    adapter.base_fingerprint = manifest.base_fingerprint
    detector = None
    if detector_loader is not None:
        if not (root / DETECTOR_DIR).is_dir():
            raise UnitIntegrityError(f"{root}: unit has no {DETECTOR_DIR}/ directory")
        detector = detector_loader(root / DETECTOR_DIR)
    return LoadedUnit(manifest, adapter, detector)
