"""The documentation cannot rot: the site builds in strict mode, the generated reference pages match the code,
every ```sh exec``` block runs, and the README's examples and links are real.

Blocks marked ```sh exec``` (any page under docs/) run in CI: a page's blocks are joined in order and run in one
``bash -eu -o pipefail`` from the repository root, with this interpreter's scripts first on PATH and a private
``STRANGLER_VAR_DIR``; exit 0 passes. They must be cheap (seconds): long walks have their own tests (the
tutorial's ```sh guide``` blocks: tests/migrations_plan/test_guide.py; the adoption guide's ```sh adopt```
blocks: tests/test_adopt_guide.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from strangler_proxy.loader import load_route_file

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXEC_BLOCK = re.compile(r"^```sh exec\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "STRANGLER_ROUTES", "DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_MKDOCS_2_WARNING="1", **extra)
    return env


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path):
    done = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "WARNING" not in output, output[-4000:]
    assert (tmp_path / "site" / "reference" / "route-file" / "index.html").is_file()


def test_the_generated_reference_pages_are_current():
    done = subprocess.run([sys.executable, str(DOCS / "gen_reference.py"), "--check"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _exec_pages() -> dict[str, str]:
    pages = {}
    for page in sorted(DOCS.rglob("*.md")):
        blocks = EXEC_BLOCK.findall(page.read_text(encoding="utf-8"))
        if blocks:
            pages[str(page.relative_to(ROOT))] = "\n".join(blocks)
    return pages


def test_there_are_executable_blocks():
    assert _exec_pages(), "no ```sh exec``` block found under docs/"


@pytest.mark.parametrize("page", sorted(_exec_pages()))
def test_the_executable_blocks_of_a_page_run(page, tmp_path):
    script = _exec_pages()[page]
    done = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=ROOT, stdin=subprocess.DEVNULL,
                          env=_env(STRANGLER_VAR_DIR=str(tmp_path), HOME=str(tmp_path)), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{page}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_readme_is_short_and_its_taste_files_are_valid(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 150 <= len(readme.splitlines()) <= 250
    assert "python3 dev.py demo" in readme and "python3 dev.py test" in readme and "```mermaid" in readme
    route_text, plan_text = _yaml_blocks(readme)
    route_file = tmp_path / "routes.yaml"
    route_file.write_text(route_text, encoding="utf-8")
    table = load_route_file(route_file)  # the loader the planes use; raises on anything it would refuse
    assert [route.prefix for route in table.routes] == ["/api/products/"]
    schema = json.loads((ROOT / "migrations_plan" / "plan-file.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(plan_text), schema)


@pytest.mark.parametrize("markdown", ["README.md", "monolith/README.md"])
def test_relative_links_outside_the_site_point_at_files(markdown):
    path = ROOT / markdown
    missing = [target for target in LINK.findall(path.read_text(encoding="utf-8"))
               if "://" not in target and not (path.parent / target).exists()]
    assert not missing, f"{markdown}: links to missing files {missing}"
