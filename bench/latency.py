"""Latency of gated inference with 0 to 1000 active unlearning units (issue 3, item 10; EVAL.md "Cost").

    .venv/bin/python bench/latency.py                   # demo model; about 3 minutes on 2 busy cores
    .venv/bin/python bench/latency.py --model tiny      # the tiny demo model
    .venv/bin/python bench/latency.py --sizes 0,1,10,100,1000 --prompts 16 --batch 16 --rounds 3

Everything is measured in one run. Each round first times the gate costs, then generation; inside
each, for every prompt (or batch) every configuration is timed back to back in a rotated order, so
bursts of load from other jobs hit all configurations alike. Absolute figures are medians over
rounds and prompts; ratios between configurations are medians of per-prompt ratios of timings
taken back to back ("paired").

(a) Gate cost per prompt: GatedModel.resolve_weights -> DetectorBank.score (one shared encoder
    pass over the prompt's windows, stacked scoring of all units, column matching), for single
    prompts and for batches of --batch prompts; and the encoder pass alone.
(b) End-to-end greedy generation through GatedModel.generate, gate included: latency p50/p95 per
    prompt and tokens/s, single prompts and batches. Also generation alone (the detectors' weights
    computed first and passed in), with the time inside model.generate (the forward passes and the
    gate's hooks, where adapter compute would happen) recorded apart from the gate's per-call
    bookkeeping; and with every loaded unit forced on, to show what zero weights save.
(c) The base model: the same generate_answers the gate uses, with no gate call active. The gates
    of all sizes stay open for the whole run so that timings can alternate per prompt; so every
    timing, the base model's included, runs with the same idle hooks of the other gates. What those
    idle hooks cost is measured at the end against the bare model (no hooks).
(d) The reference design, in which every unit scores the prompt with its own encoder pass. O3's
    reference runs a per-request LoRA'd encoder for every request, at batch size 1; a merged LoRA
    copy costs the same FLOPs as the shared encoder, so the emulation is a GatedModel without a
    bank: each unit's own Detector.weights runs the shared encoder once per unit per prompt. That
    flatters the reference, which would also hold one encoder copy (about 90 MB) per request.
    Its gate cost is measured up to --reference-max units and extrapolated linearly beyond
    (labelled as such); its end-to-end latency is estimated as its gate cost plus generation alone.

Units: the first --real-units are real: a LoRA trained with train_unit_adapter (a few epochs) and a
detector fitted with train_detector, each on one demo person's forget set. The others are
SYNTHETIC: random LoRA A/B of the real shapes, and detectors cloned from the fitted ones with their
stored features and mean moved by a random signed permutation of the coordinates (an orthogonal
map: the Woodbury core, SVM and calibration stay exact for the moved forget set). They have the
real arrays' shapes and cost, and stand for requests about people the prompts never mention.

Prompts: the timed prompt set is unrelated to every unit (questions about other demo people and
general facts), the common case in service; the detectors' weights on it are recorded (zero
expected), so gated answers equal the base model's and the token counts match. A few "targeted"
prompts (held-out paraphrases about the real units' people) check, untimed, that the real units
still fire with 1000 units loaded.

Writes JSON (--out) and a PNG plot beside it, and prints markdown tables.
"""

from __future__ import annotations

import os

# Before torch loads OpenMP: spinning OpenMP threads make runs on shared, busy cores much slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import resolve_model  # noqa: E402
from workers.engine.base_model import BaseModel, load_base_model  # noqa: E402
from workers.engine.config import UnlearnConfig  # noqa: E402
from workers.engine.demo_model import (  # noqa: E402
    WORLD_FILE,
    is_complete,
    load_demo_world,
    read_manifest,
)
from workers.engine.detector import Detector, DetectorBank, DetectorConfig, load_encoder, train_detector  # noqa: E402
from workers.engine.detector.windows import split_all  # noqa: E402
from workers.engine.gate import GatedModel  # noqa: E402
from workers.engine.generation import generate_answers  # noqa: E402
from workers.engine.training import AdapterWeights, LoraModule, train_unit_adapter  # noqa: E402
from workers.engine.world import DemoWorld, build_world  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
TARGET_GROWTH = 1.5  # gate cost per prompt, 1000 units / 1 unit
TARGET_PCT_OF_REFERENCE = 5.0  # gate cost at 100 units, % of the reference design's
ZERO_WEIGHT_TOLERANCE = 1.10  # generation with loaded zero-weight units vs 0 units, ms/token


# ---------------------------------------------------------------------------------------------
# Units: real ones and synthetic ones


class Unit:
    def __init__(self, unit_id: str, adapter: AdapterWeights, detector: Detector, synthetic: bool, person: str = ""):
        self.unit_id, self.adapter, self.detector = unit_id, adapter, detector
        self.synthetic, self.person = synthetic, person


def synthetic_adapter(template: AdapterWeights, generator: torch.Generator) -> AdapterWeights:
    """Random A/B of the template's shapes. B is stored as the transpose of a contiguous [r, d_out]
    tensor, the layout the gate keeps, so add_unit shares the storage instead of copying it."""
    modules = {}
    for name, module in template.modules.items():
        rank, d_in = module.A.shape
        d_out = module.B.shape[0]
        A = torch.randn(rank, d_in, generator=generator) / d_in**0.5
        Bt = torch.randn(rank, d_out, generator=generator) * 0.01
        modules[name] = LoraModule(A=A, B=Bt.T, scaling=module.scaling)
    return AdapterWeights(modules, template.peft_config, template.base_fingerprint)


