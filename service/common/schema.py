"""OpenAPI schema conventions shared by every API module (drf-spectacular).

- Serializers nested in an API class (HackSoft style: `RequestCreateApi.InputSerializer`) get
  component names from the class they live in (`RequestCreateInput`), so two operations' nested
  `InputSerializer`s never collide in the schema.
- `Authorization: Bearer <key>` (service.accounts.authentication) is documented as an HTTP bearer
  scheme.
- `problem_responses()` documents the RFC 9457 error bodies with their media type.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from .problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE
from .serializers import StrictSerializer

# Regular expressions (ECMA 262, as JSON Schema reads them) for text fields in request bodies.
NON_BLANK_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"
NO_NUL_TEXT = r"^[^\x00]*$"


class AutoSchema(_SpectacularAutoSchema):
    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        """A body a StrictSerializer reads refuses unknown fields: the schema says so
        (`additionalProperties: false`), so that clients and generated tests know it too."""
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(serializer, StrictSerializer) and schema.get("type") == "object":
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """A text field the server trims and refuses blank (DRF's CharField defaults) must hold more
        than whitespace, and no field takes a NUL character: the pattern says both, so a string
        the schema allows is one the server accepts."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.CharField) and not isinstance(field, (serializers.EmailField, serializers.ChoiceField)):
            if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema and "enum" not in schema:
                schema["pattern"] = NON_BLANK_TEXT if (field.trim_whitespace and not field.allow_blank) else NO_NUL_TEXT
        return schema

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        parts = qualname.split(".")
        if len(parts) == 2 and "<" not in qualname:
            outer, inner = parts
            outer = outer[: -len("Api")] if outer.endswith("Api") else outer
            inner = inner[: -len("Serializer")] if inner.endswith("Serializer") else inner
            return outer + inner
        return super().get_serializer_name(serializer, direction)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "service.accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "fk_<prefix>_<secret>",
            "description": "An API client's secret key, printed once by `manage.py create_api_client`.",
        }


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Dotted path of the offending field, e.g. `facts.0`; empty for the body as a whole.")
    message = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `required`, `invalid`, `max_length`.")


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, the body of every API error."""

    type = serializers.CharField(help_text=f"{PROBLEM_TYPE_BASE}<code>")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="Stable machine-readable code (see the API documentation).")
    request_id = serializers.CharField(help_text="Also in the X-Request-ID response header; quote it when asking for support.")
    errors = ProblemFieldErrorSerializer(many=True, required=False, help_text="Per-field errors (validation_error and bad_header).")


# Default wording per status; an operation passes its own where it says more.
_DEFAULT_DESCRIPTIONS = {
    400: "Invalid input: `malformed_body`, `validation_error` (see `errors`) or `bad_header`.",
    401: "Missing or invalid credentials (`not_authenticated`, `authentication_failed`); see WWW-Authenticate.",
    403: "Authenticated but not allowed: missing scope or role (`forbidden`).",
    404: "No such resource, or not yours (`not_found`).",
    405: "Method not allowed (`method_not_allowed`).",
    409: "Conflict with the resource's current state (`invalid_transition` and others).",
    413: "Body larger than the configured limit (`body_too_large`).",
    415: "The body is not `application/json` (`unsupported_media_type`).",
    414: "The URL is longer than `FORGET_MAX_URL_BYTES` (`uri_too_long`).",
    429: "Too many calls: this client's quota (`rate_limited`); Retry-After says when to retry.",
    503: "The database or Redis cannot be reached (`service_unavailable`); nothing was changed. Retry-After says when to retry.",
}

_EXAMPLE_PROBLEMS = {
    400: (
        "validation_error",
        "Invalid input",
        "The request has invalid fields; see errors.",
        {"errors": [{"field": "facts", "message": "This field is required.", "code": "required"}]},
    ),
    401: ("not_authenticated", "Authentication required", "Authentication credentials were not provided.", {}),
    403: ("forbidden", "Forbidden", "This API client lacks the 'create' scope.", {}),
    404: ("not_found", "Not found", "No such request.", {}),
    405: ("method_not_allowed", "Method not allowed", 'Method "PUT" not allowed.', {}),
    409: (
        "invalid_transition",
        "Invalid state transition",
        "Request RTBF-7K3M9Q is rejected; it cannot become cancelled.",
        {"current_status": "rejected", "requested_status": "cancelled"},
    ),
    413: ("body_too_large", "Request body too large", "The body has 300000 bytes; the limit is 262144.", {}),
    415: ("unsupported_media_type", "Unsupported media type", 'Unsupported media type "text/plain" in request.', {}),
}


def problem_example(status: int, code: str, title: str, detail: str, **extra) -> dict:
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": "6f1c0c3e9a2b4d0f8e7a5b3c1d9e2f40",
        **extra,
    }


def problem_responses(*statuses: int, descriptions: dict[int, str] | None = None, examples: dict[int, list[OpenApiExample]] | None = None) -> dict:
    """`extend_schema(responses=...)` entries for these error statuses, as application/problem+json."""
    descriptions = descriptions or {}
    examples = examples or {}
    responses = {}
    for status in statuses:
        default_examples = []
        if status in _EXAMPLE_PROBLEMS:
            code, title, detail, extra = _EXAMPLE_PROBLEMS[status]
            default_examples = [
                OpenApiExample(
                    code,
                    value=problem_example(status, code, title, detail, **extra),
                    media_type=PROBLEM_CONTENT_TYPE,
                    status_codes=[str(status)],
                    response_only=True,
                )
            ]
        responses[(status, PROBLEM_CONTENT_TYPE)] = OpenApiResponse(
            response=ProblemSerializer,
            description=descriptions.get(status, _DEFAULT_DESCRIPTIONS.get(status, "Error.")),
            examples=examples.get(status, default_examples),
        )
    return responses


def require_bodies_with_required_fields(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS: a request body whose schema (or each of its `oneOf`
    alternatives) has required properties is itself required; a schema given as a raw dict (like
    bulk-decide's) is not marked so by drf-spectacular."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body:
                continue
            for media in body.get("content", {}).values():
                schema = media.get("schema", {})
                alternatives = schema.get("oneOf") or [schema]
                if all(alternative.get("required") for alternative in alternatives):
                    body["required"] = True
    return result
