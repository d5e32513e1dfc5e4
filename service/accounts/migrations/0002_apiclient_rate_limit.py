from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apiclient",
            name="rate_limit",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
    ]
