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

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from .config import UnlearnConfig
from .training import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, AdapterWeights

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ADAPTER_DIR = "adapter"
DETECTOR_DIR = "detector"


class UnitIntegrityError(Exception):
    """A unit's files do not match its manifest (tampered, truncated, or extra files)."""


class UnitCompatibilityError(ValueError):
    """The unit is intact but was made for another base model or format."""


@dataclass
class Manifest:
    format_version: int
    unit_id: str
    created_at: str  # ISO 8601, UTC
    config: dict[str, Any]  # {"unlearn": UnlearnConfig as dict, "detector": detector config or None}
    library_versions: dict[str, str]
    base_fingerprint: str | None
    forget_set_hash: str | None
    files: dict[str, str]  # relative POSIX path -> SHA-256 hex, every file but manifest.json
    extra: dict[str, Any] = field(default_factory=dict)
    digest: str = ""  # SHA-256 of manifest.json itself (not stored inside it)

    def to_json(self) -> str:
        data = asdict(self)
        del data["digest"]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("manifest is not a JSON object")
        files = data.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("manifest 'files' is not a mapping of paths to digests")
        return cls(**data, digest=sha256_bytes(raw))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def hash_forget_set(items: Iterable[Any]) -> str:
    """SHA-256 of a canonical JSON list of the forget items: [question, answer] pairs or texts."""
    canonical = []
    for item in items:
        if hasattr(item, "question") and hasattr(item, "answer"):
            item = (item.question, item.answer)
        canonical.append(item if isinstance(item, str) else [str(part) for part in item])
    return sha256_bytes(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode())


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
            files={path: sha256_file(staging / path) for path in _list_files(staging)},
            extra=dict(manifest_extra or {}),
        )
        raw = manifest.to_json().encode()
        (staging / MANIFEST_NAME).write_bytes(raw)
        manifest.digest = sha256_bytes(raw)
        _fsync_tree(staging)
        try:
            os.rename(staging, target)  # atomic; fails if another writer created `target` meanwhile
        except OSError as exc:
            raise FileExistsError(f"unit directory already exists: {target}") from exc
        _fsync_dir(target.parent)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def verify_unit(directory: str | Path, expected_manifest_digest: str | None = None) -> Manifest:
    """Check every file of a unit against its manifest; raise UnitIntegrityError naming the file."""
    root = Path(directory)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is missing")
    raw = manifest_path.read_bytes()
    if expected_manifest_digest is not None and sha256_bytes(raw) != expected_manifest_digest:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} does not match the registered digest")
    try:
        version = json.loads(raw).get("format_version")
    except (ValueError, AttributeError) as exc:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is not a JSON object ({exc})") from exc
    if version != FORMAT_VERSION:
        raise UnitCompatibilityError(f"{root}: unit format {version!r}, this engine reads {FORMAT_VERSION}")
    try:
        manifest = Manifest.from_json(raw)
    except (ValueError, TypeError) as exc:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is not a valid manifest ({exc})") from exc
    listed = manifest.files
    for path in listed:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or path == MANIFEST_NAME or str(pure) != path:
            raise UnitIntegrityError(f"{root}: manifest lists an invalid path {path!r}")
    present = set(_list_files(root)) - {MANIFEST_NAME}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise UnitIntegrityError(f"{root}: file {unlisted[0]} is not listed in the manifest")
    for path, expected in sorted(listed.items()):
        if path not in present:
            raise UnitIntegrityError(f"{root}: file {path} is missing")
        if sha256_file(root / path) != expected:
            raise UnitIntegrityError(f"{root}: file {path} does not match its SHA-256 digest")
    return manifest


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


def _list_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under root; links and special files are refused."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise UnitIntegrityError(f"{root}: {relative} is a symbolic link")
            if name in filenames:
                if not path.is_file():
                    raise UnitIntegrityError(f"{root}: {relative} is not a regular file")
                found.append(relative)
    return sorted(found)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
