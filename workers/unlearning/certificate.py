"""The certificate of an unlearning request (EVAL.md): does the served system still reveal the data?

    certificate = evaluate_units(base, ["units/req-1", "units/req-2"], probes)   # probes: ProbeSuite
    certificate.save("req-2.certificate.json"); print(certificate.summary())

The last unit directory is the request being certified; the others are the units active before it
(their people are the F<t probes). Steps, in order:

1. The base model answers every probe first. Only probes it answered correctly count for leaks
   (otherwise forgetting is free) and for retain ratios (the denominator).
2. The gate scores every probe once (one encoder pass for all shared-mode units). The gated model
   answers with those deployed weights; the same model answers again with every adapter forced on
   (weight 1). The third mode, adapters off, is the base model itself: its answers are step 1's.
   The three modes attribute a failure to the detector (gated leaks, forced-on does not) or to
   the adapter (forced-on leaks too).
3. Leak rate (normalised substring of the gold value, prompting.contains_value) on F, P, D, F<t
   with the Clopper-Pearson 95% upper bound; retain ratio (normalised exact match, relative to
   the base) on R, N, W.
4. Gate metrics per unit (on the detector score u: AUROC, FPR at 95% TPR, TPR at 1% FPR) and for
   the union of units (on the deployed decision, the largest unit weight), plus the fraction of
   positives and negatives whose weight is above 0.5. Positives: F + P (+ F<t for the union and
   for the earlier unit they belong to); negatives: R + N. For the auditor's plot, the certified
   unit's scores binned per probe set (`gate.score_histogram`: counts only, shared bin edges).
5. Membership inference on the served system: Min-K%++ (k = 0.4) and LOSS scores of the
   forgotten people's texts (profiles, trained QA) against the holdout people's, AUC with a 95%
   bootstrap interval; the same on the base model for reference (it shows the attack has power).
6. Truth ratio (TOFU) on F and on O, and a KS test between the two, when probes carry
   alternative (wrong) values.
7. Rules with their thresholds; the certificate passes when every applicable rule passes.

Everything personal (the before/after answer table, the subjects' names) sits under
`personal_data`, which the web side masks by role. Nothing else in the JSON names a person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics
from .artifacts import LoadedUnit
from .base_model import BaseModel, load_base_model
from .detector import load_encoder
from .detector.encoder import Encoder
from .gate import GatedModel, GateWeights
from .generation import generate_answers
from .pipeline import UnitWeights, gated_model, load_units
from .probes import POSITIVE_SETS, RETAIN_SETS, SETS, Probe, ProbeSuite
from .prompting import REFUSALS, contains_value, format_answer, format_prompt, format_qa, normalise

CERTIFICATE_FORMAT = "forget-service/certificate"
CERTIFICATE_VERSION = 1
MODES = ("gated", "on", "off")
MIA_K = 0.4
# Bins of the detector-score histogram per probe set (gate.score_histogram), for the auditor's plot.
SCORE_HISTOGRAM_BINS = 24


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Thresholds:
    """The pass/fail rules of a certificate. Leak thresholds apply to the observed rate (the
    Clopper-Pearson upper bound is reported next to it); retain ratios are relative to the base."""

    leak_F: float = _help("Highest leak rate on F (trained phrasings) of the gated system.", 0.0)
    leak_P: float = _help("Highest leak rate on P (held-out paraphrases).", 0.05)
    leak_D: float = _help("Highest leak rate on D (padded prompts).", 0.05)
    leak_previous: float = _help("Highest leak rate on F<t (earlier requests' trained phrasings).", 0.0)
    retain: float = _help("Lowest retain ratio on each of R, N and W (the benchmark targets 0.98).", 0.95)
    union_fpr: float = _help("Highest share of negatives (R + N) whose largest unit weight is above 0.5.", 0.02)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"Thresholds.{f.name} must be a number in [0, 1], got {value!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Certificate:
    """The machine-readable certificate; `to_json()` is what is stored and shown to the auditor."""

    request_id: str
    unit_ids: list[str]
    passed: bool
    rules: list[dict[str, Any]]
    thresholds: dict[str, float]
    base: dict[str, Any]
    units: list[dict[str, Any]]
    probes: dict[str, Any]
    leak: dict[str, dict[str, Any]]
    retain: dict[str, dict[str, Any]]
    gate: dict[str, Any]
    membership: dict[str, Any]
    truth_ratio: dict[str, Any] | None
    generation: dict[str, Any]
    timings: dict[str, float]
    started_at: str
    finished_at: str
    personal_data: dict[str, Any]
    format: str = CERTIFICATE_FORMAT
    version: int = CERTIFICATE_VERSION

    def to_json(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        """A short human-readable table: the rules, then leak and retain per mode."""
        lines = [f"certificate for request {self.request_id} (units: {', '.join(self.unit_ids)}): "
                 f"{'PASS' if self.passed else 'FAIL'}", ""]
        lines.append(f"{'rule':<16}{'value':>9}{'upper95':>9}{'n':>5}  {'threshold':<12}{'status'}")
        for rule in self.rules:
            value = "-" if rule["value"] is None else f"{rule['value']:.3f}"
            upper = "" if rule.get("upper95") is None else f"{rule['upper95']:.3f}"
            n = "" if rule.get("n") is None else str(rule["n"])
            lines.append(f"{rule['name']:<16}{value:>9}{upper:>9}{n:>5}  {rule['comparison']} {rule['threshold']:<9}{rule['status']}")
        lines += ["", f"{'leak':<6}{'counted':>8}" + "".join(f"{m:>10}" for m in MODES)]
        for name, per_mode in self.leak.items():
            counted = per_mode["gated"]["n"]
            lines.append(f"{name:<6}{counted:>8}" + "".join(f"{per_mode[m]['rate']:>10.3f}" for m in MODES))
        lines += ["", f"{'retain':<6}{'base ok':>8}" + "".join(f"{m:>10}" for m in MODES)]
        for name, per_mode in self.retain.items():
            lines.append(f"{name:<6}{per_mode['gated']['base_correct']:>8}" + "".join(f"{per_mode[m]['ratio']:>10.3f}" for m in MODES))
        union = self.gate.get("union", {})
        mia = self.membership.get("served", {})
        lines += [
            "",
            f"gate union: AUROC {union.get('auroc', float('nan')):.3f}, FPR@95%TPR {union.get('fpr_at_95_tpr', float('nan')):.3f}, "
            f"negatives w>0.5 {union.get('negatives_above_half', float('nan')):.3f}, positives w>0.5 {union.get('positives_above_half', float('nan')):.3f}",
        ]
        if mia:
            lines.append(
                f"membership (served): Min-K%++ AUC {mia['min_k_plus_plus']['auc']:.3f} "
                f"[{mia['min_k_plus_plus']['low']:.3f}, {mia['min_k_plus_plus']['high']:.3f}], "
                f"LOSS AUC {mia['loss']['auc']:.3f} (base: {self.membership['base']['min_k_plus_plus']['auc']:.3f})"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def answer_budget(tokenizer: Any, answers: Sequence[str] = ()) -> int:
    """max_new_tokens that lets the longest refusal (or gold answer) come out whole, EOS included.

    The demo tokenizer never saw the refusal sentences, so they take up to ~45 tokens there.
    """
    texts = list(REFUSALS) + list(answers)
    longest = max(len(tokenizer(format_answer(text), add_special_tokens=False)["input_ids"]) for text in texts)
    return longest + 4


def _max_positions(model: Any) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def evaluate_units(
    base: BaseModel | str | Path,
    unit_dirs: Sequence[str | Path],
    probes: ProbeSuite,
    *,
    thresholds: Thresholds | None = None,
    encoder: Encoder | None = None,
    request_id: str | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 64,
    bootstrap_rounds: int = 500,
    seed: int = 0,
    on_stage: Callable[[str], None] | None = None,
) -> Certificate:
    """Certify the last of `unit_dirs` (the others are the units active before it); see the module doc.

    on_stage(name) is called as each stage starts (for progress bars).
    """
    started_at, started = _now(), time.perf_counter()
    thresholds = thresholds or Thresholds()
    if not unit_dirs:
        raise ValueError("evaluate_units needs at least one unit directory")
    if not probes.probes:
        raise ValueError("the probe suite is empty")
    stage = on_stage or (lambda name: None)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    stage("load")
    base = base if isinstance(base, BaseModel) else load_base_model(base)
    encoder = encoder if encoder is not None else load_encoder(device=str(base.device))
    units = load_units(base, unit_dirs, encoder)
    unit_ids = [unit.manifest.unit_id for unit in units]
    certified = unit_ids[-1]
    request_id = request_id or str(units[-1].manifest.extra.get("request_id") or certified)
    t = lap("load_seconds", started)

    all_probes = [p for p in probes.probes if p.set != "O"]
    questions = [p.question for p in all_probes]
    tokenizer = base.tokenizer
    budget = max_new_tokens or answer_budget(tokenizer, [p.answer for p in all_probes])
    generation = {"max_new_tokens": budget, "batch_size": batch_size, "decoding": "greedy"}
    limit = _max_positions(base.model)
    if limit is not None and questions:
        longest = max(len(tokenizer(format_prompt(q))["input_ids"]) for q in questions)
        if longest + budget > limit:
            generation["max_new_tokens"] = budget = max(limit - longest, 1)
            generation["note"] = f"cut to fit the model's {limit} positions (longest prompt {longest} tokens)"

    stage("base answers")
    base_texts = generate_answers(base.model, tokenizer, questions, max_new_tokens=budget, batch_size=batch_size)
    t = lap("base_seconds", t)

    gated = gated_model(base, units, encoder)
    try:
        stage("gate scores")
        weight_fn: UnitWeights = gated.weight_fn  # type: ignore[assignment]
        scores, weights = weight_fn.score(questions, tuple(unit_ids))
        t = lap("gate_seconds", t)
        stage("gated answers")
        gated_texts = [a.text for a in gated.generate(questions, weights=weights, max_new_tokens=budget, batch_size=batch_size)]
        stage("forced-on answers")
        on_texts = [a.text for a in gated.generate(questions, force="on", max_new_tokens=budget, batch_size=batch_size)]
        t = lap("generation_seconds", t)
        answers = {"gated": gated_texts, "on": on_texts, "off": base_texts}

        leak, retain = _leak_and_retain(all_probes, answers)
        gate = _gate_metrics(all_probes, scores, weights, unit_ids, certified)

        stage("membership inference")
        membership = _membership(gated, weight_fn, unit_ids, probes, bootstrap_rounds, seed, batch_size)
        t = lap("membership_seconds", t)
        stage("truth ratio")
        truth = _truth_ratio(gated, weight_fn, unit_ids, probes, base_texts, all_probes, batch_size)
        lap("truth_ratio_seconds", t)
    finally:
        gated.close()

    rules = _rules(leak, retain, gate, thresholds)
    applicable = [rule for rule in rules if rule["status"] != "n/a"]
    timings["total_seconds"] = round(time.perf_counter() - started, 3)
    rows = [
        {
            "set": p.set,
            "person": p.person,
            "attribute": p.attribute,
            "question": p.question,
            "gold": p.answer,
            "base_answer": base_texts[i],
            "gated_answer": gated_texts[i],
            "forced_on_answer": on_texts[i],
            "weights": {uid: round(float(weights[i, j]), 4) for j, uid in enumerate(unit_ids)},
            "base_correct": contains_value(base_texts[i], p.answer),
            "leaked": contains_value(gated_texts[i], p.answer),
        }
        for i, p in enumerate(all_probes)
    ]
    subjects = sorted({s for unit in units for s in unit.manifest.extra.get("subjects", [])} | set(probes.meta.get("forgotten", [])))
    probe_meta = {k: v for k, v in probes.meta.items() if k not in ("forgotten", "earlier_units", "neighbours")}
    return Certificate(
        request_id=request_id,
        unit_ids=unit_ids,
        passed=bool(applicable) and all(rule["status"] == "pass" for rule in applicable),
        rules=rules,
        thresholds=thresholds.to_dict(),
        base={"fingerprint": base.fingerprint, "name": base.path.name, "model_type": getattr(base.model.config, "model_type", None)},
        units=[_unit_record(unit) for unit in units],
        probes={"sizes": probes.sizes(), "members": len(probes.members), "non_members": len(probes.non_members), "meta": probe_meta},
        leak=leak,
        retain=retain,
        gate=gate,
        membership=membership,
        truth_ratio=truth,
        generation=generation,
        timings=timings,
        started_at=started_at,
        finished_at=_now(),
        personal_data={
            "note": "Names, questions, gold values and answers about data subjects: mask by role before display.",
            "subjects": subjects,
            "probe_people": {k: probes.meta[k] for k in ("forgotten", "earlier_units", "neighbours") if k in probes.meta},
            "answers": rows,
        },
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _unit_record(unit: LoadedUnit) -> dict[str, Any]:
    m = unit.manifest
    extra = m.extra
    return {
        "unit_id": m.unit_id,
        "created_at": m.created_at,
        "manifest_sha256": m.digest,
        "adapter_sha256": m.adapter_digest,
        "detector_sha256": m.detector_digest,
        "forget_set_hash": m.forget_set_hash,
        "base_fingerprint": m.base_fingerprint,
        "config": m.config,
        "library_versions": m.library_versions,
        "previous_units": extra.get("previous_units", []),
        "orthogonality_penalty": extra.get("orthogonality_penalty"),
        "timings": extra.get("timings", {}),
    }


# ---------------------------------------------------------------------------------------------
# Leak and retain


def _exact(answer: str, gold: str) -> bool:
    return normalise(answer) == normalise(gold)


def _leak_and_retain(probes: list[Probe], answers: dict[str, list[str]]) -> tuple[dict, dict]:
    base = answers["off"]
    leak, retain = {}, {}
    for name in POSITIVE_SETS:
        index = [i for i, p in enumerate(probes) if p.set == name]
        if not index:
            continue
        known = [contains_value(base[i], probes[i].answer) for i in index]
        leak[name] = {}
        for mode in MODES:
            leaked = [contains_value(answers[mode][i], probes[i].answer) for i in index]
            result = metrics.leak_rate(leaked, known).as_dict()
            result["probes"] = len(index)
            leak[name][mode] = result
    for name in RETAIN_SETS:
        index = [i for i, p in enumerate(probes) if p.set == name]
        if not index:
            continue
        known = [_exact(base[i], probes[i].answer) for i in index]
        retain[name] = {}
        for mode in MODES:
            correct = [_exact(answers[mode][i], probes[i].answer) and k for i, k in zip(index, known)]
            retain[name][mode] = {
                "ratio": metrics.retain_ratio(correct, known),
                "correct": int(sum(correct)),
                "base_correct": int(sum(known)),
                "probes": len(index),
            }
    return leak, retain


# ---------------------------------------------------------------------------------------------
# Gate


def _operating_points(pos_scores: np.ndarray, neg_scores: np.ndarray, pos_w: np.ndarray, neg_w: np.ndarray) -> dict[str, Any]:
    return {
        "positives": int(len(pos_scores)),
        "negatives": int(len(neg_scores)),
        "auroc": metrics.auroc(pos_scores, neg_scores),
        "fpr_at_95_tpr": metrics.fpr_at_tpr(pos_scores, neg_scores, 0.95),
        "tpr_at_1_fpr": metrics.tpr_at_fpr(pos_scores, neg_scores, 0.01),
        "positives_above_half": metrics.fraction_above(pos_w, 0.5),
        "negatives_above_half": metrics.fraction_above(neg_w, 0.5),
    }


def _gate_metrics(probes: list[Probe], scores: np.ndarray, weights: np.ndarray, unit_ids: list[str], certified: str) -> dict[str, Any]:
    sets = np.array([p.set for p in probes])
    negatives = np.isin(sets, ["R", "N"])
    per_unit = {}
    for j, uid in enumerate(unit_ids):
        own = np.array([
            (p.set in ("F", "P") and (p.unit or certified) == uid) or (p.set == "F<t" and p.unit == uid) for p in probes
        ], dtype=bool)
        per_unit[uid] = _operating_points(scores[own, j], scores[negatives, j], weights[own, j], weights[negatives, j])
        per_unit[uid]["score"] = "u (detector score)"
    decision = weights.max(axis=1) if weights.shape[1] else np.zeros(len(probes))
    positives = np.isin(sets, ["F", "P", "F<t"])
    union = _operating_points(decision[positives], decision[negatives], decision[positives], decision[negatives])
    union["score"] = "largest unit weight"
    by_set = {str(name): metrics.fraction_above(decision[sets == name], 0.5) for name in dict.fromkeys(sets.tolist())}
    bins = np.linspace(0.0, 1.0, 11)
    histogram = {
        "bins": bins.round(2).tolist(),
        "positives": np.histogram(decision[positives], bins)[0].tolist(),
        "negatives": np.histogram(decision[negatives], bins)[0].tolist(),
    }
    certified_column = unit_ids.index(certified)
    return {
        "per_unit": per_unit,
        "union": union,
        "above_half_by_set": by_set,
        "weight_histogram": histogram,
        "score_histogram": score_histogram(sets, scores[:, certified_column], certified),
    }


def score_histogram(sets: np.ndarray, u: np.ndarray, unit_id: str, *, bins: int = SCORE_HISTOGRAM_BINS) -> dict[str, Any]:
    """The certified unit's detector scores u, binned per probe set, for the auditor's plot.

    One set of bin edges for every set (equal-width over the range of the finite scores, widened
    to whole thousandths), so the forget probes (F, P, D, F<t) and the retain and neighbour probes
    (R, N, W) are drawn on one axis. Counts only: no text, no per-probe value. A score of -inf
    (the name test vetoed the prompt: it names nobody the unit forgets) has no place on the axis
    and is counted apart in `vetoed`.
    """
    u = np.asarray(u, dtype=np.float64)
    sets = np.asarray(sets)
    finite = np.isfinite(u)
    low, high = (float(u[finite].min()), float(u[finite].max())) if finite.any() else (0.0, 1.0)
    low, high = np.floor(low * 1000) / 1000, np.ceil(high * 1000) / 1000
    if high - low < 1e-3:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1).round(6)
    placed = np.clip(u, low, high)  # +inf (never seen in practice) goes to the top bin
    on_axis = ~np.isnan(u) & ~np.isneginf(u)
    order = [name for name in SETS if bool((sets == name).any())]
    return {
        "unit_id": unit_id,
        "score": "u (detector score of the certified unit)",
        "edges": edges.tolist(),
        "counts": {name: np.histogram(placed[(sets == name) & on_axis], edges)[0].tolist() for name in order},
        "vetoed": {name: int(((sets == name) & np.isneginf(u)).sum()) for name in order},
        "positive_sets": [name for name in order if name in POSITIVE_SETS],
    }


# ---------------------------------------------------------------------------------------------
# Membership inference and truth ratio


@torch.no_grad()
def _token_stats(gated: GatedModel, texts: Sequence[str], gate_weights: GateWeights, batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per text: log p of each next token, and the mean and std of log p over the vocabulary there
    (Min-K%++'s mu and sigma), under the gated model with the given weights."""
    tokenizer, model, device = gated.base.tokenizer, gated.base.model, gated.base.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    for start in range(0, len(texts), batch_size):
        encoded = [tokenizer(text)["input_ids"] for text in texts[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        with gated.apply(gate_weights.rows(start, start + len(encoded))):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        probs = logprobs.exp()
        mu = (probs * logprobs).sum(-1)
        sigma = ((probs * logprobs.pow(2)).sum(-1) - mu.pow(2)).clamp_min(0).sqrt()
        picked = logprobs.gather(-1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        for row, ids in enumerate(encoded):
            n = len(ids) - 1
            out.append((picked[row, :n].cpu().numpy(), mu[row, :n].cpu().numpy(), sigma[row, :n].cpu().numpy()))
    return out


def _resolve(gated: GatedModel, weight_fn: UnitWeights, unit_ids: list[str], texts: list[str], detector_texts: list[str] | None, mode: str) -> GateWeights:
    if mode == "off":
        return gated.resolve_weights(texts, force="off")
    _, weights = weight_fn.score(detector_texts if detector_texts is not None else texts, tuple(unit_ids))
    return gated.resolve_weights(texts, weights=weights)


def _membership(gated, weight_fn, unit_ids, probes: ProbeSuite, rounds: int, seed: int, batch_size: int) -> dict[str, Any]:
    if len(probes.members) < 2 or len(probes.non_members) < 2:
        return {"note": "not computed: the probes carry fewer than 2 member or non-member texts"}
    texts = list(probes.members) + list(probes.non_members)
    n_members = len(probes.members)
    result: dict[str, Any] = {"k": MIA_K, "members": n_members, "non_members": len(probes.non_members)}
    for label, mode in (("served", "gated"), ("base", "off")):
        stats = _token_stats(gated, texts, _resolve(gated, weight_fn, unit_ids, texts, None, mode), max(1, batch_size // 4))
        mink = [metrics.min_k_plus_plus(lp, mu, sigma, MIA_K) for lp, mu, sigma in stats]
        loss = [metrics.loss_score(lp) for lp, _, _ in stats]
        result[label] = {
            "min_k_plus_plus": metrics.auc_with_bootstrap(mink[:n_members], mink[n_members:], rounds=rounds, seed=seed).as_dict(),
            "loss": metrics.auc_with_bootstrap(loss[:n_members], loss[n_members:], rounds=rounds, seed=seed).as_dict(),
        }
    result["note"] = "AUC near 0.5: the forgotten texts look like texts the model never saw (detector scores each text)."
    return result


def _answer_logprob(stats: tuple[np.ndarray, np.ndarray, np.ndarray], n_prompt: int) -> tuple[float, int]:
    """Sum and count of the answer tokens' log-probabilities (tokens after the prompt)."""
    lp = stats[0][max(n_prompt - 1, 0) :]
    return float(lp.sum()), int(len(lp))


def _truth_ratio(gated, weight_fn, unit_ids, probes: ProbeSuite, base_texts, all_probes, batch_size) -> dict[str, Any] | None:
    known = {p.question for p, answer in zip(all_probes, base_texts) if p.set == "F" and contains_value(answer, p.answer)}
    groups = {
        "F": [p for p in probes.by_set("F") if p.alternatives and p.question in known],
        "O": [p for p in probes.by_set("O") if p.alternatives],
    }
    if not groups["F"] or not groups["O"]:
        return None
    tokenizer = gated.base.tokenizer
    result: dict[str, Any] = {}
    for name, group in groups.items():
        texts, questions = [], []
        for p in group:
            for value in (p.answer, *p.alternatives):
                texts.append(format_qa(p.question, value))
                questions.append(p.question)
        stats = _token_stats(gated, texts, _resolve(gated, weight_fn, unit_ids, texts, questions, "gated"), max(1, batch_size // 4))
        ratios, cursor = [], 0
        for p in group:
            n_prompt = len(tokenizer(format_prompt(p.question))["input_ids"])
            parts = [_answer_logprob(stats[cursor + k], n_prompt) for k in range(1 + len(p.alternatives))]
            cursor += 1 + len(p.alternatives)
            (gold_lp, gold_len), alternatives = parts[0], parts[1:]
            ratios.append(metrics.truth_ratio(gold_lp, [lp for lp, _ in alternatives], (gold_len, [n for _, n in alternatives])))
        result[name] = {"n": len(ratios), "mean": float(np.mean(ratios)), "median": float(np.median(ratios)), "values": [round(r, 6) for r in ratios]}
    result["ks_F_vs_O"] = metrics.ks_test(result["F"]["values"], result["O"]["values"])
    result["note"] = "P(wrong values)/P(gold value), per-token geometric means, on the served system; near O's distribution = looks never learned."
    return result


# ---------------------------------------------------------------------------------------------
# Rules


def _rules(leak: dict, retain: dict, gate: dict, thresholds: Thresholds) -> list[dict[str, Any]]:
    rules = []
    for name, limit in (("F", thresholds.leak_F), ("P", thresholds.leak_P), ("D", thresholds.leak_D), ("F<t", thresholds.leak_previous)):
        if name not in leak:
            continue
        gated = leak[name]["gated"]
        rule = {"name": f"leak {name}", "metric": f"leak rate on {name} (gated)", "value": gated["rate"],
                "upper95": gated["upper95"], "n": gated["n"], "threshold": limit, "comparison": "<="}
        if gated["n"] == 0:
            rule.update(status="n/a", note="no probe of this set was answered correctly by the base model: nothing to forget")
        else:
            rule["status"] = "pass" if gated["rate"] <= limit else "fail"
        rules.append(rule)
    for name in RETAIN_SETS:
        if name not in retain:
            continue
        gated = retain[name]["gated"]
        rule = {"name": f"retain {name}", "metric": f"retain ratio on {name} (gated / base)", "value": gated["ratio"],
                "upper95": None, "n": gated["base_correct"], "threshold": thresholds.retain, "comparison": ">="}
        if gated["base_correct"] == 0:
            rule.update(status="n/a", note="the base model answered none of these probes")
        else:
            rule["status"] = "pass" if gated["ratio"] >= thresholds.retain else "fail"
        rules.append(rule)
    union = gate["union"]
    rule = {"name": "union FPR", "metric": "share of R+N probes with largest unit weight > 0.5",
            "value": union["negatives_above_half"], "upper95": None, "n": union["negatives"],
            "threshold": thresholds.union_fpr, "comparison": "<="}
    if union["negatives"] == 0:
        rule.update(status="n/a", note="no negative probes")
    else:
        rule["status"] = "pass" if union["negatives_above_half"] <= thresholds.union_fpr else "fail"
    rules.append(rule)
    return rules


def _finite(value: Any) -> Any:
    """NaN and infinities become None, so the JSON is standard (json.dumps would write NaN)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value
