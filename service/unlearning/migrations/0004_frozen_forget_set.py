# The Django model of a frozen forget set was called ForgetSet like the engine's class; renamed
# FrozenForgetSet (issue 13: one name per thing). The engine package moved to workers/engine.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("unlearning", "0003_job_options_and_remediation"),
    ]

    operations = [
        migrations.RenameModel(old_name="ForgetSet", new_name="FrozenForgetSet"),
        migrations.AlterField(
            model_name="frozenforgetset",
            name="content_hash",
            field=models.CharField(help_text="SHA-256 of the items (workers.engine.unit_manifest.hash_forget_set).", max_length=64),
        ),
    ]
