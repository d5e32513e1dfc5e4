from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_apiclient_rate_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="apiclient",
            name="webhook_events",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
