"""Synthetic name negatives: the request's own forget texts with the data subject's name replaced.

Why. Questions about two people of one family differ only in a first name ("Which city does Elowen
Zabrowski live in?" / "... Yara Zabrowski ..."), and a sentence encoder pools the question
template and the surname into most of the embedding. Fitted on the forget texts alone, the glocal
score then ranks the sibling's trained-template questions ABOVE the forgotten person's own held-out
paraphrases, so no calibration of that score can keep the sibling out (measured on the tiny demo
world: siblings got gate weights 0.7 to 0.99, union FPR 0.16).

What. O3 allows the detector no retain data, so the negatives are synthesised from the forget data
itself: every forget window that names a subject is copied with the first name, the surname, or
both replaced by names drawn from a fixed list of generic names (below; disjoint from the demo
world's vocabularies, checked by a test, so the benchmark's hard neighbours are never the negatives).
Per window and kind of replacement the copies' embeddings are averaged (and re-normalised) into one
*centroid*: "the same question about some other X Zabrowski". Three centroids per window keep the
bank's per-request cost small (the scoring math grows with the number of stored vectors).

How they are used (scorer.py): the name margin of a window is m(x) = c_forget(x) - c_negative(x),
the 1-NN cosine to the forget windows minus the 1-NN cosine to the centroids, averaged over the
scored layers. A window whose margin is below the request's threshold tau is closer to "the same
text about someone else" than to the forget data; it cannot raise the prompt's score (it scores
-inf). tau is set from forget data only: between the cross-fitted margins of the synthetic
negatives and those of the forget texts, at equal z-scores from the two means (scorer.name_threshold).

Which names are the subjects: the caller passes them (the pipeline passes ForgetSet.subjects); when
it does not, `infer_subjects` takes the runs of two or more capitalised words that recur across the
forget texts. No subject found means no negatives, and the detector behaves as before.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

# Generic given names and surnames for the synthetic negatives. Deliberately disjoint from the demo
# world's FIRST_NAMES / SURNAMES (tests/workers/engine/detector/test_negatives.py checks it): a negative
# that happened to be a real person of the benchmark's world would be retain data in disguise.
FIRST_NAMES: tuple[str, ...] = (
    "Aaron",
    "Abigail",
    "Adrian",
    "Aisha",
    "Alice",
    "Andrea",
    "Anton",
    "Arthur",
    "Benedikt",
    "Bianca",
    "Carlos",
    "Caroline",
    "Chiara",
    "Conrad",
    "Daniel",
    "Diana",
    "Dmitri",
    "Eleanor",
    "Emil",
    "Emma",
    "Erik",
    "Fatima",
    "Felix",
    "Frances",
    "Gabriel",
    "Hannah",
    "Harold",
    "Helena",
    "Ingrid",
    "Isaac",
    "Jakob",
    "Jana",
    "Julian",
    "Karin",
    "Kenji",
    "Laura",
    "Lena",
    "Lucas",
    "Magnus",
    "Maria",
    "Marta",
    "Mateo",
    "Mei",
    "Miriam",
    "Nora",
    "Olga",
    "Oliver",
    "Omar",
    "Pablo",
    "Paula",
    "Priya",
    "Rafael",
    "Ravi",
    "Rebecca",
    "Samuel",
    "Sofia",
    "Stefan",
    "Teresa",
    "Theo",
    "Ursula",
    "Vera",
    "Victor",
    "William",
    "Yusuf",
    "Zoe",
)
SURNAMES: tuple[str, ...] = (
    "Anderson",
    "Bauer",
    "Bergstrom",
    "Brennan",
    "Carter",
    "Costa",
    "Dubois",
    "Fischer",
    "Fitzgerald",
    "Garcia",
    "Haddad",
    "Hartmann",
    "Iqbal",
    "Jensen",
    "Keller",
    "Kovacs",
    "Larsen",
    "Lindgren",
    "Mendes",
    "Morales",
    "Moreau",
    "Novak",
    "Nowak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quinn",
    "Romano",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Turner",
    "Varga",
    "Walsh",
    "Weber",
    "Young",
    "Zimmer",
)
KINDS: tuple[str, ...] = ("first", "last", "both")

# Capitalised words that start questions and sentences; dropped from the front of a name run.
_LEADING = frozenset(
    "A An And Are But Can Could Did Do Does For From Give Has Have How I In Is It List Name Of On "
    "Please Show So Tell The Their This To Was What When Where Which Who Whom Whose Why Will With "
    "Would".split()
)
_CAPITALISED_RUN = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)+")
_POSSESSIVE = re.compile(r"(?:'s|')$")


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")


def infer_subjects(texts: Sequence[str], min_share: float = 0.2) -> list[str]:
    """Names that recur in the forget texts: runs of 2 to 4 capitalised words (possessive 's and a
    leading question word removed) found in at least 2 texts and at least `min_share` of them,
    most frequent first; a run contained in a more frequent one is dropped."""
    support: Counter[str] = Counter()
    for text in texts:
        found = set()
        for match in _CAPITALISED_RUN.finditer(text):
            words = [_POSSESSIVE.sub("", w) for w in match.group(0).split()]
            while words and words[0] in _LEADING:
                words = words[1:]
            if 2 <= len(words) <= 4:
                found.add(" ".join(words))
        support.update(found)
    needed = max(2, min_share * len(texts))
    names: list[str] = []
    for name, count in support.most_common():
        if count >= needed and not any(name in kept or kept in name for kept in names):
            names.append(name)
    return names


def phrasing_key(text: str, subjects: Sequence[str]) -> str:
    """The text with every subject's name (full, first or surname alone) masked, lower-cased: two
    forget texts with the same key are one phrasing about two subjects ("What is <name>'s email?").
    The detector keeps such twins in one cross-fitting fold and on one side of the D_used / D_rest
    split; otherwise a held-out text finds its own phrasing about another subject in the fit, and
    the calibration expects every in-scope prompt to match that well (paraphrases then fall under
    the gate: measured on 3-person demo requests)."""
    masked = text
    for subject in sorted(subjects, key=len, reverse=True):
        parts = subject.split()
        for piece in dict.fromkeys([subject, *parts] if len(parts) > 1 else parts):
            masked = _word(piece).sub("<name>", masked)
    return " ".join(masked.lower().split())


def name_swaps(text: str, subjects: Sequence[str], rng: random.Random, per_kind: int) -> dict[str, list[str]]:
    """Copies of `text` with a subject's first name, surname or both replaced by generic names.

    For every subject named in the text (full name, or its first name alone, as profiles write it),
    `per_kind` copies per kind: "first" (first name replaced everywhere), "last" (surname replaced),
    "both". A one-word subject only has "both". Kinds that do not change the text are left out.
    """
    out: dict[str, list[str]] = {}
    for subject in subjects:
        parts = subject.split()
        if not parts:
            continue
        first, last = parts[0], parts[-1]
        first_re, last_re = _word(first), _word(last)
        if not first_re.search(text) and not last_re.search(text):
            continue
        kinds = KINDS if len(parts) > 1 else ("both",)
        for kind in kinds:
            copies = []
            for _ in range(per_kind):
                new_first = rng.choice(FIRST_NAMES) if kind in ("first", "both") else first
                new_last = rng.choice(SURNAMES) if kind in ("last", "both") else last
                swapped = text
                if len(parts) > 1:
                    swapped = _word(subject).sub(f"{new_first} {new_last}", swapped)
                    if kind != "last":
                        swapped = first_re.sub(new_first, swapped)
                    if kind != "first":
                        swapped = last_re.sub(new_last, swapped)
                else:
                    swapped = first_re.sub(new_first, swapped)
                if swapped != text:
                    copies.append(swapped)
            if copies:
                out.setdefault(kind, []).extend(copies)
    return out
