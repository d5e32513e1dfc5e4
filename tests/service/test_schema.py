"""The OpenAPI schema (/api/schema/) and the Swagger UI (/api/docs/), served without any CDN."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_schema_validates_without_warnings(tmp_path):
    """Exactly what CI runs: any drf-spectacular warning (an unnamed component, an unresolvable
    serializer, a collision) fails it."""
    out = tmp_path / "schema.yml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "service.config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "/api/v1/requests/{request_id}/cancel:" in out.read_text()


@pytest.fixture(scope="module")
def schema():
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_public_and_lists_every_operation(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations >= {
        ("/api/v1/requests", "get"),
        ("/api/v1/requests", "post"),
        ("/api/v1/requests/{request_id}", "get"),
        ("/api/v1/requests/{request_id}/cancel", "post"),
        ("/api/v1/requests/{request_id}/approve", "post"),
        ("/api/v1/requests/{request_id}/reject", "post"),
        ("/api/v1/requests/{request_id}/extend-deadline", "post"),
        ("/api/v1/requests/bulk-decide", "post"),
    }


def test_schema_documents_the_contract(schema):
    create = schema["paths"]["/api/v1/requests"]["post"]
    assert "202" in create["responses"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    for status in ("400", "401", "403", "409", "413", "415"):
        assert "application/problem+json" in create["responses"][status]["content"], status
    assert create["requestBody"]["content"]["application/json"]["examples"]
    body = schema["components"]["schemas"]["RequestCreateInputRequest"]
    assert set(body["required"]) == {"subject_name", "subject_email", "regulation", "facts"}
    assert body["properties"]["facts"]["maxItems"] == 50
    listing = schema["paths"]["/api/v1/requests"]["get"]
    assert {"status", "regulation", "overdue", "due_within_days", "page", "page_size"} <= {p["name"] for p in listing["parameters"]}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("PaginatedRequestRepresentationList")
    assert schema["components"]["securitySchemes"]["apiKey"] == {**schema["components"]["securitySchemes"]["apiKey"], "type": "http", "scheme": "bearer"}
    representation = schema["components"]["schemas"]["RequestRepresentation"]["properties"]
    assert "subject_email_hash" in representation and "facts_count" in representation
    assert not {"subject_name", "subject_email", "facts"} & set(representation)


def test_yaml_schema_is_served_too():
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert b"openapi: 3" in response.content


def test_swagger_ui_page_loads_its_assets_from_this_server():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert '<script src="/api/docs/?script=">' in html  # its start-up script is a file (Content-Security-Policy)
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
    assert "<script>" not in html
    assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), html
    for asset in assets:
        assert finders.find(asset), f"static asset {asset} is not shipped"
