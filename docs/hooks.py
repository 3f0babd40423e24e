"""MkDocs hook: executable-block markers stay in the Markdown, out of the rendered page.

The docs mark command blocks that CI runs with a second word after the language (```` ```sh exec ````,
```` ```sh guide ````, ```` ```sh adopt ````); a code host shows them as plain `sh`, but Python-Markdown's fences
do not take the extra word, so it is dropped here before rendering.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"^(?P<fence>```+)(?P<lang>[\w+-]+) [\w-]+[ \t]*$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return MARKER.sub(r"\g<fence>\g<lang>", markdown)
