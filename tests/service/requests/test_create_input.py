"""The intake's plain-body check (service/requests/api.py _create_input_plainly_valid) may only
ever accept what RequestCreateApi.InputSerializer accepts, with the same validated data; it may
leave anything to the serializer. Checked on generated bodies, near-valid ones above all (one field
off: a type, a blank, a NUL, a surrogate, a length at and past its bound, an unknown key)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.requests.api import MAX_EMAIL, MAX_EVIDENCE_PROMPTS, MAX_FACTS, MAX_NAME, MAX_TEXT, RequestCreateApi, _create_input_plainly_valid

# Strings at the rules' edges: whitespace DRF trims (and blank after trimming), NUL, a lone surrogate,
# non-ASCII letters, lengths at and past each bound; then the same joined to arbitrary text.
EDGES = ["Ada", " Ada ", "\tAda\n", "\u00a0Ada\u2003", "", " ", "\n\t", "Ad\x00a", "\x00", "Ad\ud800a", "\udfff", "Zoë 名前", "ada@example.org"]
EDGES += ["x" * n for bound in (MAX_NAME, MAX_EMAIL, MAX_TEXT) for n in (bound - 1, bound, bound + 1)] + [" " + "x" * MAX_NAME + " "]
EDGE = st.sampled_from(EDGES)
TEXT = st.one_of(EDGE, st.builds(str.__add__, EDGE, st.text(max_size=6)), st.builds(str.__add__, st.text(max_size=6), EDGE), st.text(max_size=12))
VALUE = st.one_of(TEXT, st.none(), st.integers(), st.booleans(), st.lists(TEXT, max_size=3), st.dictionaries(TEXT, TEXT, max_size=2))
EMAIL = st.one_of(
    st.sampled_from(
        ["ada@example.org", " ada@example.org ", "ada@example", "ada@@example.org", "ada@exa mple.org", "a" * 64 + "@example.org", "a" * 65 + "@example.org"]
    ),
    st.emails().map(str),
    TEXT,
)


def lists(most: int):
    """Lists of 0, 1, 2, most and most + 1 items: all fine but for at most one edge string, or any."""
    sizes = st.sampled_from([0, 1, 2, most, most + 1])
    fine_but_one = st.builds(
        lambda n, i, odd: ["A fact about Ada"] * n if n == 0 else [odd if k == i % n else "A fact about Ada" for k in range(n)], sizes, st.integers(0, 60), TEXT
    )
    return st.one_of(fine_but_one, sizes.flatmap(lambda n: st.lists(TEXT, min_size=n, max_size=n)), VALUE)


VALID = {"subject_name": "Ada Lovelace", "subject_email": "ada@example.org", "regulation": "gdpr", "facts": ["Ada Lovelace lives in Marylebone"]}
ONE_FIELD = {
    "subject_name": st.one_of(TEXT, VALUE),
    "subject_email": EMAIL,
    "regulation": st.one_of(st.sampled_from(["gdpr", "ccpa", "GDPR", " gdpr", ""]), VALUE),
    "facts": lists(MAX_FACTS),
    "evidence_prompts": lists(MAX_EVIDENCE_PROMPTS),
    "subject_nmae": TEXT,  # an unknown field
}


@st.composite
def near_valid(draw):
    """A valid body with one or two fields replaced (or added, or removed)."""
    body = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(ONE_FIELD)), min_size=1, max_size=2, unique=True)):
        if name in body and draw(st.integers(0, 9)) == 0:
            del body[name]
        else:
            body[name] = draw(ONE_FIELD[name])
    return body


def serializer_result(body) -> dict | None:
    serializer = RequestCreateApi.InputSerializer(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(near_valid(), VALUE))
def test_what_the_plain_check_accepts_the_serializer_accepts_alike(body):
    plain = _create_input_plainly_valid(body)
    if plain is not None:
        assert plain == serializer_result(body)


@pytest.mark.parametrize(
    "body",
    [
        {"subject_name": "Ada Lovelace", "subject_email": "ada@example.org", "regulation": "gdpr", "facts": ["Ada Lovelace lives in Marylebone"]},
        {
            "subject_name": " Zoë Ñandú ",
            "subject_email": " zoe@example.org",
            "regulation": "ccpa",
            "facts": ["名前 " * 3] * MAX_FACTS,
            "evidence_prompts": ["x" * MAX_TEXT] * 20,
        },
    ],
)
def test_the_usual_bodies_take_the_plain_path_with_the_serializers_result(body):
    assert _create_input_plainly_valid(body) is not None
    assert _create_input_plainly_valid(body) == serializer_result(body)


DOMAIN = "@example.org"
LOCAL = "x" * (MAX_EMAIL - len(DOMAIN))  # an address exactly MAX_EMAIL long
EMAILS_AT_THE_BOUND = [LOCAL + DOMAIN, LOCAL + "x" + DOMAIN, " " + LOCAL + DOMAIN + " "]


@pytest.mark.parametrize("edge", EDGES + EMAILS_AT_THE_BOUND)
@pytest.mark.parametrize("field", ["subject_name", "subject_email", "facts", "evidence_prompts"])
def test_every_edge_string_in_every_text_field_is_decided_alike(field, edge):
    body = {**VALID, field: [edge] if field in ("facts", "evidence_prompts") else edge}
    plain = _create_input_plainly_valid(body)
    assert plain is None or plain == serializer_result(body)
    if serializer_result(body) is not None:
        assert plain == serializer_result(body)  # no valid edge is left to the slow path either
