"""The dossier's plot: the certified unit's detector scores on the forget probes against the retain
and neighbour probes, drawn from the certificate's `gate.score_histogram` (counts per probe set on
shared bin edges) as a PNG.

matplotlib (and numpy with it) is imported inside the drawing function, so importing this module
costs the web process nothing until a plot is asked for. A plot is cached by the hash of its
histogram: a certificate never changes, so neither does its picture.
"""

from __future__ import annotations

import io
import json
import threading
from functools import lru_cache
from typing import Any

from service.common.hashing import canonical_json, sha256_hex

from .selectors import SET_LABELS

# Forget probes in warm colours, the others in cool ones; one colour per set.
COLOURS = {"F": "#b42318", "P": "#e8590c", "D": "#9a6700", "F<t": "#c2255c", "R": "#0b5cad", "N": "#1a7f37", "W": "#6741d9", "O": "#57606a"}
_draw_lock = threading.Lock()  # pyplot's state is global: one drawing at a time per process


def histogram_key(histogram: dict[str, Any]) -> str:
    """The cache key (and HTTP ETag) of a histogram: the SHA-256 of its canonical JSON."""
    return sha256_hex(canonical_json(histogram))


def score_histogram_png(histogram: dict[str, Any]) -> bytes:
    return _png(canonical_json(histogram))


@lru_cache(maxsize=64)
def _png(canonical: str) -> bytes:
    histogram = json.loads(canonical)
    with _draw_lock:
        return _draw(histogram)


def _draw(histogram: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = [float(edge) for edge in histogram["edges"]]
    counts: dict[str, list[int]] = histogram.get("counts", {})
    vetoed: dict[str, int] = histogram.get("vetoed", {})
    positive = set(histogram.get("positive_sets", ["F", "P", "D", "F<t"]))
    any_vetoed = any(vetoed.values())

    figure, axes = plt.subplots(
        1,
        2 if any_vetoed else 1,
        figsize=(9, 4.2),
        dpi=110,
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 7]} if any_vetoed else None,
    )
    axis = axes[0, -1]
    order = list(SET_LABELS)  # F, P, D, F<t, R, N, W, O: canonical JSON sorted the keys
    names = sorted(counts, key=lambda name: order.index(name) if name in order else len(order))
    for name in names:
        total = sum(counts[name]) + vetoed.get(name, 0)
        if total == 0:
            continue
        shares = [count / total for count in counts[name]]
        style = {"linestyle": "-", "linewidth": 2.0} if name in positive else {"linestyle": "--", "linewidth": 1.6}
        label = f"{name} ({SET_LABELS.get(name, name)}, n={total}" + (f", {vetoed[name]} vetoed)" if vetoed.get(name) else ")")
        axis.stairs(shares, edges, color=COLOURS.get(name, "#333333"), label=label, **style)
    axis.set_xlabel(f"detector score u of unit {histogram.get('unit_id', '')}")
    axis.set_title("Detector scores: forget probes (solid) against retain and neighbour probes (dashed)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper center", ncols=2)
    axes[0, 0].set_ylabel("share of the set's probes")
    axis.set_ylim(0, 1.05)

    if any_vetoed:
        # Prompts the name test vetoed score -inf: they get their own column, left of the axis.
        left = axes[0, 0]
        shown = [name for name in names if sum(counts[name]) + vetoed.get(name, 0)]
        width = 0.8 / max(len(shown), 1)
        for index, name in enumerate(shown):
            total = sum(counts[name]) + vetoed.get(name, 0)
            left.bar(
                index * width,
                vetoed.get(name, 0) / total,
                width=width,
                color=COLOURS.get(name, "#333333"),
                alpha=0.8 if name not in positive else 1.0,
                hatch=None if name in positive else "//",
            )
        left.set_xticks([(len(shown) - 1) * width / 2])
        left.set_xticklabels(["vetoed\n(u = -inf)"], fontsize=8)
        left.grid(axis="y", alpha=0.3)

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
