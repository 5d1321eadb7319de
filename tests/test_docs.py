"""The documentation agrees with the code: generated pages are current, links resolve, the README
stays short and gives the command CI runs, and nothing points outside the repository."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README] + sorted(DOCS.glob("*.md"))


def _generator():
    spec = importlib.util.spec_from_file_location("outputs_doc", ROOT / "tools" / "outputs_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_outputs_page_is_generated_from_the_schemas():
    gen = _generator()
    page = DOCS / "outputs.md"
    assert page.is_file(), "docs/outputs.md is missing: run `python tools/outputs_doc.py`"
    assert page.read_text() == gen.render(), (
        "docs/outputs.md differs from schemas/*.schema.yaml: run `python tools/outputs_doc.py` and commit the page"
    )


def test_outputs_page_lists_every_table_and_column():
    gen = _generator()
    text = (DOCS / "outputs.md").read_text()
    tables = gen.table_schemas()
    assert {t["name"] for t in tables} >= {"labels", "samples", "faces3d", "cameras", "audit_flags"}
    for table in tables:
        assert f"### {table['name']} {table['version']}" in text
        for col in table["columns"]:
            assert f"| `{col['name']}` |" in text, (table["name"], col["name"])


def test_outputs_check_mode(tmp_path, monkeypatch):
    gen = _generator()
    assert gen.main(["--check"]) == 0
    stale = tmp_path / "outputs.md"
    stale.write_text(gen.render().replace("### labels", "### labelz"))
    monkeypatch.setattr(gen, "OUTPUT", stale)
    assert gen.main(["--check"]) == 1


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _relative_links(path: Path) -> list[str]:
    text = path.read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)          # fenced code
    text = re.sub(r"(?m)^(?:    |\t).*$", "", text)             # indented code
    text = re.sub(r"`[^`\n]*`", "", text)                      # inline code
    links = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue                                            # URLs, mail, in-page anchors
        links.append(target.split("#", 1)[0])
    return links


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_link_checker_sees_links():
    links = _relative_links(README)
    assert "docs/limits.md" in links and "docs/audit_report.png" in links


def test_every_docs_page_is_linked_from_the_readme():
    links = set(_relative_links(README))
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in links]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines (at most 300): move detail into docs/"


def test_readme_test_command_is_what_ci_runs():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = README.read_text()
    assert f"\n    {command}\n" in readme, f"the README must show .ci/run's command as a code line: {command}"
    assert "\n    pip install -e . && snakemake --cores 16\n" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(page):
    text = page.read_text()
    for needle in ("DESIGN.md", "../shared"):
        assert needle not in text, f"{page.relative_to(ROOT)} mentions {needle}"
