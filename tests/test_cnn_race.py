"""bench/cnn_race.py's pure helpers (argument parsing, rows, ratios against
the CNN) and the benchmarks page's cnn_race table, on synthetic figures:
no timing here."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import cnn_race  # noqa: E402
import tables  # noqa: E402


def test_parse_bertprod_pairs_and_refusals():
    assert cnn_race.parse_bertprod(["teacher=a/model-best", "student-1=b"]) == {"teacher": Path("a/model-best"), "student-1": Path("b")}
    for bad in (["teacher"], ["=path"], ["teacher="], ["a=x", "a=y"], ["spacy-cnn=x"], ["Student A=x", "student_a=y"]):
        with pytest.raises(SystemExit):
            cnn_race.parse_bertprod(bad)


def test_slug_makes_package_name_parts():
    assert cnn_race.slug("Student-6L (int8)") == "student_6l_int8"
    assert cnn_race.slug("spacy-cnn") == "spacy_cnn"


def test_parse_args_defaults_and_limits():
    args = cnn_race.parse_args(["--bertprod", "t=x", "--out", "/tmp/race"])
    assert (args.threads, args.repeats, args.cold_starts, args.rss_docs) == (2, 3, 3, 1000)
    assert args.cnn_out == Path("/tmp/race/cnn") and args.bertprod == ["t=x"] and not args.skip_cnn_train
    assert cnn_race.parse_args(["--cnn-out", "/tmp/cnn", "--skip-cnn-train"]).cnn_out == Path("/tmp/cnn")
    with pytest.raises(SystemExit):
        cnn_race.parse_args(["--threads", "0"])


def test_thread_settings_and_worker_env():
    assert cnn_race.thread_settings(2) == [2, 1]
    assert cnn_race.thread_settings(1) == [1]
    env = cnn_race.worker_env({"PATH": "/bin", "OMP_NUM_THREADS": "8"}, 1)
    assert env["PATH"] == "/bin" and all(env[name] == "1" for name in cnn_race.THREAD_VARIABLES)


def accuracy(words_per_s, f1=80.0):
    return {"docs": 20, "words": 4000, "words_per_s": words_per_s, "f1": f1, "f1_per_type": {"LOC": f1 + 1, "PER": f1 - 1}}


def row(system, runtime, variant, threads, speeds, f1):
    runs = [accuracy(s, f1) for s in speeds]
    return cnn_race.build_row(system, runtime, variant, threads, runs, {"cold_start_s": 1.5}, {"rss_mb": 300.0}, 12.0)


def test_build_row_takes_median_and_range_of_the_repeats():
    r = row("teacher", "full", "torch fp32", 2, [300.0, 100.0, 200.0], 90.0)
    assert r["words_per_s"] == 200.0 and r["words_per_s_range"] == [100.0, 300.0] and r["words_per_s_runs"] == [300.0, 100.0, 200.0]
    assert (r["f1"], r["f1_per_type"], r["cold_start_s"], r["rss_mb"], r["package_mb"]) == (90.0, {"LOC": 91.0, "PER": 89.0}, 1.5, 300.0, 12.0)
    assert (r["system"], r["runtime"], r["variant"], r["threads"], r["words"]) == ("teacher", "full", "torch fp32", 2, 4000)


def race_rows():
    return [
        row("spacy-cnn", "full", "thinc", 2, [10000.0, 8000.0, 12000.0], 80.0),
        row("spacy-cnn", "full", "thinc", 1, [9000.0, 9000.0, 9000.0], 80.0),
        row("spacy-cnn", "lean", "thinc", 2, [11000.0, 11000.0, 11000.0], 80.0),
        row("teacher", "full", "torch fp32", 2, [1000.0, 1000.0, 1000.0], 90.0),
        row("teacher", "full", "torch fp32", 1, [600.0, 600.0, 600.0], 90.0),
        row("teacher", "lean", "onnx int8 fused", 2, [2200.0, 2200.0, 2200.0], 89.5),
    ]


def test_ratios_pair_each_row_with_the_cnn_of_its_runtime_and_threads():
    ratios = {(r["system"], r["runtime"], r["threads"]): r for r in cnn_race.build_ratios(race_rows())}
    assert set(ratios) == {("teacher", "full", 2), ("teacher", "full", 1), ("teacher", "lean", 2)}
    full = ratios[("teacher", "full", 2)]
    assert full["words_per_s_ratio"] == pytest.approx(0.1)
    assert full["words_per_s_ratio_range"] == pytest.approx([1000 / 12000, 1000 / 8000])  # paired repeat by repeat
    assert full["f1_diff"] == pytest.approx(10.0)
    assert ratios[("teacher", "full", 1)]["words_per_s_ratio"] == pytest.approx(600 / 9000)
    assert ratios[("teacher", "lean", 2)]["words_per_s_ratio"] == pytest.approx(0.2)
    assert ratios[("teacher", "lean", 2)]["f1_diff"] == pytest.approx(9.5)


def figures(threads=2):
    rows = [r for r in race_rows() if r["threads"] in cnn_race.thread_settings(threads)]
    settings = {"threads": threads, "repeats": 3, "cold_starts": 3, "rss_docs": 1000, "batch_size": 32, "test_docs": 20, "test_words": 4000}
    return {"settings": settings, "rows": rows, "ratios": cnn_race.build_ratios(rows)}


def test_table_shows_both_thread_counts_and_the_ratios():
    text = tables.cnn_race_table(figures())
    lines = text.splitlines()
    assert "words/s, 2 threads" in lines[0] and "words/s, 1 thread" in lines[0]
    teacher = next(line for line in lines if line.startswith("| teacher | torch fp32 | full |"))
    assert "1,000 (1,000-1,000)" in teacher and "600 (600-600)" in teacher and "0.10x" in teacher and "+10.00" in teacher
    cnn = next(line for line in lines if line.startswith("| spacy-cnn | thinc | full |"))
    assert "10,000 (8,000-12,000)" in cnn and "9,000 (9,000-9,000)" in cnn
    lean = next(line for line in lines if line.startswith("| teacher | onnx int8 fused | lean |"))
    assert "0.20x" in lean and "+9.50" in lean and lean.endswith("| 1.50 | 300 | 12.0 |")
    assert "| teacher | torch fp32 | full | 91.00 | 89.00 |" in lines  # per type: LOC, PER
    assert "3 interleaved repeats" in text and "20 CoNLL-2003 test documents (4,000 words)" in text


def test_table_at_one_thread_has_one_speed_column():
    text = tables.cnn_race_table(figures(threads=1))
    assert "words/s, 1 thread |" in text.splitlines()[0] and text.splitlines()[0].count("words/s") == 1
    assert "0.07x" in text  # 600 / 9000


def test_renderer_reads_the_report_and_says_where_it_came_from(tmp_path, monkeypatch):
    report = {"command": "python bench/cnn_race.py --report cnn_race", "git_commit": "a" * 40, "machine": "test box", "isa_flags": ["avx2"], "date": "today", "figures": figures()}
    (tmp_path / "cnn_race.json").write_text(json.dumps(report), encoding="utf8")
    monkeypatch.setattr(tables, "REPORTED", tmp_path)
    text = tables.RENDERERS["cnn_race"]()
    assert text.startswith(tables.cnn_race_table(report["figures"])) and "`python bench/cnn_race.py --report cnn_race`" in text
