"""Synthetic detectors for scale tests and benchmarks: thousands of units from a few real ones.

A synthetic unit is a real detector whose stored windows are moved towards another real unit's (a
random share per window, plus a little noise, renormalised) and whose glocal fit is refitted on
them: its own windows and floor, in the same region of the sphere as real requests' windows.
Copies of a real unit would make every synthetic unit a candidate exactly when its template is
(an index would see a handful of distinct units), and random directions would be far from every
prompt (too easy for a prefilter); both misstate the gate at a provider's volume.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .detector import Detector
from .glocal import fit_glocal
from .names import EntityMatcher


def mixed_detector(a: Detector, b: Detector, generator: torch.Generator, *, entity: EntityMatcher | None = None) -> Detector:
    """A synthetic detector: `a`'s windows moved towards `b`'s, refitted; `a`'s calibration and
    negatives; `entity` as its entity evidence (None: none)."""
    fa, fb = a.unit.glocal.features, b.unit.glocal.features  # [L, n, d]
    n = min(fa.shape[1], fb.shape[1])
    share = torch.rand(1, n, 1, generator=generator) * 0.6
    noise = 0.05 * torch.randn(fa[:, :n].shape, generator=generator)
    mixed = torch.nn.functional.normalize(fa[:, :n] + share * fb[:, :n] + noise, dim=-1)
    scorer = replace(a.unit, glocal=fit_glocal(mixed.transpose(0, 1)))
    return replace(a, unit=scorer, entity=entity, metadata={**a.metadata, "synthetic": True})
