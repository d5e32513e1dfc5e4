"""Where unit directories are kept: one interface, a filesystem backend and an S3-compatible one.

A stored unit is immutable: `put_unit` of a unit id that is already stored succeeds only when the
stored manifest.json is byte-for-byte the new one (a retried upload), and refuses anything else.
A unit is complete when its manifest.json is there: the filesystem backend renames a finished
staging directory into place; the S3 backend uploads manifest.json last.

Backends never trust what they store: the registry re-hashes a fetched unit against the digests in
its database before anything uses it (services.adapter_verify_stored).

Torch-free; boto3 is imported only when an S3 store is used.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from django.conf import settings

from workers.engine.unit_manifest import MANIFEST_NAME, fsync_dir, fsync_tree, list_files

UNIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class StorageError(Exception):
    """The store refused or failed an operation."""


class UnitAlreadyStored(StorageError, FileExistsError):
    """Another unit with this id is stored already; stored units are never overwritten."""


class UnitNotStored(StorageError, FileNotFoundError):
    """No complete unit at this URI."""


def check_unit_id(unit_id: str) -> str:
    if not isinstance(unit_id, str) or not UNIT_ID.fullmatch(unit_id):
        raise ValueError(f"invalid unit id {unit_id!r}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return unit_id


@runtime_checkable
class UnitStorage(Protocol):
    def put_unit(self, local_dir: Path, unit_id: str) -> str:
        """Store the unit in `local_dir` under `unit_id`; return its URI."""

    def fetch_unit(self, uri: str, dest_dir: Path) -> Path:
        """Copy the stored unit into `dest_dir` (created; must not exist yet) and return it."""

    def exists(self, uri: str) -> bool:
        """Whether a complete unit is stored at `uri`."""

    def delete(self, uri: str) -> None:
        """Remove the unit at `uri` (no error when it is absent)."""


# --- helpers -------------------------------------------------------------------------------------


def _staging_dir(dest_dir: Path) -> Path:
    if dest_dir.exists():
        raise FileExistsError(f"destination already exists: {dest_dir}")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".partial", dir=dest_dir.parent))


def _publish(staging: Path, dest_dir: Path) -> Path:
    """Rename a finished staging directory into place; atomic, and refused if dest_dir appeared."""
    fsync_tree(staging)
    try:
        os.rename(staging, dest_dir)
    except OSError as exc:
        raise FileExistsError(f"destination already exists: {dest_dir}") from exc
    fsync_dir(dest_dir.parent)
    return dest_dir


def _copy_unit_files(source: Path, target: Path) -> None:
    """Copies every regular file (links and special files are refused) without their permissions."""
    for relative in list_files(source):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, destination, follow_symlinks=False)


def _make_writable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)


def _make_read_only(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.chmod(Path(dirpath) / name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(dirpath, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


# --- filesystem ----------------------------------------------------------------------------------


class FilesystemStorage:
    """Units as read-only directories `<root>/<unit_id>/`, URIs `file:///<root>/<unit_id>`."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"FilesystemStorage({str(self.root)!r})"

    def uri_for(self, unit_id: str) -> str:
        return (self.root / check_unit_id(unit_id)).as_uri()

    @staticmethod
    def path_for(uri: str) -> Path:
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise StorageError(f"not a local file URI: {uri}")
        return Path(unquote(parts.path))

    def put_unit(self, local_dir: Path, unit_id: str) -> str:
        target = self.root / check_unit_id(unit_id)
        local_dir = Path(local_dir)
        if (target / MANIFEST_NAME).is_file():
            return self._same_or_refuse(local_dir, target, unit_id)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = _staging_dir(target)
        try:
            _copy_unit_files(local_dir, staging)
            _make_read_only(staging)
            _publish(staging, target)
        except FileExistsError:
            _make_writable(staging)
            shutil.rmtree(staging, ignore_errors=True)
            return self._same_or_refuse(local_dir, target, unit_id)  # a concurrent put won the rename
        except BaseException:
            _make_writable(staging)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target.as_uri()

    def _same_or_refuse(self, local_dir: Path, target: Path, unit_id: str) -> str:
        if (target / MANIFEST_NAME).read_bytes() != (local_dir / MANIFEST_NAME).read_bytes():
            raise UnitAlreadyStored(f"another unit {unit_id!r} is already stored at {target.as_uri()}; stored units are immutable")
        return target.as_uri()

    def fetch_unit(self, uri: str, dest_dir: Path) -> Path:
        source = self.path_for(uri)
        if not self.exists(uri):
            raise UnitNotStored(f"no unit stored at {uri}")
        dest_dir = Path(dest_dir)
        staging = _staging_dir(dest_dir)
        try:
            _copy_unit_files(source, staging)
            return _publish(staging, dest_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def exists(self, uri: str) -> bool:
        return (self.path_for(uri) / MANIFEST_NAME).is_file()

    def delete(self, uri: str) -> None:
        path = self.path_for(uri)
        if path.is_dir():
            _make_writable(path)
            shutil.rmtree(path)


# --- S3-compatible -------------------------------------------------------------------------------


class S3Storage:
    """Units as objects `<prefix>/<unit_id>/<path>` in a bucket, URIs `s3://<bucket>/<prefix>/<unit_id>`.

    Works with AWS S3 and S3-compatible stores (MinIO, Ceph, ...) through `endpoint_url`.
    Credentials come from boto3's usual sources (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
    an instance role). Make the bucket's objects immutable with the store's own object lock where
    it has one; this class never overwrites a complete unit either way.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region_name: str | None = None, client=None):
        if not bucket:
            raise ValueError("an S3 store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3  # lazily: only deployments that use S3 need it

            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region_name or None)
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def uri_for(self, unit_id: str) -> str:
        key = "/".join(part for part in (self.prefix, check_unit_id(unit_id)) if part)
        return f"s3://{self.bucket}/{key}"

    def _key_prefix(self, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or parts.netloc != self.bucket:
            raise StorageError(f"{uri} is not in bucket {self.bucket}")
        key = parts.path.strip("/")
        if not key:
            raise StorageError(f"{uri} names no unit")
        return key + "/"

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def _manifest(self, uri: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key_prefix(uri) + MANIFEST_NAME)["Body"].read()
        except Exception as exc:
            if self._missing(exc):
                return None
            raise

    def _keys(self, key_prefix: str) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def put_unit(self, local_dir: Path, unit_id: str) -> str:
        uri = self.uri_for(unit_id)
        local_dir = Path(local_dir)
        manifest = (local_dir / MANIFEST_NAME).read_bytes()
        stored = self._manifest(uri)
        if stored is not None:
            if stored != manifest:
                raise UnitAlreadyStored(f"another unit {unit_id!r} is already stored at {uri}; stored units are immutable")
            return uri
        key_prefix = self._key_prefix(uri)
        files = [path for path in list_files(local_dir) if path != MANIFEST_NAME]
        for relative in files:  # an interrupted upload leaves no manifest: the unit is not stored yet
            self.client.upload_file(str(local_dir / relative), self.bucket, key_prefix + relative)
        self.client.put_object(Bucket=self.bucket, Key=key_prefix + MANIFEST_NAME, Body=manifest)
        return uri

    def fetch_unit(self, uri: str, dest_dir: Path) -> Path:
        if not self.exists(uri):
            raise UnitNotStored(f"no unit stored at {uri}")
        key_prefix = self._key_prefix(uri)
        dest_dir = Path(dest_dir)
        staging = _staging_dir(dest_dir)
        try:
            for key in self._keys(key_prefix):
                relative = PurePosixPath(key[len(key_prefix) :])
                if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                    raise StorageError(f"refusing object key {key!r}")
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, key, str(target))
            return _publish(staging, dest_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def exists(self, uri: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key_prefix(uri) + MANIFEST_NAME)
        except Exception as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def delete(self, uri: str) -> None:
        keys = self._keys(self._key_prefix(uri))
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = keys[start : start + 1000]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True})


# --- choosing the backend ------------------------------------------------------------------------


def storage_from_url(url: str) -> UnitStorage:
    """`file:///var/units` or `s3://bucket/prefix` -> the backend that stores new units there."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FilesystemStorage(FilesystemStorage.path_for(url))
    if parts.scheme == "s3":
        return S3Storage(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=getattr(settings, "ADAPTERS_STORE_S3_ENDPOINT_URL", None),
            region_name=getattr(settings, "ADAPTERS_STORE_S3_REGION", None),
        )
    raise StorageError(f"unsupported ADAPTERS_STORE_URL {url!r}: use file:///path or s3://bucket/prefix")


def get_storage() -> UnitStorage:
    """The configured store: ADAPTERS_STORE_URL, or a directory (ADAPTERS_STORE_ROOT) by default."""
    url = getattr(settings, "ADAPTERS_STORE_URL", "")
    if url:
        return storage_from_url(url)
    return FilesystemStorage(settings.ADAPTERS_STORE_ROOT)


def storage_for_uri(uri: str) -> UnitStorage:
    """The backend that reads a stored unit's URI, even after the configured store changed."""
    parts = urlsplit(uri)
    configured = get_storage()
    if parts.scheme == "s3" and isinstance(configured, S3Storage) and configured.bucket == parts.netloc:
        return configured
    if parts.scheme == "file":
        return FilesystemStorage(FilesystemStorage.path_for(uri).parent)
    return storage_from_url(f"{parts.scheme}://{parts.netloc}")
