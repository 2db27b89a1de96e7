"""Every table of figures on the benchmarks page (docs/benchmarks.md) is what
its committed result file (bench/reported/*.json, written by the benchmark
that measured it) renders."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import tables  # noqa: E402

REQUIRED = ("command", "git_commit", "machine", "isa_flags", "date", "figures")


def test_every_benchmarks_table_matches_its_result_file():
    text = tables.PAGE.read_text(encoding="utf8")
    found = tables.blocks(text)
    assert found, "the benchmarks page has no figure tables"
    for block in found:
        assert block["name"] in tables.RENDERERS, f"table {block['name']!r} has no renderer in bench/tables.py"
        assert block["body"] == tables.RENDERERS[block["name"]](), f"table {block['name']!r} differs from its result file: run `python bench/tables.py --write`"


def test_every_result_file_has_a_table():
    """A committed report that no table renders is a figure nobody can see."""
    shown = {name for name in (m["name"] for m in tables.blocks(tables.PAGE.read_text(encoding="utf8")))}
    sources = {"shared_encoder": "sst2_textcat"}
    rendered_files = {sources.get(name, name) for name in shown}
    unshown = {p.stem for p in tables.REPORTED.glob("*.json")} - rendered_files
    assert not unshown, f"bench/reported/{sorted(unshown)} have no table on docs/benchmarks.md"


@pytest.mark.parametrize("path", sorted((ROOT / "bench/reported").glob("*.json")), ids=lambda p: p.name)
def test_result_files_say_how_they_were_made(path):
    report = json.loads(path.read_text(encoding="utf8"))
    missing = [key for key in REQUIRED if key not in report]
    assert not missing, f"{path.name} lacks {missing}"
    assert report["command"].startswith("python bench/") and len(report["git_commit"]) >= 40
    assert report["figures"], f"{path.name} has no figures"


def _scaled(value, factor):
    """Every number in a result file's figures times `factor`."""
    if isinstance(value, dict):
        return {k: _scaled(v, factor) for k, v in value.items()}
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value * factor
    return value


def test_a_changed_figure_is_caught(tmp_path, monkeypatch):
    """The check itself can fail: the figures of a result file changed."""
    text = tables.PAGE.read_text(encoding="utf8")
    name = tables.blocks(text)[0]["name"]
    source = {"shared_encoder": "sst2_textcat"}.get(name, name)
    report = json.loads((tables.REPORTED / f"{source}.json").read_text(encoding="utf8"))
    reported = tmp_path / "reported"
    reported.mkdir()
    for file in tables.REPORTED.glob("*.json"):
        (reported / file.name).write_text(file.read_text(encoding="utf8"), encoding="utf8")
    before = tables.RENDERERS[name]()
    report["figures"] = _scaled(report["figures"], 1.5)
    (reported / f"{source}.json").write_text(json.dumps(report), encoding="utf8")
    monkeypatch.setattr(tables, "REPORTED", reported)
    assert tables.RENDERERS[name]() != before
