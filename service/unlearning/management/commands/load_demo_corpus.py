"""python manage.py load_demo_corpus [--model-dir DIR]: the demo world's training documents into the
training-corpus index, which the forget-set builder searches for a subject's name and email."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from service.unlearning.services import corpus_documents_load

SOURCE_PREFIX = "demo-world:"


class Command(BaseCommand):
    help = (
        "Load the training corpus of the demo model (its world.json: profiles and QA pairs) into the "
        "corpus index that forget sets are built from. Loading again replaces the demo documents."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model-dir",
            type=Path,
            help="demo model directory (default: BASE_MODEL_DIR, else the demo model of FORGET_DEMO_PRESET, built if needed)",
        )

    def handle(self, *args, **options):
        from workers.engine.world import load_world

        model_dir = options["model_dir"] or (Path(settings.BASE_MODEL_DIR) if settings.BASE_MODEL_DIR else None)
        if model_dir is None:
            from workers.runtime import base_model_dir

            self.stdout.write(f"building (or reusing) the '{settings.FORGET_DEMO_PRESET}' demo model ...")
            model_dir = base_model_dir()
        world_file = Path(model_dir) / "world.json"
        if not world_file.is_file():
            raise CommandError(f"{model_dir} has no world.json: it is not a demo model, and its corpus must be loaded by the operator")
        world = load_world(world_file)
        source = f"{SOURCE_PREFIX}{world.digest()[:12]}"
        documents = [(f"{example.kind}-{index:05d}", example.kind, example.text) for index, example in enumerate(world.training_examples())]
        count = corpus_documents_load(source=source, documents=documents, replaces_prefix=SOURCE_PREFIX)
        self.stdout.write(self.style.SUCCESS(f"loaded {count} documents of {model_dir} as corpus {source}"))
