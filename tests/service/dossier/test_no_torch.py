"""Web code never imports torch: the dossier's pages, API, signing and command load without it, and
without numpy or matplotlib until a plot is drawn."""

from __future__ import annotations

from tests.import_probe import heavy_modules_loaded_by


def test_the_dossiers_web_side_imports_no_torch_and_no_plotting_library():
    modules = [
        "service.dossier.api",
        "service.dossier.documents",
        "service.dossier.plots",
        "service.dossier.selectors",
        "service.dossier.services",
        "service.dossier.signing",
        "service.dossier.views",
        "service.dossier.templatetags.dossier",
        "service.dossier.management.commands.certificate_verify",
    ]
    assert heavy_modules_loaded_by(modules, heavy=("torch", "transformers", "peft", "numpy", "matplotlib")) == []
