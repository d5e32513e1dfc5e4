"""The Celery application; settings come from Django settings (CELERY_* names).

It lives here, in the lowest layer, so that every layer can send tasks by name
(`app.send_task("workers.tasks...")`) without importing the worker code or service.config;
`celery -A service.config` finds it through service/config/celery.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.config.settings")

# DjangoTask gives delay_on_commit: jobs are enqueued only after the transaction commits.
app = Celery("forget", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "service.webhooks"], related_name="tasks")
