"""Recognising the data subject in a prompt: the entity evidence of a unit's gate.

O3's embedding detector asks "does this prompt look like the forget data?". A right-to-be-forgotten
request is about a person, and a detector fitted on a few question templates misses that person in
other sentence shapes, other languages and misspellings (measured: every German, French, Spanish
and Dutch question about a forgotten person leaked on the demo model). So a unit also recognises
its subjects by name, in every window of every message, with these rules (docs/engine.md, "Threat
model", says which prompts they cover and which they do not):

1. **Identifier.** One of the subject's unique identifiers (a value with at least six digits, an
   email address, a street address) appears in the prompt: the prompt is about the subject.
2. **Full name.** A given name followed by the surname (one middle token allowed), or the surname,
   an optional comma and a given name ("Kowalczyk, Rosalind"). Next to the other part, a long name
   part may be misspelt once more ("relaxed", below).
3. **Initial and surname.** "R. Kowalczyk", "R Kowalczyk", "Rosalind K.".
4. **Surname alone**, written with a capital (or in an all-lower-case prompt), when the word before
   it is not another given name: "Ms Kowalczyk", "Kowalczyk's phone number". "Yara Kowalczyk"
   names somebody else and is not evidence. A surname shared by a relative is ambiguous without a
   given name; the rule errs on the side of the data subject (the threat model says so). As the
   prompt's first word (capitalised by its position alone) the surname must be spelt, not only
   sound alike: with 100,000 made-up names, "Taello" (Metaphone equal to "Tell") had fired on
   every prompt starting "Tell me" (bench/entity_evidence.py: 35 of 200 prompts about nobody
   loaded fired some unit before this guard, 7 after). Followed by another capitalised name part
   ("Kasimir Thistlewood") the token is somebody's given name, or somebody else's name written
   surname first: not this surname alone (the same benchmark, three draws: 7-10 of 200 -> 0-1).
5. **Given name with context.** A given name not followed by another surname, in a prompt that also
   holds one of the subject's values ("Rosalind, the pilot from Ravensway").

A prompt token matches a name token when their folded spellings (accents stripped, other scripts
transliterated with anyascii, case folded) are equal; or within the name token's edit allowance
(optimal string alignment, rapidfuzz) keeping the first letter: 0 edits below 4 letters, 1 up to 7,
2 from 8 (misspellings rarely change the first letter; Dalia and Talia are two people); or, for
names of 6 letters and more, one edit more when they sound alike (equal Metaphone or NYSIIS codes,
jellyfish: Castellane, Kastellane). Relaxed, next to a matched other part: one edit more for names
of 6 letters and more, one edit for shorter ones (of 3 letters and more), first letter kept.
Transliterations are matched through variants of the
name made by writing it in Cyrillic (cyrtranslit) and reading it back (anyascii): the spellings a
Russian or Ukrainian text would give it.

Calibration uses the subject's own name and synthetic others only (no retain data, as O3 requires):
a name token's allowance is lowered until no generic name of the same kind (negatives.py: the names
the name test's synthetic negatives use) falls within it, so "Marta" does not take in "Maria".

What a unit stores: the folded name tokens and their variants (a unit must recognise the person
after the forget set is purged: it IS the erasure), and keyed SHA-256 hashes of the normalised
values (never the values). Treat a unit as personal data (docs/engine.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cyrtranslit
import jellyfish
import numpy as np
import stopwordsiso
from anyascii import anyascii
from rapidfuzz import process
from rapidfuzz.distance import OSA

from workers.engine import leaks
from workers.engine.detector.negatives import FIRST_NAMES as GENERIC_FIRST_NAMES
from workers.engine.detector.negatives import SURNAMES as GENERIC_SURNAMES

ENTITY_FORMAT = "o3-entity"
ENTITY_VERSION = 1
# Languages whose function words are never taken for a given name before a surname (and whose
# probes the certificate asks in); stopwords-iso lists.
STOPWORD_LANGUAGES = ("en", "de", "fr", "es", "nl", "it", "pt")
TITLES = frozenset(
    "mr mrs ms miss mx dr prof sir dame lady lord herr frau fraulein monsieur madame mademoiselle m mme mlle "
    "senor senora senorita sr sra srta don dona meneer mevrouw mevr dhr signor signora sig sigra gospodin "
    "gospozha pan pani".split()
)
TRANSLITERATION_LANGUAGES = ("ru", "ua")
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_POSSESSIVE = re.compile(r"(?:'s|’s|s'|s’|'|’)$")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return frozenset(fold_token(word) for word in stopwordsiso.stopwords(list(STOPWORD_LANGUAGES)))


def fold_token(word: str) -> str:
    """A word as the matcher compares it: NFKC, transliterated to ASCII, lower case, letters and
    digits only (possessive 's dropped)."""
    word = _POSSESSIVE.sub("", unicodedata.normalize("NFKC", word))
    return re.sub(r"[^0-9a-z]", "", anyascii(word).lower())


@dataclass(frozen=True)
class Token:
    folded: str
    capitalised: bool
    joined_before: bool  # only spaces (or a hyphen) separate it from the previous token, same line
    comma_before: bool  # a comma (and spaces) separate it from the previous token
    initial: bool  # a single letter, possibly followed by a full stop ("R.")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    last_end = None
    for match in _TOKEN.finditer(text):
        word = match.group()
        folded = fold_token(word)
        if not folded:
            last_end = match.end()
            continue
        gap = text[last_end : match.start()] if last_end is not None else "\n"
        tokens.append(
            Token(
                folded=folded,
                capitalised=word[:1].isupper(),
                joined_before=bool(re.fullmatch(r"[ \t\-.]*", gap)) and "\n" not in gap and gap.count(".") <= 1,
                comma_before=bool(re.fullmatch(r"\s*,\s*", gap)),
                initial=len(folded) == 1 and folded.isalpha(),
            )
        )
        last_end = match.end()
    return tokens


def _codes(token: str) -> tuple[str, str]:
    return jellyfish.metaphone(token), jellyfish.nysiis(token)


LONG_NAME = 6  # letters from which a name part may be matched by sound, and relaxed next to the other part
MAX_NAME_EDITS = 3  # the most edits tokens_match ever accepts: a relaxed allowance (2 + 1 for long names)


def default_allowance(name_token: str) -> int:
    n = len(name_token)
    return 0 if n < 4 else 1 if n < 8 else 2


def calibrated_allowance(name_token: str, others: Iterable[str]) -> int:
    """The default allowance, lowered below the distance of the closest synthetic other name."""
    allowance = default_allowance(name_token)
    for other in others:
        other = fold_token(other)
        if other != name_token and tokens_match(other, name_token, allowance):
            allowance = min(allowance, OSA.distance(other, name_token) - 1)
    return max(allowance, 0)


def tokens_match(candidate: str, name_token: str, allowance: int | None = None, *, relaxed: bool = False, by_sound: bool = True) -> bool:
    """Does the folded prompt token `candidate` spell (or misspell) the folded name token, within
    `allowance` edits (default: default_allowance)? See the module docstring for the rules.
    by_sound=False: spelt only, without the sound-alike edit."""
    if candidate == name_token:
        return True
    allowance = default_allowance(name_token) if allowance is None else allowance
    long_name = len(name_token) >= LONG_NAME
    if relaxed and allowance == default_allowance(name_token):  # never past a calibrated (lowered) allowance
        allowance = allowance + 1 if long_name else max(allowance, 1) if len(name_token) >= 3 else 0
    if allowance == 0:
        return False
    if abs(len(candidate) - len(name_token)) > allowance + 1:
        return False
    distance = OSA.distance(candidate, name_token, score_cutoff=allowance + 1)
    if distance <= allowance and candidate[:1] == name_token[:1]:
        return True
    if by_sound and long_name and not relaxed and distance <= allowance + 1:
        a, b = _codes(candidate), _codes(name_token)
        return a[0] == b[0] or a[1] == b[1]
    return False


def transliteration_variants(name: str) -> set[str]:
    """The folded spellings of `name` read back from its Cyrillic renderings (cyrtranslit)."""
    variants = set()
    for lang in TRANSLITERATION_LANGUAGES:
        try:
            variants.add(" ".join(fold_token(w) for w in anyascii(cyrtranslit.to_cyrillic(name, lang)).split()))
        except (KeyError, ValueError):
            continue
    return {v for v in variants if v}


@dataclass(frozen=True)
class SubjectName:
    """One data subject's name forms: folded given names, surname, their variants, and each name
    token's calibrated edit allowance."""

    given: tuple[str, ...]
    surname: str
    variants: tuple[tuple[str, ...], ...]  # other spellings of the whole name, as token tuples
    allowances: dict[str, int] = field(default_factory=dict)

    def allowance(self, token: str) -> int:
        return self.allowances.get(token, default_allowance(token))

    @property
    def full(self) -> str:
        return " ".join((*self.given, self.surname))

    def given_tokens(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.given, *(v[0] for v in self.variants if len(v) > 1)]))

    def surname_tokens(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([self.surname, *(v[-1] for v in self.variants)]))

    def to_json(self) -> dict[str, Any]:
        return {
            "given": list(self.given),
            "surname": self.surname,
            "variants": [list(v) for v in self.variants],
            "allowances": dict(sorted(self.allowances.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubjectName:
        return cls(tuple(data["given"]), data["surname"], tuple(tuple(v) for v in data["variants"]), {k: int(v) for k, v in data["allowances"].items()})

    @classmethod
    def from_name(cls, name: str) -> SubjectName:
        words = [fold_token(w) for w in _TOKEN.findall(name)]
        words = [w for w in words if w]
        if not words:
            raise ValueError(f"no name in {name!r}")
        given, surname = tuple(words[:-1]), words[-1]
        variants = tuple(sorted({tuple(v.split()) for v in transliteration_variants(name)} - {tuple(words)}))
        probe = cls(given, surname, variants)
        allowances = {token: calibrated_allowance(token, GENERIC_FIRST_NAMES) for token in probe.given_tokens()}
        allowances.update({token: calibrated_allowance(token, GENERIC_SURNAMES) for token in probe.surname_tokens()})
        return cls(given, surname, variants, allowances)


# --- values: keyed hashes, never the text ------------------------------------------------------------


def _is_identifier(value: str) -> bool:
    """Unique to one person: a long number, an email address, or a street address (digits and words)."""
    norm = leaks.normalise(value)
    digits = sum(ch.isdigit() for ch in norm)
    return digits >= 6 or "@" in norm or (digits > 0 and any(part.isalpha() for part in norm.split()))


def _value_keys(value: str) -> list[str]:
    """The normalised word sequences under which a value is recognised in a prompt."""
    forms = leaks.value_forms(value)
    return sorted(f for f in {*forms.words, *forms.digits} if f.count(" ") < MAX_VALUE_WORDS)


# One key for every unit, so that a bank looks each prompt n-gram up once for all its units. The
# hashes keep the values out of plain sight in a unit's files; they are not encryption (a value of
# few possibilities can be guessed and checked), which is why a unit stays personal data.
_VALUE_KEY = b"o3-entity-values/v1"
MAX_VALUE_WORDS = 6


def value_digest(words: str) -> str:
    return hmac.new(_VALUE_KEY, words.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class ValueHashes:
    """Keyed hashes of a unit's value forms (normalised word sequences): context and identifiers."""

    context: frozenset[str]
    identifiers: frozenset[str]

    @classmethod
    def build(cls, values: Iterable[str], identifiers: Iterable[str]) -> ValueHashes:
        values = [v for v in values if v and v.strip()]
        all_identifiers = [v for v in identifiers if v and v.strip()] + [v for v in values if _is_identifier(v)]
        context = {value_digest(form) for value in values + all_identifiers for form in _value_keys(value)}
        ident = {value_digest(form) for value in all_identifiers for form in _value_keys(value)}
        return cls(frozenset(context), frozenset(ident))

    def to_json(self) -> dict[str, Any]:
        return {"context": sorted(self.context), "identifiers": sorted(self.identifiers)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValueHashes:
        return cls(frozenset(data["context"]), frozenset(data["identifiers"]))


def prompt_digests(words: Sequence[str]) -> set[str]:
    """Digests of every n-gram (n <= MAX_VALUE_WORDS) of a prompt's normalised words."""
    return {value_digest(" ".join(words[start : start + n])) for n in range(1, MAX_VALUE_WORDS + 1) for start in range(0, len(words) - n + 1)}


# --- the matcher --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    kind: str  # identifier | full_name | initial | surname | given_with_context
    subject: int  # index into EntityMatcher.subjects (-1 for an identifier)


EVIDENCE_KINDS = ("identifier", "full_name", "initial", "surname", "given_with_context")


@dataclass(frozen=True)
class EntityMatcher:
    """One unit's name and value evidence (stored as entity.json in the detector directory)."""

    subjects: tuple[SubjectName, ...]
    values: ValueHashes
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, names: Sequence[str], values: Sequence[str] = (), identifiers: Sequence[str] = ()) -> EntityMatcher:
        subjects = tuple(SubjectName.from_name(n) for n in dict.fromkeys(n.strip() for n in names if n and n.strip()))
        meta = {
            "subjects": len(subjects),
            "values": len(set(values)),
            "calibrated_allowances": sum(s.allowance(t) < default_allowance(t) for s in subjects for t in s.allowances),
        }
        return cls(subjects, ValueHashes.build(values, identifiers), meta)

    @property
    def empty(self) -> bool:
        return not self.subjects and not self.values.context

    def evidence(self, text: str) -> Evidence | None:
        return EntityBank({"unit": self}).evidence([text])[0].get("unit")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ENTITY_FORMAT,
            "version": ENTITY_VERSION,
            "subjects": [s.to_json() for s in self.subjects],
            "values": self.values.to_json(),
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntityMatcher:
        if data.get("format") != ENTITY_FORMAT or data.get("version") != ENTITY_VERSION:
            raise ValueError(f"not an {ENTITY_FORMAT} v{ENTITY_VERSION} file")
        return cls(tuple(SubjectName.from_json(s) for s in data["subjects"]), ValueHashes.from_json(data["values"]), dict(data.get("metadata") or {}))


class EntityBank:
    """The entity evidence of many units, looked up together. Immutable: build a new one to change it.

    A prompt is tokenized once; each n-gram of its normalised words is looked up once in the value
    digests of all units, and each token is compared (rapidfuzz) with the name tokens of all units
    that it could match. Only the units that got a name-token or value hit are then checked rule by
    rule.

    Which name tokens a prompt token could match is read from an index, exactly: tokens_match
    accepts at most MAX_NAME_EDITS edits (a relaxed allowance of 2 + 1), so a match is a name token
    of the same first letter within MAX_NAME_EDITS letters of its length, or a long one (by sound)
    with an equal Metaphone or NYSIIS code within MAX_NAME_EDITS letters of its length. The index
    holds the vocabulary by (first letter, length) and by code, so a token is compared with a few
    hundred name tokens instead of every unit's (51 ms per prompt at 10,000 units before it;
    bench/gate_scale.py). A name token's owners are grouped by allowance, and the rules run once
    per group, not once per owning unit (35 ms per prompt at 100,000 made-up units before that,
    2.5 ms after, the same evidence). `indexed=False` compares every token with the whole vocabulary: the
    exhaustive reference the tests hold the index to.
    """

    def __init__(self, matchers: dict[str, EntityMatcher], *, indexed: bool = True):
        self.unit_ids = tuple(matchers)
        self.matchers = matchers
        vocab: dict[str, int] = {}
        # vocab id -> {allowance: [(unit column, subject, role)]}: whether a prompt token matches a
        # name token depends on the pair and the allowance only, so it is decided once per group
        # (a common given name is owned by thousands of units; per owner it was linear in them).
        owners: list[dict[int, list[tuple[int, int, str]]]] = []
        self.values: dict[str, list[tuple[int, bool]]] = {}  # digest -> [(unit column, is identifier)]
        for column, unit_id in enumerate(self.unit_ids):
            matcher = matchers[unit_id]
            for index, subject in enumerate(matcher.subjects):
                for role, parts in (("given", subject.given_tokens()), ("surname", subject.surname_tokens())):
                    for part in parts:
                        vid = vocab.setdefault(part, len(vocab))
                        if vid == len(owners):
                            owners.append({})
                        owners[vid].setdefault(subject.allowance(part), []).append((column, index, role))
            for digest in matcher.values.context:
                self.values.setdefault(digest, []).append((column, digest in matcher.values.identifiers))
        self.vocab = list(vocab)
        self.vocab_index = vocab
        self.owners = owners
        self.indexed = indexed
        self._by_spelling: dict[tuple[str, int], list[int]] = {}  # (first letter, length) -> vocab ids
        self._by_sound: dict[tuple[int, str], list[int]] = {}  # (which code, code) -> ids of long name tokens
        for vid, part in enumerate(self.vocab):
            self._by_spelling.setdefault((part[:1], len(part)), []).append(vid)
            if len(part) >= LONG_NAME:
                for which, code in enumerate(_codes(part)):
                    self._by_sound.setdefault((which, code), []).append(vid)

    def __len__(self) -> int:
        return len(self.unit_ids)

    def fires(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), len(units)] 1.0 where the text identifies a unit's subject, else 0.0."""
        out = np.zeros((len(texts), len(self.unit_ids)), dtype=np.float32)
        column = {uid: i for i, uid in enumerate(self.unit_ids)}
        for row, found in enumerate(self.evidence(texts)):
            for unit_id in found:
                out[row, column[unit_id]] = 1.0
        return out

    def evidence(self, texts: Sequence[str]) -> list[dict[str, Evidence]]:
        """Per text, {unit id: its evidence} for the units whose subject the text identifies."""
        return [self._evidence_one(text) for text in texts] if self.unit_ids else [{} for _ in texts]

    def _token_hits(self, tokens: Sequence[Token]) -> dict[int, list[tuple[int, int, str, bool]]]:
        """token position -> [(unit column, subject, role, strict)] of the name parts it spells
        (strict: by tokens_match itself; else only relaxed, next to the other part)."""
        hits: dict[int, list[tuple[int, int, str, bool]]] = {}
        if not tokens or not self.vocab:
            return hits
        folded = [t.folded for t in tokens]
        if self.indexed:
            pairs = []
            for position, token in enumerate(folded):
                vids = self._candidates(token) if len(token) >= 2 else []
                if vids:
                    distances = process.cdist([token], [self.vocab[v] for v in vids], scorer=OSA.distance, score_cutoff=4, dtype=np.int8, workers=1)[0]
                    pairs += [(position, vid) for vid, distance in zip(vids, distances.tolist()) if distance <= 4]
        else:
            distances = process.cdist(folded, self.vocab, scorer=OSA.distance, score_cutoff=4, dtype=np.int8, workers=1)
            pairs = list(zip(*(axis.tolist() for axis in np.nonzero(distances <= 4))))
        for position, vid in pairs:
            if len(folded[position]) < 2:
                continue
            for allowance, group in self.owners[vid].items():
                strict = tokens_match(folded[position], self.vocab[vid], allowance)
                if strict or tokens_match(folded[position], self.vocab[vid], allowance, relaxed=True):
                    hits.setdefault(position, []).extend((column, subject, role, strict) for column, subject, role in group)
        return hits

    def _candidates(self, token: str) -> list[int]:
        """The vocabulary ids tokens_match could accept for this folded prompt token, ascending."""
        n = len(token)
        found: set[int] = set()
        for length in range(max(1, n - MAX_NAME_EDITS), n + MAX_NAME_EDITS + 1):
            found.update(self._by_spelling.get((token[:1], length), ()))
        if self._by_sound and n + MAX_NAME_EDITS >= LONG_NAME:
            for which, code in enumerate(_codes(token)):
                found.update(vid for vid in self._by_sound.get((which, code), ()) if abs(len(self.vocab[vid]) - n) <= MAX_NAME_EDITS)
        return sorted(found)

    def _evidence_one(self, text: str) -> dict[str, Evidence]:
        tokens = tokenize(text)
        words = leaks.normalise(text).split()
        found: dict[str, Evidence] = {}
        context_units: set[int] = set()
        if self.values:
            for digest in prompt_digests(words):
                for column, is_identifier in self.values.get(digest, ()):
                    context_units.add(column)
                    if is_identifier:
                        found[self.unit_ids[column]] = Evidence("identifier", -1)
        hits = self._token_hits(tokens)
        # per (unit, subject): 2 = the token spells the name part, 1 = only next to the other part, 0 = no
        candidates: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        for position, owners in hits.items():
            for column, subject, role, strict in owners:
                given, surname = candidates.setdefault((column, subject), ([0] * len(tokens), [0] * len(tokens)))
                marks = given if role == "given" else surname
                marks[position] = max(marks[position], 2 if strict else 1)
        all_lower = not any(t.capitalised for t in tokens)
        for (column, subject_index), (is_given, is_surname) in sorted(candidates.items()):
            unit_id = self.unit_ids[column]
            if unit_id in found and found[unit_id].kind in ("identifier", "full_name", "initial"):
                continue
            subject = self.matchers[unit_id].subjects[subject_index]
            kind = _subject_evidence(tokens, subject, column in context_units, all_lower, is_given, is_surname)
            if kind is not None and (unit_id not in found or EVIDENCE_KINDS.index(kind) < EVIDENCE_KINDS.index(found[unit_id].kind)):
                found[unit_id] = Evidence(kind, subject_index)
        return found


def _other_name(token: Token | None, subject: SubjectName, own: Sequence[str]) -> bool:
    """Is this token (next to a matched name part) another person's name part? Not when it is an
    initial, a number, a title or a function word of a probe language, or one of `own` parts."""
    if token is None or token.initial or not token.folded.isalpha() or len(token.folded) < 2:
        return False
    if token.folded in TITLES or token.folded in _stopwords():
        return False
    return not any(tokens_match(token.folded, part, subject.allowance(part)) for part in own)


def _subject_evidence(
    tokens: Sequence[Token], subject: SubjectName, context: bool, all_lower: bool, given_marks: Sequence[int], surname_marks: Sequence[int]
) -> str | None:
    """The strongest rule (module docstring) by which `tokens` name this subject, or None.

    Marks per token: 2 spells the name part, 1 spells it only with the relaxed allowance (counts
    next to a strict match of the other part), 0 does not."""
    n = len(tokens)
    is_given = [m == 2 for m in given_marks]
    is_surname = [m == 2 for m in surname_marks]
    near_given = [m >= 1 for m in given_marks]
    near_surname = [m >= 1 for m in surname_marks]
    initial = subject.given[0][0] if subject.given else ""
    best = None
    for i, token in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < n else None
        if near_surname[i]:
            for back in (1, 2):  # the given name (or its initial) before, one middle token allowed
                j = i - back
                if j < 0 or not all(tokens[k].joined_before for k in range(j + 1, i + 1)):
                    break
                pair = (is_given[j] and near_surname[i]) or (near_given[j] and is_surname[i])
                if pair and (back == 1 or tokens[j + 1].initial or tokens[j + 1].capitalised):
                    return "full_name"
                if back == 1 and is_surname[i] and tokens[j].initial and tokens[j].folded == initial:
                    return "initial"
            if nxt is not None and subject.given and is_given[i + 1] and near_surname[i] and (nxt.joined_before or nxt.comma_before):
                return "full_name"  # "Kowalczyk, Rosalind": the given name spelt within its own allowance ("Zabrowski live" is no name)
        if is_surname[i]:
            another_given = prev is not None and token.joined_before and _other_name(prev, subject, subject.given_tokens())
            # Followed by another capitalised name part ("Kasimir Thistlewood"), the token is that
            # person's given name (or names somebody else surname first), not this surname alone.
            own = (*subject.given_tokens(), *subject.surname_tokens())
            another_after = nxt is not None and nxt.capitalised and nxt.joined_before and _other_name(nxt, subject, own)
            by_position = i == 0 and not any(tokens_match(token.folded, p, subject.allowance(p), by_sound=False) for p in subject.surname_tokens())
            if (token.capitalised or all_lower) and not another_given and not another_after and not by_position:
                best = best or "surname"
        if is_given[i] and subject.given:
            if nxt is not None and nxt.joined_before and nxt.initial and nxt.folded == subject.surname[0]:
                return "initial"
            another_surname = nxt is not None and nxt.joined_before and _other_name(nxt, subject, subject.surname_tokens())
            if context and not another_surname:
                best = best or "given_with_context"
    return best
