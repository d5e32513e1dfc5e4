"""Fills ApiClient.webhook_events (accounts 0003) from the endpoints that exist."""

from django.db import migrations


def fill(apps, schema_editor):
    ApiClient = apps.get_model("accounts", "ApiClient")
    WebhookEndpoint = apps.get_model("webhooks", "WebhookEndpoint")
    events: dict[int, set[str]] = {}
    for client_id, endpoint_events in WebhookEndpoint.objects.filter(is_active=True).values_list("api_client_id", "events"):
        events.setdefault(client_id, set()).update(endpoint_events)
    for client_id, types in events.items():
        ApiClient.objects.filter(pk=client_id).update(webhook_events=sorted(types))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_apiclient_webhook_events"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
