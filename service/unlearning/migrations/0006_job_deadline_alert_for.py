"""UnlearningJob.deadline_alert_for: the deadline a deadline-at-risk alert was about, so that a job
whose deadline is extended and then at risk again is alerted again (it was alerted only once per
job). Jobs alerted before this migration are taken to have been alerted about their request's
deadline of now, so none of them is alerted a second time for the same deadline."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    job_model = apps.get_model("unlearning", "UnlearningJob")
    request_model = apps.get_model("requests", "ErasureRequest")
    deadline = request_model.objects.filter(pk=OuterRef("request_id")).values("deadline_at")[:1]
    job_model.objects.filter(deadline_alert_at__isnull=False).update(deadline_alert_for=Subquery(deadline))


class Migration(migrations.Migration):
    dependencies = [
        ("unlearning", "0005_job_scheduling"),
        ("requests", "0003_merge_needs_review_and_code_guesses"),
    ]

    operations = [
        migrations.AddField(
            model_name="unlearningjob",
            name="deadline_alert_for",
            field=models.DateTimeField(
                blank=True, help_text="The deadline that alert was about: an extended deadline at risk again is alerted again.", null=True
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
