"""Web code never imports torch: the playground, the gateway's views, URLconf, server and registry
watcher load without it (only service.inference.engine, which run_gateway imports, needs torch)."""

from __future__ import annotations

from tests.import_probe import heavy_modules_loaded_by


def test_web_side_of_the_gateway_imports_no_torch():
    modules = [
        "service.inference.api",
        "service.inference.auth",
        "service.inference.batcher",
        "service.inference.client",
        "service.inference.gateway",
        "service.inference.openai_errors",
        "service.inference.protocol",
        "service.inference.server",
        "service.inference.urls",
        "service.inference.urls_gateway",
        "service.inference.views",
        "service.inference.watcher",
        "service.inference.management.commands.run_gateway",
    ]
    assert heavy_modules_loaded_by(modules, urlconfs=(None, "service.inference.urls_gateway")) == []
