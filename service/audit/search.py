"""Full-text search over the audit log: what an event's searchable text is, and how a query matches it.

The searchable text of an event is its action code (dots and underscores read as spaces, so
`request.rejected` is the words "request rejected") and every string in its `data` (a reason, a
channel, a worker, a unit id, ...). Personal data is never in the log (events hold hashes), so the
index holds none either: nothing is stored for search beyond an index over what is stored already.

PostgreSQL: `websearch_to_tsquery` (quoted phrases, `or`, `-word`) with the English configuration
(so "rejecting" finds "rejected"), against a GIN expression index (migration 0003,
`audit_event_search_idx`). SQLite (the embedded demo): every word must occur, case-insensitively,
in the action code or the data.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import F, Func, Q, TextField
from django.db.models.functions import Cast

from .events import EVENTS

# The indexed expression, word for word as migration 0003 creates it: PostgreSQL uses the index only
# for this exact expression, so change both together (test_search.py checks that the index is used).
SEARCH_DOCUMENT_SQL = (
    "(to_tsvector('english'::regconfig, translate({action}, '._', '  ')) || jsonb_to_tsvector('english'::regconfig, {data}, '[\"string\"]'::jsonb))"
)
SEARCH_INDEX_NAME = "audit_event_search_idx"
MAX_SEARCH_LENGTH = 200


class SearchDocument(Func):
    """The searchable text of an event, as a tsvector (see SEARCH_DOCUMENT_SQL)."""

    output_field = SearchVectorField()

    def __init__(self) -> None:
        super().__init__(F("action"), F("data"))

    def as_sql(self, compiler, connection, **extra_context):
        action_sql, action_params = compiler.compile(self.source_expressions[0])
        data_sql, data_params = compiler.compile(self.source_expressions[1])
        return SEARCH_DOCUMENT_SQL.format(action=action_sql, data=data_sql), [*action_params, *data_params]


def _action_namespaces() -> set[str]:
    return {code.split(".")[0] for code in EVENTS}


def _as_phrase(word: str) -> str:
    return re.sub(r"[._]+", " ", word).strip()


def normalise_query(text: str) -> str:
    """An action code typed into the search (`request.rejected`, `forget_set.`) becomes the phrase
    of its words ("request rejected"), the way the action is indexed. Anything else is left to the
    text-search parser, which reads the query exactly as it read the data."""
    namespaces = _action_namespaces()
    parts = text.split('"')
    for index, part in enumerate(parts):
        if index % 2:  # inside quotes: already a phrase
            parts[index] = " ".join(_as_phrase(word) if word.split(".")[0].lower() in namespaces else word for word in part.split())
            continue
        words = []
        for word in part.split():
            negated, core = ("-", word[1:]) if word.startswith("-") else ("", word)
            if core.split(".")[0].lower() in namespaces and re.search(r"[._]", core):
                words.append(f'{negated}"{_as_phrase(core)}"')
            else:
                words.append(word)
        parts[index] = " ".join(words)
    return '"'.join(parts)


def search_condition(text: str) -> Q:
    """The filter for a search text (an empty one matches everything)."""
    text = " ".join(text.split())
    if not text:
        return Q()
    if connection.vendor == "postgresql":
        return Q(search_document=SearchQuery(normalise_query(text), search_type="websearch", config="english"))
    condition = Q()
    for word in text.replace('"', " ").split():
        negated = word.startswith("-") and len(word) > 1
        word = word[1:] if negated else word
        if word.lower() == "or":
            continue
        match = Q(action__icontains=word) | Q(search_data__icontains=word)
        condition &= ~match if negated else match
    return condition


def with_search_document(events):
    """The queryset with the alias that search_condition() filters on."""
    if connection.vendor == "postgresql":
        return events.alias(search_document=SearchDocument())
    return events.alias(search_data=Cast("data", TextField()))
