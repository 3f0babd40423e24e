"""The JSON request parser every project uses: DRF's, with a nesting limit, so a hostile body is a 400.

JSON nested a few thousand levels deep made ``json.load`` raise RecursionError (a 500), and anything nested
just under Python's recursion limit still reached serializers that recurse over it. No API takes more than a
few levels, so anything past MAX_JSON_DEPTH is refused as malformed before a serializer sees it.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32


def json_depth_exceeds(value, limit: int) -> bool:
    """Whether arrays/objects in ``value`` nest deeper than ``limit`` (iterative: no recursion of its own)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        message = f"JSON parse error - nested deeper than {self.max_depth} levels."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(message) from None
        if json_depth_exceeds(data, self.max_depth):
            raise ParseError(message)
        return data
