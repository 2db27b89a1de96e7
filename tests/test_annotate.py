"""`bertprod annotate` (spacy_bertprod/annotate/): batch annotation of a corpus
on the local engine and on Ray Data, resumable exactly once."""

import json
import multiprocessing
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pytest
import spacy
from typer.testing import CliRunner

from conftest import TRAIN_DATA, cats_examples, ner_config, random_text
from spacy_bertprod.annotate import Settings, annotate
from spacy_bertprod.annotate import outputs as annotate_outputs
from spacy_bertprod.annotate.inputs import input_files, plan_shards, read_shard
from spacy_bertprod.cli import bertprod_cli
from spacy_bertprod.pipeline.annotations import doc_annotations

SHARD = 7
BAD_LINES = {5: "{not json", 12: json.dumps({"id": "no-text", "body": "x"}), 20: json.dumps({"id": "number", "text": 42})}


def write_corpus(folder: Path) -> Path:
    """A folder of a JSONL file (ids, extra fields, an empty text, three bad
    lines and a blank one) and a plain-text file: 39 records, so shards of 7
    span both files and the last is short."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(30):
        if i in BAD_LINES:
            lines.append(BAD_LINES[i])
        elif i == 25:
            lines.append("")  # blank: not a record
        else:
            text = "" if i == 9 else TRAIN_DATA[i % len(TRAIN_DATA)][0] if i % 2 else random_text(6 + i % 5, seed=i)
            lines.append(json.dumps({"id": f"doc-{i}", "text": text, "meta": {"i": i}, "lang": "en"}))
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    (folder / "b.txt").write_text("\n".join(t for t, _ in TRAIN_DATA[:4]) + "\n\nZurich and Tokyo\nmünchen ist schön\n", encoding="utf8")
    (folder / "README.md").write_text("not an input file")
    return folder


N_RECORDS = 29 + 7  # a.jsonl (one blank line) + b.txt lines (one blank: an empty doc)
N_REJECTS = len(BAD_LINES)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def textcat_qa_path(tiny_bert, tmp_path_factory) -> Path:
    """A textcat + QA pipeline on the tiny BERT (cats and answers both)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_textcat", config=ner_config(tiny_bert))
    nlp.add_pipe("bertprod_qa", config={"model": {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}, "questions": ["Who was born?"]})
    nlp.initialize(lambda: cats_examples(nlp))
    path = tmp_path_factory.mktemp("textcat-qa")
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module's Ray runs, shut down after."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def settings(pipeline: Path, corpus: Path, out: Path, **kwargs) -> Settings:
    return Settings(pipeline=str(pipeline), input_path=str(corpus), output_dir=str(out), shard_size=SHARD, batch_size=4, **kwargs)


def read_output(out: Path) -> List[Dict]:
    """Every output record, shards in order."""
    manifest = json.loads((out / "manifest.json").read_text())
    return [json.loads(line) for entry in manifest["shards"] for line in (out / entry["file"]).read_text(encoding="utf8").splitlines()]


def shard_bytes(out: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name.startswith("shard-") or p.name == "rejects.jsonl"}


def plain_pipe(pipeline: Path, corpus: Path) -> List[Dict]:
    """The reference: a plain nlp.pipe loop over the good records."""
    nlp = spacy.load(pipeline)
    items = [r for spec in plan_shards(input_files(corpus), SHARD) for r in read_shard(corpus, spec, "text", "id") if hasattr(r, "text")]
    return [{**item.head(), "annotations": doc_annotations(nlp, doc)} for item, doc in zip(items, nlp.pipe(item.text for item in items))]


def assert_same_annotations(got: List[Dict], expected: List[Dict]) -> None:
    """Same documents, entities, cats and answers; scores within 1e-5."""
    assert [(g["id"], g["source"], g["line"], g["text"], g["fields"]) for g in got] == [(e["id"], e["source"], e["line"], e["text"], e["fields"]) for e in expected]
    for g, e in zip(got, expected):
        assert set(g["annotations"]) == set(e["annotations"])
        for key in ("entities", "answers"):
            drop = lambda spans: [{k: v for k, v in s.items() if k != "score"} for s in spans]  # noqa: E731
            assert drop(g["annotations"].get(key, [])) == drop(e["annotations"].get(key, []))
            for a, b in zip(g["annotations"].get(key, []), e["annotations"].get(key, [])):
                assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert g["annotations"].get("cats", {}).keys() == e["annotations"].get("cats", {}).keys()
        for label, score in e["annotations"].get("cats", {}).items():
            assert g["annotations"]["cats"][label] == pytest.approx(score, abs=1e-5)


@pytest.fixture(scope="module")
def local_run(trained_ner_path, corpus, tmp_path_factory) -> Path:
    """An uninterrupted local run on the NER pipeline, with DocBin shards."""
    out = tmp_path_factory.mktemp("local-run")
    annotate(settings(trained_ner_path, corpus, out, docbin=True))
    return out


