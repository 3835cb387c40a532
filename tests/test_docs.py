"""The documentation's links hold: README.md is the short front door, and every relative link or image in
README.md, docs/*.md and recipes/*/README.md points at a file (and, for ``file.md#anchor``, a heading) that
exists. Also every repository path the README names in backticks (``ser_attacks/...``, ``conf/...``, ...)
exists, so the project tree and the pipeline table follow the code. Fast, no network."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 220

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
REPO_PATH = re.compile(r"(?<![\w./-])((?:ser_attacks|conf|scripts|benchmarks|tests|docker|hydra_plugins|recipes|docs)"
                       r"/[A-Za-z0-9_./-]*)(?![A-Za-z0-9_<*{])")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "recipes").glob("*/README.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks (links inside ``` are examples, not links)."""
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        out.append("" if fence else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces -> hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())   # a link keeps its text
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def broken_links(path: Path) -> list[str]:
    """Every relative link/image target of one Markdown file that does not resolve."""
    bad = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):          # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{target} (no such file: {rel(dest)})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target} (no heading #{anchor} in {rel(dest)})")
    return bad


def missing_repo_paths(path: Path) -> list[str]:
    """Repository paths named in the file's code spans (``ser_attacks/app.py``) that do not exist."""
    text = prose(path.read_text(encoding="utf-8"))
    out = []
    for span in CODE_SPAN.findall(text):
        for p in REPO_PATH.findall(span):
            p = p.rstrip(".")
            if p and not (ROOT / p).exists():
                out.append(p)
    return out


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, (f"README.md has {n} lines (at most {README_MAX_LINES}): "
                                    "move detail to docs/ or recipes/")


def test_there_are_docs_and_recipes_to_check():
    files = doc_files()
    assert len([f for f in files if f.parent.name == "docs"]) >= 5
    assert len([f for f in files if f.parent.parent.name == "recipes"]) >= 3


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_exists(path):
    assert missing_repo_paths(path) == []


def test_readme_reaches_every_doc_and_recipe():
    """Nothing moved out of the README is unreachable: it links every docs/*.md and recipes/*/README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose(text)) if "#" != t[:1]}
    unlinked = [str(f.relative_to(ROOT)) for f in doc_files()[1:] if f.resolve() not in targets]
    assert unlinked == []


def test_readme_names_the_ci_test_command():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in text and "make demo" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_checker_catches_what_it_should(tmp_path):
    """The helpers above fail on a broken link, a missing anchor, an image and a path that do not exist."""
    (tmp_path / "other.md").write_text("# A heading, with punctuation!\n\n## Same\n\n## Same\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](other.md#a-heading-with-punctuation) [ok2](other.md#same-1) [web](https://x.org/y)\n"
                   "[gone](nothere.md) [bad anchor](other.md#nope) ![img](img/missing.png)\n"
                   "```\n[in code](ignored.md)\n```\n`ser_attacks/no_such_module.py` `conf/attack/*.yaml`\n")
    assert broken_links(doc) == [f"nothere.md (no such file: {tmp_path / 'nothere.md'})",
                                 f"other.md#nope (no heading #nope in {tmp_path / 'other.md'})",
                                 f"img/missing.png (no such file: {tmp_path / 'img/missing.png'})"]
    assert missing_repo_paths(doc) == ["ser_attacks/no_such_module.py"]
