"""Web code never imports torch: the registry and the manifest checks it uses load without it."""

from __future__ import annotations

from tests.import_probe import heavy_modules_loaded_by


def test_registry_and_unit_manifest_import_no_torch():
    modules = [
        "workers.engine.unit_manifest",
        "adapters_store.api",
        "adapters_store.models",
        "adapters_store.selectors",
        "adapters_store.services",
        "adapters_store.storage",
        "adapters_store.urls",
        "adapters_store.urls_api",
        "adapters_store.views",
        "adapters_store.management.commands.registry_register",
        "adapters_store.management.commands.registry_verify",
    ]
    assert heavy_modules_loaded_by(modules) == []


def test_unit_manifest_uses_the_engines_file_names():
    from workers.engine import training, unit_manifest

    assert (unit_manifest.ADAPTER_CONFIG_NAME, unit_manifest.ADAPTER_WEIGHTS_NAME) == (training.ADAPTER_CONFIG_NAME, training.ADAPTER_WEIGHTS_NAME)


def test_artifacts_re_exports_the_manifest_api():
    from workers.engine import artifacts, unit_manifest

    for name in ("Manifest", "UnitIntegrityError", "UnitCompatibilityError", "verify_unit", "sha256_file", "hash_forget_set", "FORMAT_VERSION"):
        assert getattr(artifacts, name) is getattr(unit_manifest, name)