def synthetic_detector(template: Detector, generator: torch.Generator) -> Detector:
    """A clone of a fitted detector with its stored features and mean moved by a random signed
    permutation of the coordinates (orthogonal, so the fit stays exact for the moved samples)."""
    glocal = template.unit.glocal
    dim = glocal.features.shape[-1]
    perm = torch.randperm(dim, generator=generator)
    signs = torch.randint(0, 2, (dim,), generator=generator).float() * 2 - 1
    moved = replace(
        glocal,
        features=(glocal.features[..., perm] * signs).contiguous(),
        mean=(glocal.mean[..., perm] * signs).contiguous(),
    )
    metadata = {"synthetic": "signed-permutation clone of a fitted detector"}
    return Detector(config=template.config, encoder=template.encoder, layers=template.layers, unit=replace(template.unit, glocal=moved), metadata=metadata)


def build_units(
    base: BaseModel, encoder, world: DemoWorld, targets: list, count: int, train_epochs: int, seed: int, log: Callable[[str], None]
) -> tuple[list[Unit], dict]:
    """`len(targets)` real units (trained adapter + fitted detector), then synthetic ones up to `count`."""
    units: list[Unit] = []
    timings = {"adapter_train_s": [], "detector_fit_s": []}
    for index, person in enumerate(targets):
        pairs = [(qa.question, qa.answer) for qa in world.questions(person, "trained")]
        start = time.perf_counter()
        adapter = train_unit_adapter(base, pairs, UnlearnConfig(epochs=train_epochs, seed=seed + index), previous=[unit.adapter for unit in units])
        timings["adapter_train_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        detector = train_detector([q for q, _ in pairs] + [world.profile(person)], DetectorConfig(), encoder)
        timings["detector_fit_s"].append(time.perf_counter() - start)
        units.append(Unit(f"real-{index}", adapter, detector, synthetic=False, person=person.name))
        log(f"real unit {index} ({person.name}): adapter {timings['adapter_train_s'][-1]:.1f} s, detector {timings['detector_fit_s'][-1]:.1f} s")
    generator = torch.Generator().manual_seed(seed)
    real = list(units)
    for index in range(len(units), count):
        template = real[index % len(real)]
        units.append(
            Unit(f"synthetic-{index}", synthetic_adapter(template.adapter, generator), synthetic_detector(template.detector, generator), synthetic=True)
        )
    return units, timings


# ---------------------------------------------------------------------------------------------
# Measuring


class TokenCounter:
    """Counts the tokens model.generate produces (up to and including each row's first EOS) and
    times the last call: the model's own forward passes, where any adapter compute happens."""

    def __init__(self, model, eos_id: int | None):
        self.tokens, self.last_seconds = 0, 0.0
        self._model, self._eos = model, eos_id
        original = model.generate

        def counting(*args, **kwargs):
            start = time.perf_counter()
            output = original(*args, **kwargs)
            self.last_seconds = time.perf_counter() - start
            new = output[:, kwargs["input_ids"].shape[1] :]
            if self._eos is None:
                self.tokens += new.numel()
            else:
                is_eos = (new == self._eos).long()
                self.tokens += int(((is_eos.cumsum(1) - is_eos) == 0).sum())
            return output

        model.generate = counting  # instance attribute: shadows the class method

    def close(self) -> None:
        del self._model.generate


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def med(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


class Recorder:
    """Samples keyed by (config, measure); a config is 'base' or a unit count."""

    def __init__(self):
        self.samples: dict[tuple, list[float]] = {}
        self.slots: dict[tuple, dict[tuple, float]] = {}
        self.tokens: dict[tuple, int] = {}
        self.seconds: dict[tuple, float] = {}

    def add(self, key: tuple, value: float, slot: tuple | None = None) -> None:
        """`slot` (round, prompt) pairs samples of different configs timed back to back."""
        self.samples.setdefault(key, []).append(value)
        if slot is not None:
            self.slots.setdefault(key, {})[slot] = value

    def add_run(self, key: tuple, seconds: float, tokens: int) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        self.tokens[key] = self.tokens.get(key, 0) + tokens

    def get(self, key: tuple) -> list[float]:
        return self.samples.get(key, [])

    def tokens_per_s(self, key: tuple) -> float | None:
        return self.tokens[key] / self.seconds[key] if self.seconds.get(key) else None

    def ms_per_token(self, key: tuple) -> float | None:
        return 1000 * self.seconds[key] / self.tokens[key] if self.tokens.get(key) else None

    def paired_ratio(self, key: tuple, reference: tuple) -> float | None:
        """Median over slots of key / reference, the two timed back to back on the same prompt."""
        a, b = self.slots.get(key, {}), self.slots.get(reference, {})
        ratios = [a[slot] / b[slot] for slot in a if slot in b and b[slot] > 0]
        return float(np.median(ratios)) if ratios else None


def batches(prompts: list[str], size: int, calls: int) -> list[list[str]]:
    """`calls` batches of `size` prompts, drawn cyclically from `prompts`."""
    return [[prompts[(c * size + i) % len(prompts)] for i in range(size)] for c in range(calls)]


def rotated(items: list, shift: int) -> list:
    shift %= max(1, len(items))
    return items[shift:] + items[:shift]


def open_gates(base: BaseModel, units: list[Unit], banks: dict, sizes: list[int], reference_sizes: list[int]) -> dict:
    """One GatedModel per configuration, all on the same base model. ('ours', n) scores with the bank
    of the first n units and stays open for the whole run, so every generation timing, the base
    model's included, runs with the same set of hooks installed (the idle gates' hooks return at
    once). ('reference', n) has no bank, so every unit's own detector runs its own encoder pass; it
    is only used for resolve_weights, so its hooks are removed at once."""
    gates = {}
    for n in sizes:
        bank = banks[n]
        gate = GatedModel(base, weight_fn=(lambda texts, ids, bank=bank: bank.score(texts)) if n else None)
        for unit in units[:n]:
            gate.add_unit(unit.unit_id, unit.adapter)
        gates[("ours", n)] = gate
    for n in reference_sizes:
        gate = GatedModel(base)
        gate.close()
        for unit in units[:n]:
            gate.add_unit(unit.unit_id, unit.adapter, unit.detector)
        gates[("reference", n)] = gate
    return gates


def measure_gate_round(round_index: int, gates: dict, encoder, layers, prompts: list[str], rec: Recorder, args) -> None:
    """(a) and (d): per-prompt gate cost (resolve_weights: the detector side of a call, no model
    forward pass). For every prompt every configuration is timed back to back, in a rotated order,
    so a burst of load from other jobs hits all sizes alike."""
    configs = [("encoder", 0)] + list(gates)
    for index, prompt in enumerate(prompts):
        slot = (round_index, index)
        for config in rotated(configs, round_index * len(prompts) + index):
            kind, n = config
            if kind == "encoder":
                windows, _ = split_all([prompt], args.window_words, args.window_stride)
                rec.add(("encoder", "single"), timed(lambda: encoder.layer_features(windows, layers))[0])
            elif kind == "ours":
                rec.add((n, "gate_single"), timed(lambda: gates[config].resolve_weights([prompt]))[0], slot)
            elif index < args.reference_prompts:  # the reference design, batch size 1 as in O3's code
                rec.add((n, "ref_gate_single"), timed(lambda: gates[config].resolve_weights([prompt]))[0], slot)
    batch_configs = [("encoder", 0)] + [config for config in gates if config[0] == "ours"]
    for index, chunk in enumerate(batches(prompts, args.batch, args.batch_calls)):
        for config in rotated(batch_configs, round_index + index):
            kind, n = config
            if kind == "encoder":
                windows, _ = split_all(chunk, args.window_words, args.window_stride)
                rec.add(("encoder", "batch"), timed(lambda: encoder.layer_features(windows, layers))[0] / len(chunk))
            else:
                rec.add((n, "gate_batch"), timed(lambda: gates[config].resolve_weights(chunk))[0] / len(chunk), (round_index, "batch", index))


def measure_generation_round(
    round_index: int, gates: dict, base: BaseModel, counter: TokenCounter, prompts: list[str], weights: dict, rec: Recorder, args
) -> None:
    """(b), (c) and the reference end to end, interleaved per prompt like the gate costs.

    e2e: GatedModel.generate with the detectors deciding (gate included); gen_only: the same with
    the weights computed beforehand and passed in (generation alone); forced_on: every loaded unit
    at weight 1. The base model runs generate_answers, as the gate does, with no call active."""
    new_tokens = args.max_new_tokens

    def run(key: tuple, fn: Callable[[], Any]) -> tuple[float, int, Any]:
        before = counter.tokens
        seconds, result = timed(fn)
        tokens = counter.tokens - before
        rec.add_run(key, seconds, tokens)
        return seconds, tokens, result

    configs = ["base"] + [config for config in gates if config[0] == "ours"]
    for index, prompt in enumerate(prompts):
        slot = (round_index, index)
        for config in rotated(configs, round_index * len(prompts) + index):
            if config == "base":
                seconds, _, _ = run(("base", "e2e_single"), lambda: generate_answers(base.model, base.tokenizer, [prompt], max_new_tokens=new_tokens))
                rec.add(("base", "e2e_single"), seconds, slot)
                continue
            kind, n = config
            gate = gates[config]
            seconds, _, answers = run((n, "e2e_single"), lambda: gate.generate([prompt], max_new_tokens=new_tokens))
            rec.add((n, "e2e_single"), seconds, slot)
            rec.add((n, "nonzero_weights"), sum(1 for w in answers[0].weights.values() if w > 0))
            row = weights[config][index : index + 1]
            seconds, _, _ = run((n, "gen_only"), lambda: gate.generate([prompt], max_new_tokens=new_tokens, weights=row))
            rec.add((n, "gen_only"), seconds, slot)
            rec.add((n, "gen_only_model"), counter.last_seconds, slot)  # inside model.generate only
            if n and index < args.forced_prompts:
                seconds, _, _ = run((n, "forced_on"), lambda: gate.generate([prompt], max_new_tokens=new_tokens, force="on"))
                rec.add((n, "forced_on"), seconds, slot)
    batch_configs = ["base"] + [config for config in gates if config[0] == "ours"]
    for index, chunk in enumerate(batches(prompts, args.batch, args.batch_calls)):
        slot = (round_index, "batch", index)
        for config in rotated(batch_configs, round_index + index):
            if config == "base":
                seconds, _, _ = run(
                    ("base", "e2e_batch"), lambda: generate_answers(base.model, base.tokenizer, chunk, max_new_tokens=new_tokens, batch_size=len(chunk))
                )
                rec.add(("base", "e2e_batch_call"), seconds, slot)
            else:
                seconds, _, _ = run((config[1], "e2e_batch"), lambda: gates[config].generate(chunk, max_new_tokens=new_tokens, batch_size=len(chunk)))
                rec.add((config[1], "e2e_batch_call"), seconds, slot)


def check_targeted(gates: dict, units: list[Unit], targeted: list[str], rec: Recorder, args) -> None:
    """Held-out paraphrases about the real units' people: do those units still fire (w > 0.5) with
    n units loaded, and does any synthetic unit fire? (Not timed. Whether the answers change is
    bench/unlearning.py's business: the units here are trained for a few epochs only.)"""
    for (kind, n), gate in gates.items():
        if kind != "ours" or not n or not targeted:
            continue
        answers = gate.generate(targeted, max_new_tokens=args.max_new_tokens)
        real = [u.unit_id for u in units[:n] if not u.synthetic]
        fired = [max((answer.weights[uid] for uid in real), default=0.0) > 0.5 for answer in answers]
        rec.add((n, "targeted_fired"), float(np.mean(fired)))
        rec.add((n, "targeted_synthetic_nonzero"), sum(1 for answer in answers for uid, w in answer.weights.items() if w > 0 and uid.startswith("synthetic")))


def measure_hook_overhead(base: BaseModel, gate_count: int, prompts: list[str], rounds: int, args) -> dict:
    """What the idle hooks of `gate_count` gates (present in every timing above) add to the base
    model: bare (no hooks) vs the same number of empty gates, alternating per prompt."""
    bare, idle = [], []
    for round_index in range(rounds):
        for index, prompt in enumerate(prompts):
            pair = {}
            for kind in rotated(["bare", "idle"], round_index + index):
                gates = [GatedModel(base) for _ in range(gate_count)] if kind == "idle" else []
                seconds, _ = timed(lambda: generate_answers(base.model, base.tokenizer, [prompt], max_new_tokens=args.max_new_tokens))
                pair[kind] = 1000 * seconds
                for gate in gates:
                    gate.close()
            bare.append(pair["bare"])
            idle.append(pair["idle"])
    ratios = [i / b for i, b in zip(idle, bare)]
    return {"gates": gate_count, "bare_p50_ms": med(bare), "idle_hooks_p50_ms": med(idle), "ratio": med(ratios) if ratios else None}


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares y = a + b x."""
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    b, a = np.polyfit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), 1)
    return float(a), float(b)


# ---------------------------------------------------------------------------------------------
# Reporting


def summarise(rec: Recorder, sizes: list[int], units: list[Unit], reference_sizes: list[int], args) -> dict:
    ms = lambda values: [1000 * v for v in values]  # noqa: E731
    base_single = ms(rec.get(("base", "e2e_single")))
    base_batch_calls = ms(rec.get(("base", "e2e_batch_call")))
    base = {
        "single": {
            "p50_ms": med(base_single),
            "p95_ms": pct(base_single, 95),
            "tokens_per_s": rec.tokens_per_s(("base", "e2e_single")),
            "ms_per_token": rec.ms_per_token(("base", "e2e_single")),
        },
        "batched": {
            "batch": args.batch,
            "call_p50_ms": med(base_batch_calls),
            "call_p95_ms": pct(base_batch_calls, 95),
            "ms_per_prompt": med(base_batch_calls) / args.batch if base_batch_calls else None,
            "tokens_per_s": rec.tokens_per_s(("base", "e2e_batch")),
        },
    }
    encoder = {"single_ms_per_prompt": med(ms(rec.get(("encoder", "single")))), "batch_ms_per_prompt": med(ms(rec.get(("encoder", "batch"))))}

    # the reference design: measured sizes, then a linear fit for the others
    measured_ref = {n: med(ms(rec.get((n, "ref_gate_single")))) for n in reference_sizes}
    fit_sizes = [n for n in reference_sizes if n > 0]
    gate_fit = linear_fit(fit_sizes, [measured_ref[n] for n in fit_sizes]) if fit_sizes else None

    rows = []
    for n in sizes:
        gate_single, gate_batch = ms(rec.get((n, "gate_single"))), ms(rec.get((n, "gate_batch")))
        single, batch_calls = ms(rec.get((n, "e2e_single"))), ms(rec.get((n, "e2e_batch_call")))
        row: dict[str, Any] = {
            "units": n,
            "real_units": sum(1 for u in units[:n] if not u.synthetic),
            "synthetic_units": sum(1 for u in units[:n] if u.synthetic),
            "gate_ms_per_prompt": {"single": med(gate_single), "batch": med(gate_batch), "single_p95": pct(gate_single, 95)},
            "e2e": {
                "single": {"p50_ms": med(single), "p95_ms": pct(single, 95), "tokens_per_s": rec.tokens_per_s((n, "e2e_single"))},
                "batched": {
                    "batch": args.batch,
                    "call_p50_ms": med(batch_calls),
                    "call_p95_ms": pct(batch_calls, 95),
                    "ms_per_prompt": med(batch_calls) / args.batch if batch_calls else None,
                    "tokens_per_s": rec.tokens_per_s((n, "e2e_batch")),
                },
            },
            # the detectors' weights passed in: generation alone, no detector pass
            "generation_only": {
                "p50_ms": med(ms(rec.get((n, "gen_only")))),
                "ms_per_token": rec.ms_per_token((n, "gen_only")),
                "vs_0_units": rec.paired_ratio((n, "gen_only"), (0, "gen_only")),
                # model.generate alone (the hooks, where adapters would run), without
                # the gate's per-call bookkeeping (unit-id tuples, per-answer weight dicts)
                "model_p50_ms": med(ms(rec.get((n, "gen_only_model")))),
                "model_vs_0_units": rec.paired_ratio((n, "gen_only_model"), (0, "gen_only_model")),
                "vs_base": rec.paired_ratio((n, "gen_only"), ("base", "e2e_single")),
            },
            "forced_on": {
                "p50_ms": med(ms(rec.get((n, "forced_on")))),
                "ms_per_token": rec.ms_per_token((n, "forced_on")),
                "prompts_per_round": args.forced_prompts,
            }
            if n
            else None,
            "nonzero_weights_on_timed_prompts": int(sum(rec.get((n, "nonzero_weights")))),
        }
        if rec.get((n, "targeted_fired")):
            row["targeted"] = {
                "prompts": len(args.targeted_list),
                "fired": med(rec.get((n, "targeted_fired"))),
                "synthetic_nonzero": int(max(rec.get((n, "targeted_synthetic_nonzero")))),
            }
        # median of per-prompt ratios, each pair timed back to back (robust to load from other jobs)
        row["gated_over_base"] = {
            "single": rec.paired_ratio((n, "e2e_single"), ("base", "e2e_single")),
            "batched": rec.paired_ratio((n, "e2e_batch_call"), ("base", "e2e_batch_call")),
        }
        if n in measured_ref:
            row["reference_gate_ms_per_prompt"], row["reference_extrapolated"] = measured_ref[n], False
            # median of per-prompt ratios, ours and the reference timed back to back
            paired = rec.paired_ratio((n, "gate_single"), (n, "ref_gate_single"))
            row["gate_pct_of_reference"] = None if paired is None else 100 * paired
        elif gate_fit is not None and n:
            row["reference_gate_ms_per_prompt"], row["reference_extrapolated"] = gate_fit[0] + gate_fit[1] * n, True
            row["gate_pct_of_reference"] = 100 * row["gate_ms_per_prompt"]["single"] / row["reference_gate_ms_per_prompt"]
        if row.get("reference_gate_ms_per_prompt") is not None:
            # estimated, not timed: on these prompts every weight is 0, so after its gate the
            # reference generates exactly as the base model does
            row["reference_e2e_p50_ms_estimated"] = row["reference_gate_ms_per_prompt"] + row["generation_only"]["p50_ms"]
        rows.append(row)
    by_n = {row["units"]: row for row in rows}
    ones = by_n.get(1)
    for row in rows:
        if ones and row["units"]:  # medians of per-prompt (per-batch) ratios, timed back to back
            row["gate_growth_vs_1"] = {
                "single": rec.paired_ratio((row["units"], "gate_single"), (1, "gate_single")),
                "batch": rec.paired_ratio((row["units"], "gate_batch"), (1, "gate_batch")),
            }
        if row["units"]:
            row["batch_over_single_gate"] = row["gate_ms_per_prompt"]["batch"] / row["gate_ms_per_prompt"]["single"]
    return {"base": base, "encoder_pass": encoder, "rows": rows, "reference_fit_ms": {"gate_intercept_slope": gate_fit, "measured_sizes": reference_sizes}}


def targets(summary: dict) -> dict:
    by_n = {row["units"]: row for row in summary["rows"]}
    out: dict[str, Any] = {}
    if 1 in by_n and 1000 in by_n:
        growth = by_n[1000]["gate_growth_vs_1"]
        out["gate_growth_1_to_1000"] = {
            "single": growth["single"],
            "batch": growth["batch"],
            "target": TARGET_GROWTH,
            "met": max(growth.values()) <= TARGET_GROWTH,
        }
    if 100 in by_n and "gate_pct_of_reference" in by_n[100]:
        value = by_n[100]["gate_pct_of_reference"]
        out["gate_pct_of_reference_at_100"] = {
            "value": value,
            "target": TARGET_PCT_OF_REFERENCE,
            "reference_extrapolated": by_n[100]["reference_extrapolated"],
            "met": value <= TARGET_PCT_OF_REFERENCE,
        }
    largest = max(by_n)
    if 0 in by_n and largest:
        big = by_n[largest]
        ratio = big["generation_only"]["model_vs_0_units"]
        out["zero_weight_units_add_no_adapter_compute"] = {
            "units": largest,
            "nonzero_weights": big["nonzero_weights_on_timed_prompts"],
            "measure": "model.generate time (forward passes with the gate's hooks), paired per prompt",
            "call_ratio": big["generation_only"]["vs_0_units"],
            "generation_p50_ms_0_units": by_n[0]["generation_only"]["p50_ms"],
            "generation_p50_ms_loaded": big["generation_only"]["p50_ms"],
            "ratio": ratio,
            "tolerance": ZERO_WEIGHT_TOLERANCE,
            "ms_per_token_0_units": by_n[0]["generation_only"]["ms_per_token"],
            "ms_per_token_loaded": big["generation_only"]["ms_per_token"],
            "ms_per_token_forced_on": big["forced_on"]["ms_per_token"],
            "met": big["nonzero_weights_on_timed_prompts"] == 0 and ratio is not None and ratio <= ZERO_WEIGHT_TOLERANCE,
        }
    ratios = {row["units"]: row["batch_over_single_gate"] for row in summary["rows"] if row["units"]}
    if ratios:
        out["batch_amortises_encoder"] = {"batch_over_single": ratios, "met": max(ratios.values()) < 1.0}
    return out


def fmt(value, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(summary: dict, target_results: dict, args) -> str:
    base, b = summary["base"], args.batch
    lines = [
        "Gate cost per prompt (detector side of a call: encoder pass + all units' scoring), p50:",
        "",
        f"| active units (real + synthetic) | ours, single prompts ms | ours, batches of {b} ms/prompt "
        f"| x 1 unit, single / batch | reference design ms (batch 1) | ours % of reference |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        n = row["units"]
        growth = row.get("gate_growth_vs_1")
        ref = row.get("reference_gate_ms_per_prompt")
        ref_text = "-" if ref is None or not n else fmt(ref) + (" (extrapolated)" if row.get("reference_extrapolated") else "")
        lines.append(
            f"| {n} ({row['real_units']} + {row['synthetic_units']}) "
            f"| {fmt(row['gate_ms_per_prompt']['single'], 2)} | {fmt(row['gate_ms_per_prompt']['batch'], 2)} "
            f"| {'-' if not growth else fmt(growth['single'], 2) + ' / ' + fmt(growth['batch'], 2)} "
            f"| {ref_text} | {fmt(row.get('gate_pct_of_reference'), 2, '%') if n else '-'} |"
        )
    lines += [
        "",
        f"End-to-end greedy generation (at most {args.max_new_tokens} new tokens; gate included), on prompts that concern no unit's person:",
        "",
        f"| active units | single: p50 / p95 ms | single tok/s | batch of {b}: call p50 / p95 ms | batch ms/prompt "
        f"| batch tok/s | gated / base, single / batch | generation alone p50 ms (x 0 units: call / model) "
        f"| forced on: ms/token (generation alone: ms/token) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| base model | {fmt(base['single']['p50_ms'])} / {fmt(base['single']['p95_ms'])} "
        f"| {fmt(base['single']['tokens_per_s'], 0)} | {fmt(base['batched']['call_p50_ms'])} / "
        f"{fmt(base['batched']['call_p95_ms'])} | {fmt(base['batched']['ms_per_prompt'], 2)} "
        f"| {fmt(base['batched']['tokens_per_s'], 0)} | 1 / 1 | - | - |",
    ]
    for row in summary["rows"]:
        e2e, gen, forced = row["e2e"], row["generation_only"], row.get("forced_on")
        forced_text = "-" if not forced else f"{fmt(forced['ms_per_token'], 2)} ({fmt(gen['ms_per_token'], 2)})"
        lines.append(
            f"| {row['units']} | {fmt(e2e['single']['p50_ms'])} / {fmt(e2e['single']['p95_ms'])} "
            f"| {fmt(e2e['single']['tokens_per_s'], 0)} | {fmt(e2e['batched']['call_p50_ms'])} / "
            f"{fmt(e2e['batched']['call_p95_ms'])} | {fmt(e2e['batched']['ms_per_prompt'], 2)} "
            f"| {fmt(e2e['batched']['tokens_per_s'], 0)} "
            f"| {fmt(row['gated_over_base']['single'], 2)} / {fmt(row['gated_over_base']['batched'], 2)} "
            f"| {fmt(gen['p50_ms'])} ({fmt(gen['vs_0_units'], 2)}x / {fmt(gen['model_vs_0_units'], 2)}x) | {forced_text} |"
        )
    enc = summary["encoder_pass"]
    hooks = summary.get("hook_overhead")
    if hooks:
        lines += [
            "",
            f"All rows ran with the hooks of the {hooks['gates']} gates of this run installed (idle but one), "
            f"which changes the base model's single-prompt latency by {100 * (hooks['ratio'] - 1):+.1f}% "
            f"(paired; {fmt(hooks['idle_hooks_p50_ms'])} vs {fmt(hooks['bare_p50_ms'])} ms bare, p50); "
            f"a deployment has one gate.",
        ]
    lines += [
        "",
        f"Encoder pass alone (paid once per gate call with >= 1 unit, for any number of units): "
        f"{fmt(enc['single_ms_per_prompt'], 2)} ms/prompt single, {fmt(enc['batch_ms_per_prompt'], 2)} "
        f"ms/prompt in batches of {b}.",
        "",
        "| target | value | met |",
        "|---|---|---|",
    ]
    t = target_results
    if "gate_growth_1_to_1000" in t:
        g = t["gate_growth_1_to_1000"]
        lines.append(
            f"| gate cost growth 1 -> 1000 units <= {g['target']}x | {g['single']:.2f}x single, {g['batch']:.2f}x batch {b} | {'yes' if g['met'] else 'NO'} |"
        )
    if "gate_pct_of_reference_at_100" in t:
        g = t["gate_pct_of_reference_at_100"]
        label = " (reference extrapolated)" if g["reference_extrapolated"] else ""
        lines.append(f"| gate cost at 100 units <= {g['target']:.0f}% of the reference design's | {g['value']:.2f}%{label} | {'yes' if g['met'] else 'NO'} |")
    if "zero_weight_units_add_no_adapter_compute" in t:
        g = t["zero_weight_units_add_no_adapter_compute"]
        lines.append(
            f"| zero-weight units add no adapter compute ({g['units']} loaded, {g['nonzero_weights']} non-zero "
            f"weights on the timed prompts; model forward time vs 0 units <= {g['tolerance']:.2f}x) "
            f"| {fmt(g['ratio'], 2)}x model forward, {fmt(g['call_ratio'], 2)}x whole call "
            f"({fmt(g['generation_p50_ms_loaded'])} vs {fmt(g['generation_p50_ms_0_units'])} ms p50); "
            f"all {g['units']} forced on: {fmt(g['ms_per_token_forced_on'], 2)} vs "
            f"{fmt(g['ms_per_token_loaded'], 2)} ms/token | {'yes' if g['met'] else 'NO'} |"
        )
    if "batch_amortises_encoder" in t:
        g = t["batch_amortises_encoder"]
        worst = max(g["batch_over_single"].values())
        lines.append(
            f"| batched prompts amortise the encoder (gate ms/prompt, batch {b} / batch 1 < 1) | "
            f"{min(g['batch_over_single'].values()):.2f} to {worst:.2f} | {'yes' if g['met'] else 'NO'} |"
        )
    return "\n".join(lines)


def plot(summary: dict, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in summary["rows"] if row["units"] > 0]
    xs = [row["units"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.plot(xs, [r["gate_ms_per_prompt"]["single"] for r in rows], "o-", label="ours, single prompts")
    left.plot(xs, [r["gate_ms_per_prompt"]["batch"] for r in rows], "s-", label=f"ours, batches of {args.batch}")
    measured = [r for r in rows if r.get("reference_gate_ms_per_prompt") is not None and not r.get("reference_extrapolated")]
    extra = [r for r in rows if r.get("reference_extrapolated")]
    left.plot([r["units"] for r in measured], [r["reference_gate_ms_per_prompt"] for r in measured], "^-", color="tab:red", label="reference design (measured)")
    if extra and measured:
        left.plot(
            [measured[-1]["units"]] + [r["units"] for r in extra],
            [measured[-1]["reference_gate_ms_per_prompt"]] + [r["reference_gate_ms_per_prompt"] for r in extra],
            "^--",
            color="tab:red",
            alpha=0.6,
            label="reference design (extrapolated)",
        )
    if summary["encoder_pass"]["single_ms_per_prompt"]:
        left.axhline(summary["encoder_pass"]["single_ms_per_prompt"], color="black", ls=":", label="encoder pass alone, single")
    left.set_title("gate cost per prompt (detectors)")
    right.axhline(summary["base"]["single"]["p50_ms"], color="black", ls=":", label="base model, single")
    right.axhline(summary["base"]["batched"]["ms_per_prompt"], color="grey", ls=":", label=f"base model, batch {args.batch}")
    right.plot(xs, [r["e2e"]["single"]["p50_ms"] for r in rows], "o-", label="ours, single (p50)")
    right.plot(xs, [r["e2e"]["batched"]["ms_per_prompt"] for r in rows], "s-", label=f"ours, batch {args.batch} (per prompt)")
    ref_rows = [r for r in rows if r.get("reference_e2e_p50_ms_estimated") is not None]
    right.plot(
        [r["units"] for r in ref_rows],
        [r["reference_e2e_p50_ms_estimated"] for r in ref_rows],
        "^--",
        color="tab:red",
        alpha=0.8,
        label="reference design, single (its gate + generation; estimated)",
    )
    right.set_title("end-to-end generation latency per prompt")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("active units (requests)")
        axis.set_ylabel("ms per prompt")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(f"Gated inference latency: {args.model_label}, {torch.get_num_threads()} torch threads, shared CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def choose_prompts(world: DemoWorld, targets: list, count: int, targeted_count: int, rng: random.Random):
    """Timed prompts unrelated to every real unit, and targeted held-out paraphrases."""
    excluded = {p.name for t in targets for p in [t, *world.neighbours(t)]}
    others = [p for p in world.people if p.name not in excluded]
    questions = [qa.question for p in rng.sample(others, min(len(others), count)) for qa in world.questions(p, "all")]
    facts = [qa.question for qa in world.fact_questions(split="all")]
    n_facts = count // 4 if facts else 0
    unrelated = rng.sample(questions, min(len(questions), count - n_facts)) + rng.sample(facts, min(len(facts), n_facts))
    rng.shuffle(unrelated)
    targeted = [qa.question for t in targets for qa in world.questions(t, "heldout")]
    targeted = rng.sample(targeted, min(len(targeted), targeted_count))
    return unrelated, targeted


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1,10,100,1000", help="numbers of active units")
    parser.add_argument("--prompts", type=int, default=16, help="timed prompts (single-prompt calls) per size per round")
    parser.add_argument("--batch", type=int, default=16, help="prompts per batched call")
    parser.add_argument("--batch-calls", type=int, default=4, help="batched calls per size per round")
    parser.add_argument("--model", default="demo", help="'demo', 'tiny' or a Hugging Face causal-LM directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output; the PNG goes beside it")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over base and all sizes")
    parser.add_argument("--real-units", type=int, default=2, help="units really trained (the rest are synthetic)")
    parser.add_argument("--train-epochs", type=int, default=8, help="epochs of each real unit's LoRA")
    parser.add_argument("--reference-max", type=int, default=100, help="largest size the reference design is measured at (linear extrapolation beyond)")
    parser.add_argument("--reference-prompts", type=int, default=4, help="prompts per round for the reference design's gate cost")
    parser.add_argument("--forced-prompts", type=int, default=3, help="prompts per round with every unit forced on")
    parser.add_argument("--targeted-prompts", type=int, default=4, help="held-out paraphrases about the real units' people")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.sizes = sorted({int(x) for x in args.sizes.split(",") if x.strip()})
    if not args.sizes or args.sizes[0] < 0:
        parser.error("--sizes must be non-negative integers")
    if args.real_units < 1 or args.prompts < 1 or args.batch < 1 or args.rounds < 1:
        parser.error("--real-units, --prompts, --batch and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_start = os.getloadavg()
    model_dir = resolve_model(args.model)
    preset = read_manifest(model_dir)["config"]["preset"] if is_complete(model_dir) else None
    args.model_label = f"'{preset}' demo model ({model_dir.name})" if preset else model_dir.name
    base = load_base_model(model_dir, device="cpu")
    world = load_demo_world(model_dir) if (model_dir / WORLD_FILE).is_file() else build_world(seed=args.seed)
    encoder = load_encoder(device="cpu")
    detector_config = DetectorConfig()
    args.window_words, args.window_stride = detector_config.window_words, detector_config.window_stride
    layers = encoder.resolve_layers(detector_config.layers)
    rng = random.Random(args.seed)
    candidates = [p for p in world.people if world.questions(p, "heldout")]
    targets_people = rng.sample(candidates, min(args.real_units, len(candidates)))
    prompts, targeted = choose_prompts(world, targets_people, args.prompts, args.targeted_prompts, rng)
    prompts = (prompts * (args.prompts // max(1, len(prompts)) + 1))[: args.prompts]
    args.targeted_list = targeted

    max_units = max(args.sizes)
    setup_start = time.perf_counter()
    units, train_timings = build_units(base, encoder, world, targets_people, max(max_units, len(targets_people)), args.train_epochs, args.seed, log)
    banks = {}
    for n in args.sizes:
        bank = DetectorBank(encoder, detector_config)
        bank.add_many({unit.unit_id: unit.detector for unit in units[:n]})
        if n:
            bank.score(prompts[:1])  # builds the stack once, outside the timings
        banks[n] = bank
    setup_s = time.perf_counter() - setup_start
    log(f"{len(units)} units ready ({sum(u.synthetic for u in units)} synthetic) in {setup_s:.0f} s")

    reference_sizes = [n for n in args.sizes if 0 < n <= args.reference_max]
    gates = open_gates(base, units, banks, args.sizes, reference_sizes)
    counter = TokenCounter(base.model, base.tokenizer.eos_token_id)
    rec, load_rounds = Recorder(), []
    try:
        # the detectors' weights on the timed prompts, for the generation-only timings
        weights = {config: gate.resolve_weights(prompts).matrix for config, gate in gates.items() if config[0] == "ours"}
        # Warm-up, not recorded: first calls allocate buffers and fill caches.
        warm_args = argparse.Namespace(**{**vars(args), "batch_calls": 1, "batch": min(args.batch, 2)})
        measure_gate_round(0, gates, encoder, layers, prompts[:1], Recorder(), warm_args)
        measure_generation_round(0, gates, base, counter, prompts[:1], weights, Recorder(), warm_args)
        for round_index in range(args.rounds):
            round_start = time.perf_counter()
            measure_gate_round(round_index, gates, encoder, layers, prompts, rec, args)
            gate_s = time.perf_counter() - round_start
            measure_generation_round(round_index, gates, base, counter, prompts, weights, rec, args)
            load_rounds.append(os.getloadavg()[0])
            log(
                f"round {round_index + 1}/{args.rounds}: {time.perf_counter() - round_start:.0f} s "
                f"(gate costs {gate_s:.0f} s), load average {load_rounds[-1]:.1f}"
            )
        check_targeted(gates, units, targeted, rec, args)
    finally:
        counter.close()
        for gate in gates.values():
            gate.close()
    hooks = measure_hook_overhead(base, sum(1 for kind, _ in gates if kind == "ours"), prompts, args.rounds, args)

    summary = summarise(rec, args.sizes, units, reference_sizes, args)
    summary["hook_overhead"] = hooks
    target_results = targets(summary)
    table = markdown(summary, target_results, args)
    print(table)
    seconds = time.perf_counter() - started
    command = "python bench/latency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "command": command.strip(),
        "conditions": {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "device": "cpu",
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average_start": list(load_start),
            "load_average_after_each_round": load_rounds,
            "note": "CPU cores shared with other jobs; medians over interleaved rounds",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "model": {
            "spec": args.model,
            "path": str(model_dir),
            "demo_preset": preset,
            "fingerprint": base.fingerprint,
            "parameters": sum(p.numel() for p in base.model.parameters()),
        },
        "encoder": {"path": str(encoder.path), "layers": list(layers)},
        "settings": {key: value for key, value in vars(args).items() if key not in ("out", "targeted_list")} | {"out": str(args.out)},
        "units": {
            "real": [{"unit_id": u.unit_id, "person": u.person} for u in units if not u.synthetic],
            "synthetic": sum(1 for u in units if u.synthetic),
            "synthetic_note": "random LoRA A/B of the real shapes; detectors cloned from the fitted ones with "
            "features and mean moved by a random signed permutation (same cost, fire on no real prompt)",
            "adapter_parameters": units[0].adapter.num_parameters,
            "timings": train_timings,
        },
        "prompts": {"timed": prompts, "targeted": targeted},
        "reference_design": "one encoder pass per unit per prompt at batch 1 (each unit's own Detector.weights); "
        f"measured at {reference_sizes}, linear fit beyond (rows marked reference_extrapolated)",
        **summary,
        "targets": target_results,
        "table": table,
        "seconds": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(summary, png, args)
    log(f"wrote {args.out} and {png} in {seconds:.0f} s")
    return result


if __name__ == "__main__":
    main()
