"""The torch-free half of a unit directory: its manifest, its digests, and their verification.

    <unit>/
      manifest.json     format version, unit id, creation time, configs, library versions,
                        base-model fingerprint, forget-set hash, and the digest of every other file
      adapter/          the LoRA in PEFT format (adapter_config.json, adapter_model.safetensors)
      detector/         whatever the detector saves (opaque files to this module)

Web code (the adapter registry) and the inference gateway check units with this module before
anything is deserialised; it imports only the standard library, never torch. Writing and loading
units (which need the engine's tensors) stay in `artifacts`, which re-exports everything here.

The manifest cannot digest itself; `Manifest.digest` is the SHA-256 of manifest.json, for the
registry to store and pass back as `expected_manifest_digest`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ADAPTER_DIR = "adapter"
DETECTOR_DIR = "detector"
# PEFT's file names (the engine's training module writes exactly these: it imports them from here).
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_WEIGHTS_PATH = f"{ADAPTER_DIR}/{ADAPTER_WEIGHTS_NAME}"


class UnitIntegrityError(Exception):
    """A unit's files do not match its manifest (tampered, truncated, or extra files).

    `path` is the unit-relative path of the offending file where one is to blame.
    """

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path


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

    @property
    def adapter_digest(self) -> str | None:
        """SHA-256 of the adapter's weights file, or None when the unit has none."""
        return self.files.get(ADAPTER_WEIGHTS_PATH)

    @property
    def detector_digest(self) -> str | None:
        """One SHA-256 over every detector file (see `digest_of_files`), or None without a detector."""
        return digest_of_files(self.files, DETECTOR_DIR)


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header written canonically (keys sorted, no
    spaces, padded to 8 bytes): the library writes the `__metadata__` map in a random order, so
    two saves of the same tensors had different bytes, and different SHA-256 digests."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_of_files(files: dict[str, str], directory: str) -> str | None:
    """SHA-256 over the (path, digest) pairs of the files under `directory`/, in path order.

    A folder of files gets one digest that changes when any file's bytes, name or presence does.
    None when the folder holds no file.
    """
    prefix = directory.rstrip("/") + "/"
    lines = [f"{path}\0{digest}\n" for path, digest in sorted(files.items()) if path.startswith(prefix)]
    return sha256_bytes("".join(lines).encode()) if lines else None


def hash_forget_set(items: Iterable[Any]) -> str:
    """SHA-256 of a canonical JSON list of the forget items: [question, answer] pairs or texts."""
    canonical = []
    for item in items:
        if hasattr(item, "question") and hasattr(item, "answer"):
            item = (item.question, item.answer)
        canonical.append(item if isinstance(item, str) else [str(part) for part in item])
    return sha256_bytes(json.dumps(canonical, ensure_ascii=False, separators=(",", ":")).encode())


def verify_unit(directory: str | Path, expected_manifest_digest: str | None = None) -> Manifest:
    """Check every file of a unit against its manifest; raise UnitIntegrityError naming the file."""
    root = Path(directory)
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is missing", path=MANIFEST_NAME)
    raw = manifest_path.read_bytes()
    if expected_manifest_digest is not None and sha256_bytes(raw) != expected_manifest_digest:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} does not match the registered digest", path=MANIFEST_NAME)
    try:
        version = json.loads(raw).get("format_version")
    except (ValueError, AttributeError) as exc:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is not a JSON object ({exc})", path=MANIFEST_NAME) from exc
    if version != FORMAT_VERSION:
        raise UnitCompatibilityError(f"{root}: unit format {version!r}, this engine reads {FORMAT_VERSION}")
    try:
        manifest = Manifest.from_json(raw)
    except (ValueError, TypeError) as exc:
        raise UnitIntegrityError(f"{root}: {MANIFEST_NAME} is not a valid manifest ({exc})", path=MANIFEST_NAME) from exc
    listed = manifest.files
    for path in listed:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts or path == MANIFEST_NAME or str(pure) != path:
            raise UnitIntegrityError(f"{root}: manifest lists an invalid path {path!r}", path=MANIFEST_NAME)
    present = set(list_files(root)) - {MANIFEST_NAME}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise UnitIntegrityError(f"{root}: file {unlisted[0]} is not listed in the manifest", path=unlisted[0])
    for path, expected in sorted(listed.items()):
        if path not in present:
            raise UnitIntegrityError(f"{root}: file {path} is missing", path=path)
        if sha256_file(root / path) != expected:
            raise UnitIntegrityError(f"{root}: file {path} does not match its SHA-256 digest", path=path)
    return manifest


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under root; links and special files are refused."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise UnitIntegrityError(f"{root}: {relative} is a symbolic link", path=relative)
            if name in filenames:
                if not path.is_file():
                    raise UnitIntegrityError(f"{root}: {relative} is not a regular file", path=relative)
                found.append(relative)
    return sorted(found)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under root to disk (before a rename publishes them)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
