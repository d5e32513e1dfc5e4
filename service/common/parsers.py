"""Request body parsing that turns every malformed body into a 400, never a 500."""

from __future__ import annotations

import re

from rest_framework import parsers
from rest_framework.exceptions import ParseError

_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_string(data) -> str | None:
    """What makes this JSON document unacceptable, or None: a lone surrogate in any key or
    string (`"\\ud800"` parses, but is no Unicode text: it cannot be encoded, stored or echoed in
    an error), or a NUL in a key. NUL in a value is left to the field, which names it."""
    pending = [data]
    while pending:  # a loop, not recursion: the document may be nested thousands deep
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if _SURROGATE.search(key):
                    return "a key holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
                if "\x00" in key:
                    return "a key holds a NUL character"
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            return "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: pathologically nested JSON (`[[[[...]]]]` a hundred thousand deep
    fits in a small body) raises RecursionError in the json module, which DRF does not catch; and
    lone surrogates (anywhere) and NUL characters (in keys) are refused as malformed."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        if problem := _bad_string(data):
            raise ParseError(f"JSON parse error - {problem}.")
        return data
