"""The unit stores: round trips, immutability, and choosing the backend from settings.

The S3 backend runs against moto's in-process fake of S3 (no network).
"""

from __future__ import annotations

import os
import stat

import pytest

from adapters_store.storage import (
    FilesystemStorage,
    S3Storage,
    StorageError,
    UnitAlreadyStored,
    UnitNotStored,
    get_storage,
    storage_for_uri,
)
from workers.engine.unit_manifest import list_files, verify_unit


def _same_files(one, other) -> bool:
    files = list_files(one)
    return files == list_files(other) and all((one / f).read_bytes() == (other / f).read_bytes() for f in files)


# --- filesystem ----------------------------------------------------------------------------------


def test_filesystem_round_trip(make_unit, tmp_path):
    unit = make_unit("round-trip")
    storage = FilesystemStorage(tmp_path / "store")
    uri = storage.put_unit(unit, "round-trip")
    assert uri == (tmp_path / "store" / "round-trip").as_uri() and storage.exists(uri)
    fetched = storage.fetch_unit(uri, tmp_path / "fetched")
    assert fetched == tmp_path / "fetched" and _same_files(unit, fetched)
    verify_unit(fetched)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")] and not [p for p in os.listdir(tmp_path / "store") if p.startswith(".")]


def test_stored_units_are_read_only_and_never_overwritten(make_unit, tmp_path):
    unit, other = make_unit("immutable"), make_unit("other")
    storage = FilesystemStorage(tmp_path / "store")
    uri = storage.put_unit(unit, "immutable")
    stored = FilesystemStorage.path_for(uri)
    weights = stored / "adapter" / "adapter_model.safetensors"
    assert not os.stat(weights).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not os.stat(stored).st_mode & stat.S_IWUSR

    assert storage.put_unit(unit, "immutable") == uri  # the same unit again: a retried upload
    before = weights.read_bytes()
    with pytest.raises(UnitAlreadyStored):
        storage.put_unit(other, "immutable")  # another unit under the same id
    assert weights.read_bytes() == before

    with pytest.raises(FileExistsError):
        storage.fetch_unit(uri, tmp_path)  # fetching never writes into an existing directory
    storage.delete(uri)
    assert not storage.exists(uri) and not stored.exists()
    with pytest.raises(UnitNotStored):
        storage.fetch_unit(uri, tmp_path / "gone")


@pytest.mark.parametrize("unit_id", ["../escape", "a/b", ".hidden", "", "x" * 65])
def test_unit_ids_that_are_not_plain_names_are_refused(make_unit, tmp_path, unit_id):
    with pytest.raises(ValueError):
        FilesystemStorage(tmp_path / "store").put_unit(make_unit(), unit_id)


def test_a_failed_put_leaves_nothing(make_unit, tmp_path):
    unit = make_unit("links")
    (unit / "detector" / "link").symlink_to(unit / "manifest.json")
    storage = FilesystemStorage(tmp_path / "store")
    with pytest.raises(Exception, match="symbolic link"):
        storage.put_unit(unit, "links")
    assert os.listdir(tmp_path / "store") == []


# --- choosing the backend ------------------------------------------------------------------------


def test_the_store_comes_from_settings(settings, tmp_path):
    settings.ADAPTERS_STORE_URL = ""
    settings.ADAPTERS_STORE_ROOT = tmp_path / "default"
    assert isinstance(get_storage(), FilesystemStorage) and get_storage().root == (tmp_path / "default").resolve()
    settings.ADAPTERS_STORE_URL = (tmp_path / "elsewhere").as_uri()
    assert get_storage().root == (tmp_path / "elsewhere").resolve()
    settings.ADAPTERS_STORE_URL = "ftp://example.org/units"
    with pytest.raises(StorageError, match="file:///path or s3://bucket/prefix"):
        get_storage()


def test_a_stored_unit_is_read_from_its_uri_after_the_setting_changed(settings, make_unit, tmp_path):
    old = FilesystemStorage(tmp_path / "old-store")
    uri = old.put_unit(make_unit("moved"), "moved")
    settings.ADAPTERS_STORE_URL = (tmp_path / "new-store").as_uri()
    assert _same_files(storage_for_uri(uri).fetch_unit(uri, tmp_path / "copy"), FilesystemStorage.path_for(uri))


# --- S3-compatible (moto) ------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch):
    moto = pytest.importorskip("moto")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="units")
        yield client


def test_s3_round_trip_and_immutability(s3, make_unit, tmp_path):
    unit, other = make_unit("s3-unit"), make_unit("s3-other")
    storage = S3Storage("units", "prod/adapters", client=s3)
    uri = storage.put_unit(unit, "s3-unit")
    assert uri == "s3://units/prod/adapters/s3-unit" and storage.exists(uri)
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="units")["Contents"])
    assert keys == sorted(f"prod/adapters/s3-unit/{path}" for path in list_files(unit))

    fetched = storage.fetch_unit(uri, tmp_path / "fetched")
    assert _same_files(unit, fetched)
    verify_unit(fetched)

    assert storage.put_unit(unit, "s3-unit") == uri
    with pytest.raises(UnitAlreadyStored):
        storage.put_unit(other, "s3-unit")
    storage.delete(uri)
    assert not storage.exists(uri) and "Contents" not in s3.list_objects_v2(Bucket="units")


def test_s3_an_interrupted_upload_is_not_a_stored_unit(s3, make_unit):
    """manifest.json goes last: files without it are not a unit, and the next put completes them."""
    unit = make_unit("half")
    s3.put_object(Bucket="units", Key="half/adapter/adapter_model.safetensors", Body=b"partial")
    storage = S3Storage("units", client=s3)
    assert not storage.exists("s3://units/half")
    uri = storage.put_unit(unit, "half")
    body = s3.get_object(Bucket="units", Key="half/adapter/adapter_model.safetensors")["Body"].read()
    assert storage.exists(uri) and body == (unit / "adapter" / "adapter_model.safetensors").read_bytes()


def test_s3_registry_end_to_end(s3, settings, make_unit, db, tmp_path):
    from adapters_store.services import adapter_register, adapter_verify_stored
    from service.accounts.roles import SYSTEM

    settings.ADAPTERS_STORE_URL = "s3://units/registry"
    version = adapter_register(unit_dir=make_unit("via-s3"), actor=SYSTEM, certificate_passed=True)
    assert version.storage_uri == "s3://units/registry/via-s3"
    verified = adapter_verify_stored(version=version, dest_dir=tmp_path / "gateway")
    assert verified.manifest.digest == version.manifest_sha256