def test_shards_are_cut_by_input_index_across_files(corpus):
    files = input_files(corpus)
    assert [(source, fmt) for source, _, fmt in files] == [("a.jsonl", "jsonl"), ("b.txt", "text")]
    shards = plan_shards(files, SHARD)
    assert [(s.start, s.end) for s in shards] == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 35), (35, 36)]
    # the shard that spans both files starts in each where the last left off
    assert [(p.source, p.line, p.count) for p in shards[4].pieces] == [("a.jsonl", 30, 1), ("b.txt", 1, 6)]
    records = [r for spec in shards for r in read_shard(corpus, spec, "text", "id")]
    assert [r.index for r in records] == list(range(N_RECORDS))
    assert [(r.source, r.line) for r in records if r.source == "a.jsonl"] == [("a.jsonl", n) for n in range(1, 31) if n != 26]


def test_parquet_rows_read_as_jsonl_lines(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"r{i}", "text": random_text(4, seed=i), "n": i} for i in range(9)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet", row_group_size=4)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("rows.parquet", "rows.jsonl"):
        path = tmp_path / name
        records = [r for spec in plan_shards(input_files(path), 3) for r in read_shard(path, spec, "text", "id")]
        assert [(r.index, r.line, r.id, r.text, r.fields) for r in records] == [(i, i + 1, f"r{i}", row["text"], {"n": i}) for i, row in enumerate(rows)]


