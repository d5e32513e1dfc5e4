from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("requests", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="erasurerequest",
            name="code_guesses_used",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
