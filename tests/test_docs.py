"""The README stays a front page (what it is, install, quick start, the two
commands) and the rest lives in the docs site, whose nav names every page."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: the README's size limit: anything longer belongs in docs/
MAX_README_BYTES = 10 * 1024


def commands(markdown: str) -> list:
    """The commands of a Markdown text's fenced shell blocks, in order
    (comments and continuation lines left out)."""
    found = []
    for block in re.findall(r"^```(?:bash|sh|shell|console)\n(.*?)^```", markdown, flags=re.M | re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith(("-", "\\")):
                found.append(line)
    return found


def test_readme_is_at_most_10_kib():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size:,} bytes, over {MAX_README_BYTES:,}: move the detail into docs/"


def test_readme_first_two_commands_are_make_demo_and_make_test():
    assert commands(README.read_text(encoding="utf8"))[:2] == ["make demo", "make test"]


def test_make_test_builds_the_docs_strictly():
    """`make test` (the README's second command) builds the site with --strict."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    test_deps = re.search(r"^test:(.*)$", makefile, flags=re.M)
    assert test_deps and "docs" in test_deps[1].split()
    docs_recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert docs_recipe and re.search(r"mkdocs build .*--strict", docs_recipe[1])
    # mkdocs' --quiet drops the warnings before --strict counts them
    assert "--quiet" not in docs_recipe[1] and " -q" not in docs_recipe[1]


def nav_pages(nav: list) -> list:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_docs_page_is_in_the_nav_and_every_nav_page_exists():
    """A page left out of the nav is unreachable; a nav entry must be a
    committed page or one the build hook generates."""
    import importlib.util

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf8"))
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    generated = set(hooks.PAGES)
    committed = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice"
    assert set(listed) == committed | generated, (set(listed) - committed - generated, committed - set(listed))
    assert not committed & generated, "a generated page is also committed"
