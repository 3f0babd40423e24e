"""The toolkit packages name no storefront domain: a team adopting them on another app meets its own words only.

Strict for code: every identifier (snake_case and CamelCase split into words) and every string literal that
is not a docstring, in every Python file of the toolkit packages. Docstrings and comments may use the
storefront as a worked example. Every other file the packages hold (YAML, HTML, Markdown, ...) is scanned whole;
the storefront's own example data that still lives inside a package is listed below by file, and the list
must shrink (a listed file that no longer names the storefront fails too, so it gets removed here).

"order" is also a plain English and SQL word (``order_by``, "in order"): only ``orders``, ``Order`` and
``order_id``/``order.`` count as the storefront's.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLKIT = ("strangler_sync", "strangler_proxy", "migrations_plan", "servicekit")
DOMAIN = re.compile(
    r"(?<![a-z])(products?|categor(?:y|ies)|stocks?|reviews?|carts?|orders|order(?=_id|_item|\.)|inventory|catalog"
    r"|checkout|payments?|skus?|storefront|wishlists?|coupons?|shipping)(?![a-z])"
)
ORDER_CLASS = re.compile(r"\bOrders?\b")  # in text: the storefront's model


def _identifier_names_domain(name: str) -> bool:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().split("_")
    if any(DOMAIN.fullmatch(word) for word in words) or "orders" in words:
        return True
    # order_by / order_free are SQL and English; Order, OrderLine, order, order_id are the storefront's
    return "order" in words and (name != name.lower() or words == ["order"] or "id" in words or "item" in words)
# the demo's example data shipped inside a package (issue 10: the wheel holds no storefront), to move out
STOREFRONT_DATA_STILL_IN_PACKAGES = {
    "migrations_plan/plans/catalog.yaml",
    "migrations_plan/plans/inventory.yaml",
    "migrations_plan/plans/reviews.yaml",
    "strangler_proxy/routes.yaml",
}


def _toolkit_files() -> list[Path]:
    return sorted(p for pkg in TOOLKIT for p in (REPO / pkg).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".png", ".ico"})


def _docstring_starts(tree: ast.AST) -> set[tuple[int, int]]:
    starts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                starts.add((first.lineno, first.col_offset))
    return starts


def domain_words_in_python(source: str) -> list[tuple[int, str]]:
    """(line, token) of each identifier or non-docstring string literal naming the storefront."""
    docstrings = _docstring_starts(ast.parse(source))
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            if _identifier_names_domain(token.string):
                found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and token.start not in docstrings:
            if DOMAIN.search(token.string) or ORDER_CLASS.search(token.string):
                found.append((token.start[0], token.string[:80]))
        elif token.type == getattr(tokenize, "FSTRING_MIDDLE", None) and DOMAIN.search(token.string):
            found.append((token.start[0], token.string[:80]))
    return found


def test_the_scanner_finds_what_it_must_and_skips_what_it_may():
    source = '''"""Docstring about a product."""
# a comment about the catalog
rows = queryset.order_by("id")  # plain words: order_by
def product_get(): return "review.created"
class OrderLine: pass
x = f"/api/{name}/carts/"
'''
    found = [token for _, token in domain_words_in_python(source)]
    assert found[:3] == ["product_get", '"review.created"', "OrderLine"]
    assert "".join(found[3:]).count("carts") == 1  # one f-string token, or its parts on Python 3.12+


def test_toolkit_code_names_no_storefront_domain():
    offenders = []
    for path in _toolkit_files():
        if path.suffix != ".py":
            continue
        for line, token in domain_words_in_python(path.read_text()):
            offenders.append(f"{path.relative_to(REPO)}:{line}: {token}")
    assert offenders == [], "\n".join(offenders)


def test_toolkit_data_files_name_no_storefront_domain_beyond_the_listed_example_data():
    offenders, still_listed = [], set()
    for path in _toolkit_files():
        relative = str(path.relative_to(REPO))
        if path.suffix == ".py":
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if DOMAIN.search(text) or ORDER_CLASS.search(text):
            if relative in STOREFRONT_DATA_STILL_IN_PACKAGES:
                still_listed.add(relative)
            else:
                offenders.append(relative)
    assert offenders == [], f"storefront names in toolkit files: {offenders}"
    cleaned = STOREFRONT_DATA_STILL_IN_PACKAGES - still_listed
    assert not cleaned, f"no storefront left in {sorted(cleaned)}: remove them from STOREFRONT_DATA_STILL_IN_PACKAGES"


@pytest.mark.parametrize("word", ["product", "categories", "stock", "reviews", "cart", "orders", "inventory",
                                  "catalog", "checkout", "payment", "sku"])
def test_each_domain_word_is_caught_as_an_identifier_and_a_string(word):
    assert domain_words_in_python(f'{word}_id = 1\nx = "{word}.created"\n') == [(1, f"{word}_id"),
                                                                                (2, f'"{word}.created"')]