def test_local_run_matches_a_plain_pipe_loop_and_lists_rejects(trained_ner_path, corpus, local_run):
    got = read_output(local_run)
    assert_same_annotations(got, plain_pipe(trained_ner_path, corpus))
    assert any(g["annotations"]["entities"] for g in got)
    assert next(g for g in got if g["id"] == "doc-9")["annotations"] == {"entities": []}  # empty text
    assert next(g for g in got if g["source"] == "b.txt" and g["line"] == 5) == {"id": "b.txt:5", "source": "b.txt", "line": 5, "text": "", "fields": {}, "annotations": {"entities": []}}
    rejects = [json.loads(line) for line in (local_run / "rejects.jsonl").read_text().splitlines()]
    assert [(r["source"], r["line"]) for r in rejects] == [("a.jsonl", i + 1) for i in sorted(BAD_LINES)]
    assert "not valid JSON" in rejects[0]["error"] and "no 'text' field" in rejects[1]["error"] and "int, not a string" in rejects[2]["error"]
    manifest = json.loads((local_run / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["records"] == N_RECORDS == manifest["input"]["records"]
    assert manifest["totals"]["rejected"] == N_REJECTS and manifest["totals"]["docs"] == len(got) == N_RECORDS - N_REJECTS
    assert manifest["runs"][-1]["docs"] == len(got) and manifest["runs"][-1]["words"] == manifest["totals"]["words"] > 0
    # the DocBin shards hold the same documents and entities
    nlp = spacy.load(trained_ner_path)
    docs = [doc for entry in manifest["shards"] for doc in spacy.tokens.DocBin().from_disk(local_run / entry["docbin"]).get_docs(nlp.vocab)]
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [[(e["start"], e["end"], e["label"]) for e in g["annotations"]["entities"]] for g in got]
    assert not [p for p in local_run.iterdir() if ".tmp" in p.name]


def test_ray_engine_writes_what_the_local_engine_writes(trained_ner_path, corpus, local_run, ray_local, tmp_path):
    out = tmp_path / "ray"
    summary = annotate(settings(trained_ner_path, corpus, out, docbin=True, engine="ray", workers=2, cpus_per_worker=1))
    assert summary.docs == N_RECORDS - N_REJECTS and summary.rejected == N_REJECTS and summary.shards_written == 6
    assert_same_annotations(read_output(out), read_output(local_run))
    assert shard_bytes(out).keys() == shard_bytes(local_run).keys()
    assert (out / "rejects.jsonl").read_bytes() == (local_run / "rejects.jsonl").read_bytes()


def test_textcat_and_qa_agree_on_every_engine(textcat_qa_path, corpus, ray_local, tmp_path):
    expected = plain_pipe(textcat_qa_path, corpus)
    assert all(set(e["annotations"]) == {"cats", "answers"} for e in expected)
    assert len({round(e["annotations"]["cats"]["POS"], 6) for e in expected}) > 1  # the scores depend on the text
    for engine, workers in (("local", 2), ("ray", 1)):
        annotate(settings(textcat_qa_path, corpus, tmp_path / engine, engine=engine, workers=workers, cpus_per_worker=1 if engine == "ray" else 0))
        assert_same_annotations(read_output(tmp_path / engine), expected)
    assert any(g["annotations"]["answers"] for g in read_output(tmp_path / "ray"))


def _run_then_die(run: Settings, hook: str, n: int) -> None:
    """In a forked child: annotate, SIGKILLed (no cleanup runs) at the `n`-th
    shard: right after its manifest entry was saved ("commit"), or after its
    files were written but before the manifest lists it ("shard_file")."""
    calls = {"n": 0}
    save = annotate_outputs.Manifest.save

    def save_or_die(self, summary=None):
        calls["n"] += 1
        if hook == "shard_file" and calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        save(self, summary)
        if hook == "commit" and calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    annotate_outputs.Manifest.save = save_or_die
    annotate(run)


@pytest.mark.parametrize("hook", ["commit", "shard_file"])
def test_a_killed_run_resumes_exactly_once(trained_ner_path, corpus, local_run, tmp_path, hook):
    """A run killed after 2 shards (or with a third shard file written but not
    yet in the manifest), then resumed: the same bytes as an uninterrupted
    run, every document once."""
    out = tmp_path / "out"
    run = settings(trained_ner_path, corpus, out, docbin=True)
    child = multiprocessing.get_context("fork").Process(target=_run_then_die, args=(run, hook, 3))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["shard"] for e in manifest["shards"]] == ([0, 1, 2] if hook == "commit" else [0, 1])
    if hook == "shard_file":
        assert (out / "shard-000002.jsonl").exists()  # a shard the manifest does not list yet
    summary = annotate(run)
    assert summary.shards_skipped == len(manifest["shards"]) and summary.shards_written == 6 - len(manifest["shards"])
    assert shard_bytes(out) == shard_bytes(local_run)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["records"] == N_RECORDS and manifest["complete"]
    ids = [g["id"] for g in read_output(out)]
    assert len(ids) == len(set(ids)) == N_RECORDS - N_REJECTS
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_resuming_with_other_arguments_is_refused(trained_ner_path, corpus, local_run, tmp_path):
    out = tmp_path / "out"
    annotate(settings(trained_ner_path, corpus, out))
    before = shard_bytes(out)
    for change in ({"shard_size": 5}, {"text_key": "body"}, {"docbin": True}):
        run = replace(settings(trained_ner_path, corpus, out), **change)
        with pytest.raises(ValueError, match=r"\[E142\].*" + next(iter(change))):
            annotate(run)
    assert shard_bytes(out) == before
    # another engine, other workers and batch size make the same output: resumable
    summary = annotate(replace(settings(trained_ner_path, corpus, out), workers=2, batch_size=2))
    assert summary.shards_skipped == 6 and summary.shards_written == 0


def test_strict_stops_at_the_first_bad_line(trained_ner_path, corpus, tmp_path):
    result = CliRunner().invoke(bertprod_cli, ["annotate", str(trained_ner_path), str(corpus), str(tmp_path / "out"), "--strict", "--shard-size", "7"])
    assert result.exit_code == 1
    assert "[E141] Line 6 of 'a.jsonl' is not a document: not valid JSON" in " ".join(result.output.split())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["totals"]["rejected"] == 0


def test_cli_reports_the_summary(trained_ner_path, corpus, tmp_path):
    result = CliRunner().invoke(bertprod_cli, ["annotate", str(trained_ner_path), str(corpus / "b.txt"), str(tmp_path / "out"), "--shard-size", "3"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "7 docs" in output and "docs/s on local" in output and "shards written 3" in output
    result = CliRunner().invoke(bertprod_cli, ["annotate", "--help"])
    assert "--gpus-per-worker" in result.output and "default: 1000" in " ".join(result.output.split())


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A write that fails (here: at fsync, after the bytes went out) leaves
    neither the target nor its temporary file: a reader sees a whole shard
    or none."""
    target = tmp_path / "shard-000000.jsonl"

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        annotate_outputs.atomic_write(target, b'{"id": 1}\n' * 1000)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    annotate_outputs.atomic_write(target, b"whole\n")
    assert [p.name for p in tmp_path.iterdir()] == [target.name] and target.read_bytes() == b"whole\n"


def test_bad_arguments_raise_coded_errors(trained_ner_path, corpus, tmp_path):
    with pytest.raises(ValueError, match=r"\[E143\]"):
        annotate(settings(trained_ner_path, corpus, tmp_path / "a", engine="spark"))
    with pytest.raises(ValueError, match=r"\[E145\] --workers"):
        annotate(settings(trained_ner_path, corpus, tmp_path / "b", workers=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"\[E140\]"):
        annotate(settings(trained_ner_path, tmp_path / "empty", tmp_path / "c"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text("{trunc")
    with pytest.raises(ValueError, match=r"\[E146\]"):
        annotate(settings(trained_ner_path, corpus, tmp_path / "d"))
    with pytest.warns(UserWarning, match=r"\[W030\] --gpus-per-worker"):
        annotate(settings(trained_ner_path, corpus / "b.txt", tmp_path / "e", gpus_per_worker=1.0))
