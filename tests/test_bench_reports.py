"""Every committed benchmark report (bench/reported/*.json) says how it was
made: the command, the commit, the machine with its ISA flags, and for each
model it used how that model was made; and the bench helpers that write and
judge reports do what the reports claim."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import common  # noqa: E402

REPORTS = sorted((ROOT / "bench/reported").glob("*.json"))
COMMIT = re.compile(r"^[0-9a-f]{40}(\+dirty)?$")


def provenance_problems(name: str, report: dict) -> list:
    """What a report lacks to say how it and its models were made."""
    problems = []
    if not str(report.get("command", "")).startswith("python bench/"):
        problems.append("no bench command")
    if not COMMIT.match(str(report.get("git_commit", ""))):
        problems.append(f"git_commit {report.get('git_commit')!r} is not a full commit")
    if not report.get("machine") or not report.get("isa_flags"):
        problems.append("no machine or ISA flags")
    flag = re.search(r"--report (\S+)", report.get("command", ""))
    if flag and flag.group(1) != name and "--report" not in report.get("provenance_source", ""):
        problems.append(f"its command writes {flag.group(1)}.json, not {name}.json, and no provenance_source says why")
    for row, commit in report.get("rows_commits", {}).items():
        if not COMMIT.match(commit):
            problems.append(f"row {row!r}: commit {commit!r} is not a full commit")
    models = report.get("models")
    if models is None:  # {}: a report that ran no model (bench/import_time.py)
        problems.append("no models")
    for label, model in (models or {}).items():
        where = f"model {label!r}"
        if not str(model.get("command", "")).startswith("python bench/"):
            problems.append(f"{where}: no bench command that made it")
        unrecorded = " ".join(model.get("unrecorded", []))
        if model.get("git_commit") is None:
            if not model.get("provenance_source") or "commit" not in unrecorded:
                problems.append(f"{where}: no commit, and no provenance_source with the commit listed as unrecorded")
        elif not COMMIT.match(model["git_commit"]):
            problems.append(f"{where}: git_commit {model['git_commit']!r} is not a full commit")
        if "path" in model:  # trained: the step model-best was taken at and its dev score
            if model.get("best_step") is None and "step" not in unrecorded:
                problems.append(f"{where}: no best step, and not listed as unrecorded")
            if not any(key.startswith(("best_dev", "dev_", "meta_performance")) for key in model):
                problems.append(f"{where}: no dev score")
        elif not model.get("how"):
            problems.append(f"{where}: built in the run, but no word on how")
    return problems


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.name)
def test_committed_report_says_how_it_and_its_models_were_made(path):
    report = json.loads(path.read_text(encoding="utf8"))
    assert provenance_problems(path.stem, report) == []


def test_the_check_catches_a_report_without_provenance():
    report = json.loads(REPORTS[0].read_text(encoding="utf8"))
    del report["models"]
    report["isa_flags"] = []
    problems = provenance_problems(REPORTS[0].stem, report)
    assert "no models" in problems and "no machine or ISA flags" in problems


def trained_folder(tmp_path: Path) -> Path:
    """A training output folder as bench/conll_ner.py leaves it."""
    model_dir = tmp_path / "model"
    (model_dir / "model-best").mkdir(parents=True)
    (model_dir / "model-best" / "meta.json").write_text(json.dumps({"performance": {"ents_f": 0.9, "ents_per_type": {}}}))
    log = [{"step": 0, "score": 0.1}, {"step": 200, "score": 0.9}, {"step": 400, "score": 0.85}]
    (model_dir / common.TRAIN_LOG).write_text("".join(json.dumps(line) + "\n" for line in log))
    common.record_made_by(model_dir, config="configs/ner.cfg")
    return model_dir / "model-best"


def test_model_provenance_reads_the_training_folder(tmp_path):
    made = common.model_provenance(trained_folder(tmp_path))
    assert made["command"].startswith("python ") and made["config"] == "configs/ner.cfg"
    assert (made["best_step"], made["best_dev_score"], made["evaluations"]) == (200, 0.9, 3)
    assert made["meta_performance"] == {"ents_f": 0.9}


def test_a_model_nobody_recorded_is_refused(tmp_path):
    (tmp_path / "model-best").mkdir()
    with pytest.raises(SystemExit, match="nothing says how it was made"):
        common.model_provenance(tmp_path / "model-best")


def test_write_report_writes_the_named_file_with_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "REPORTED", tmp_path / "reported")
    monkeypatch.setattr(sys, "argv", ["bench/x.py", "--report", "smoke"])
    best = trained_folder(tmp_path)
    built = common.built_in_run("a tiny random model")
    path = common.write_report("smoke", {"x": 1}, models={"trained": best, "built": built}, rows_commits={"old": "0" * 40})
    assert path == tmp_path / "reported" / "smoke.json"
    report = json.loads(path.read_text())
    report["isa_flags"] = report["isa_flags"] or ["avx2"]  # the machine running the test may list none
    assert provenance_problems("smoke", report) == []
    assert report["models"]["trained"]["best_step"] == 200


def test_records_name_the_commit_a_run_started_at(tmp_path, monkeypatch):
    """A training outlives commits made meanwhile: its record keeps the commit it started at."""
    started = common.git_commit()
    monkeypatch.setattr(common, "checkout_commit", lambda: "f" * 40)  # the checkout moved on
    common.record_made_by(tmp_path, config="configs/ner.cfg")
    assert json.loads((tmp_path / common.MADE_BY).read_text())["git_commit"] == started != "f" * 40


def test_conll_candidates_are_chosen_on_dev_and_all_listed(tmp_path):
    import conll_ner

    folders = []
    for name, best_score in (("short", 0.91), ("long", 0.93), ("mean", 0.92)):
        best = trained_folder(tmp_path / name)
        log = [{"step": 0, "score": 0.0}, {"step": 300, "score": best_score}]
        (best.parent / common.TRAIN_LOG).write_text("".join(json.dumps(line) + "\n" for line in log))
        folders.append(best.parent)
    chosen, records = conll_ner.choose_on_dev(folders)
    assert chosen == tmp_path / "long" / "model" / "model-best"
    assert [(r["name"], r["dev_ents_f"], r["chosen"]) for r in records] == [("short", 0.91, False), ("long", 0.93, True), ("mean", 0.92, False)]
    assert all(r["best_step"] == 300 and r["command"].startswith("python ") for r in records)

    # scored again on one measure (spaCy's tokens), the choice follows that score and keeps the logged one
    rescored = {"short": 0.925, "long": 0.915, "mean": 0.92}
    chosen, records = conll_ner.choose_on_dev(folders, dev_score=lambda path: rescored[path.parent.parent.name])
    assert chosen == tmp_path / "short" / "model" / "model-best"
    assert [(r["name"], r["dev_ents_f"], r["dev_ents_f_logged"], r["chosen"]) for r in records] == [
        ("short", 0.925, 0.91, True),
        ("long", 0.915, 0.93, False),
        ("mean", 0.92, 0.92, False),
    ]


def test_distill_ner_logs_each_dev_evaluation_of_the_distill_output():
    import distill_ner

    header = f"{'step':>6}  {'soft':>10}  {'gold':>10}  {'hidden':>10}  {'score':>6}  {'seconds':>7}"
    runs = ((500, 812.5, 90.25, 0.801, 61), (1000, 402.0, 45.5, 0.853, 120))
    rows = [f"{step:>6}  {soft:>10.2f}  {gold:>10.2f}  {0.0:>10.4f}  {score:>6.3f}  {secs:>7.0f}" for step, soft, gold, score, secs in runs]
    logged = distill_ner.evaluations(["teacher scores cached: 1,000 words in 3 s", header, *rows, "saved"])
    assert [(e["step"], e["score"], e["seconds"]) for e in logged] == [(500, 0.801, 61), (1000, 0.853, 120)]
    assert logged[0]["losses"] == {"soft": 812.5, "gold": 90.25, "hidden": 0.0}


def test_distill_ner_records_the_step_model_best_was_saved_at(tmp_path):
    import distill_ner
    from common import TRAIN_LOG, model_provenance, record_made_by

    # two evaluations that the 3-decimal lines tie: the command's last line says which is model-best
    lines = ["   200  1.00  1.00  0.0000   0.942  10", "   600  1.00  1.00  0.0000   0.942  30", "✔ distilled in 40 s; best dev score 0.9419 at step 600"]
    assert distill_ner.best_of_run(lines) == {"best_step": 600, "best_dev_score": 0.9419}
    assert distill_ner.best_of_run(lines[:2]) == {}
    (tmp_path / "model-best").mkdir()
    (tmp_path / TRAIN_LOG).write_text("".join(json.dumps(e) + "\n" for e in distill_ner.evaluations(lines)), encoding="utf8")
    record_made_by(tmp_path)
    assert model_provenance(tmp_path / "model-best")["best_step"] == 200  # the log alone picks the first of the tie
    record_made_by(tmp_path, **distill_ner.best_of_run(lines))
    assert model_provenance(tmp_path / "model-best")["best_step"] == 600


def test_soak_fails_a_pipeline_that_writes_nothing():
    import soak

    counts = {"docs": 10, "entities": 0, "cats": 10, "answers": 0, "tokens": 50}
    assert soak.writes("ner", counts) == "entities" and soak.writes("shared", counts) == "entities"
    assert soak.writes("textcat", counts) is None and soak.writes("qa", counts) == "answers"
    assert soak.writes("ner", {**counts, "entities": 3}) is None


def test_annotate_fit_separates_fixed_start_up_from_per_document_cost():
    import annotate

    # plain loop 10 ms a document; Ray 20 s to start and 11 ms a document
    pairs = [{"docs": n, "plain": {"seconds": 0.010 * n}, "ray": {"seconds": 20 + 0.011 * n}} for n in (5000, 40000)]
    fit = annotate.fit_overhead(pairs)
    assert fit["fixed_seconds"] == pytest.approx(20.0)
    assert fit["per_doc_share"] == pytest.approx(0.10)
    assert fit["plain_ms_per_doc"] == pytest.approx(10.0)


def test_annotate_local_engine_splits_rays_overhead():
    import annotate

    # plain 10 ms a document; the local engine 2 s + 10.4 ms; Ray 20 s + 11 ms
    pairs = [{"docs": n, "plain": {"seconds": 0.010 * n}, "local": {"seconds": 2 + 0.0104 * n}, "ray": {"seconds": 20 + 0.011 * n}} for n in (5000, 40000)]
    own = annotate.fit_overhead(pairs, "local", "plain")
    ray = annotate.fit_overhead(pairs, "ray", "local")
    assert own["fixed_seconds"] == pytest.approx(2.0) and own["per_doc_share"] == pytest.approx(0.04)
    # Ray's own share is still of the plain loop's seconds a document
    assert ray["fixed_seconds"] == pytest.approx(18.0) and ray["per_doc_share"] == pytest.approx(0.06)
    rounds = [{"fits": {name: annotate.fit_overhead(pairs, *runs) for name, runs in annotate.FITS.items()}} for _ in range(3)]
    summary = annotate.summarise_fits(rounds)
    assert summary["ray_vs_plain"]["per_doc_share"]["median"] == pytest.approx(0.10) and summary["ray_vs_plain"]["per_doc_share"]["met"]
    assert "target_at_most" not in summary["ray_vs_local"]["per_doc_share"]
    # every run goes first once in three rounds
    names = list(annotate.ROUND_RUNS)
    assert {annotate.rotated(names, r)[0] for r in range(3)} == set(names)


def test_serve_ratios_are_words_per_second_of_the_same_round():
    import serve

    def level(clients, words_per_s):
        return {"clients": clients, "words_per_s": words_per_s, "sentences_per_s": 1.0, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "mean_batch_texts": 1.0}

    rounds = [
        {"offline": {"words_per_s": offline}, "batched": [level(32, batched)], "unbatched": [level(32, unbatched)]}
        for offline, batched, unbatched in ((1000, 800, 400), (2000, 1800, 900), (1000, 900, 500))
    ]
    summary = serve.summarise(rounds, [32])
    ratio = summary["batched"]["32"]["vs_offline"]
    assert ratio["all"] == [0.8, 0.9, 0.9] and ratio["median"] == 0.9 and (ratio["min"], ratio["max"]) == (0.8, 0.9)
    assert summary["batched"]["32"]["vs_unbatched"]["median"] == 2.0
    assert summary["unbatched"]["32"]["vs_offline"]["all"] == [0.4, 0.45, 0.5]


def test_tables_render_a_serve_report_in_rounds(tmp_path, monkeypatch):
    import serve
    import tables

    def level(clients, words_per_s):
        return {"clients": clients, "words_per_s": words_per_s, "sentences_per_s": 1.0, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "mean_batch_texts": 1.0}

    rounds = [{"offline": {"words_per_s": 1000}, "batched": [level(32, b)], "unbatched": [level(32, 400)]} for b in (800, 900, 700)]
    summary = serve.summarise(rounds, [32])
    target = {**summary["batched"]["32"]["vs_offline"], "target": 0.85, "met": False}
    figures = {"sentences": 800, "words": 10000, "settings": {"repeats": 3, "mmap_threshold": 131072, "server_cores": 1}, "summary": summary, "rounds": rounds}
    figures["targets"] = {"batched_vs_offline_32_clients": target, "unbatched_vs_offline_32_clients": summary["unbatched"]["32"]["vs_offline"]}
    report = {"command": "python bench/serve.py", "git_commit": "0" * 40, "date": "", "machine": "m", "isa_flags": ["avx2"], "figures": figures}
    (tmp_path / "serve_rounds.json").write_text(json.dumps(report))
    monkeypatch.setattr(tables, "REPORTED", tmp_path)
    text = tables.serve("serve_rounds")
    assert "| batched | 32 | 800 (700-900) |" in text and "0.80x (0.70-0.90) |" in text
    assert "0.80x (0.70-0.90) against the target 0.85x (missed)" in text


def test_tables_render_conll_candidates_rescored_on_one_measure(tmp_path, monkeypatch):
    import tables

    prf = {"ents_p": 0.9, "ents_r": 0.88, "ents_f": 0.89, "ents_per_type": {"PER": {"p": 0.95, "r": 0.94, "f": 0.945}}}
    candidates = [
        {"name": "gold", "command": "python bench/conll_ner.py --epochs 8", "best_step": 2128, "dev_ents_f": 0.935, "dev_ents_f_logged": 0.9399, "chosen": False},
        {"name": "spacytok", "command": "python bench/conll_ner.py --tokenization spacy", "best_step": 2128, "dev_ents_f": 0.938, "dev_ents_f_logged": 0.938, "chosen": True},
    ]
    figures = {"test_scores": prf, "dev_f": 0.938, "dev_f_gold_tokens": 0.9371, "candidates": candidates}
    report = {"command": "python bench/conll_ner.py", "git_commit": "0" * 40, "date": "", "machine": "m", "isa_flags": ["avx2"], "figures": figures}
    (tmp_path / "conll_rescored.json").write_text(json.dumps(report))
    monkeypatch.setattr(tables, "REPORTED", tmp_path)
    text = tables.conll_ner("conll_rescored")
    assert "| gold | `python bench/conll_ner.py --epochs 8` | 2,128 | 93.50 | 93.99 |" in text
    assert "| **spacytok** (chosen) | `python bench/conll_ner.py --tokenization spacy` | 2,128 | 93.80 | 93.80 |" in text
    assert "| dev (model selection) | | | 93.80 |" in text and "| dev, on the gold tokens | | | 93.71 |" in text


def test_conll_earlier_candidates_join_the_choice_with_where_they_were_scored(tmp_path, monkeypatch):
    import conll_ner
    import tables

    old = [
        {"name": "a", "command": "python bench/conll_ner.py --epochs 4", "best_step": 100, "dev_ents_f": 0.93, "chosen": False},
        {"name": "b", "command": "python bench/conll_ner.py --epochs 8", "best_step": 200, "dev_ents_f": 0.94, "chosen": True},
    ]
    prf = {"ents_p": 0.9, "ents_r": 0.88, "ents_f": 0.89, "ents_per_type": {"PER": {"p": 0.95, "r": 0.94, "f": 0.945}}}
    report = {"command": "python bench/conll_ner.py --candidates a b", "git_commit": "1" * 40, "date": "2026-12-07 10:00 UTC", "machine": "m", "isa_flags": [], "models": {}}
    report["figures"] = {"test_scores": prf, "dev_f": 0.94, "candidates": old}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps(report))

    # "a" is trained again here: its earlier record gives way to the new one
    earlier, _ = conll_ner.earlier_candidates(path, ["a"])
    assert [r["name"] for r in earlier] == ["b"] and "chosen" not in earlier[0]
    assert earlier[0]["scored_in"] == {"file": str(path), "command": report["command"], "git_commit": "1" * 40, "date": report["date"]}
    new = {"name": "a", "command": "python bench/conll_ner.py --epochs 12", "best_step": 300, "dev_ents_f": 0.945}
    best = conll_ner.choose_among(earlier + [new])
    assert best is new and [r["chosen"] for r in earlier + [new]] == [False, True]
    # a candidate an earlier run scored that stays chosen keeps that run's figures, named in the table
    best = conll_ner.choose_among(earlier + [{**new, "dev_ents_f": 0.935}])
    assert best["name"] == "b" and "scored_in" in best
    figures = {key: report["figures"][key] for key in conll_ner.CHOSEN_FIGURES if key in report["figures"]}
    figures.update(candidates=earlier + [{**new, "dev_ents_f": 0.935, "chosen": False}], chosen_figures_from=best["scored_in"])
    (tmp_path / "carried.json").write_text(json.dumps({**report, "figures": figures}))
    monkeypatch.setattr(tables, "REPORTED", tmp_path)
    text = tables.conll_ner("carried")
    assert "| **b** (chosen) |" in text and "Scored on dev in an earlier run of this report (at commit `111111111111`, 2026-12-07 10:00 UTC), not again here: b." in text
    assert "test and throughput figures are that run's (`python bench/conll_ner.py --candidates a b`)" in text
    report["figures"]["machine"] = "the earlier host"  # where the carried figures were measured, not this run's machine
    figures["machine"] = "the earlier host"
    (tmp_path / "carried.json").write_text(json.dumps({**report, "figures": figures}))
    assert "(`python bench/conll_ner.py --candidates a b`, the earlier host)" in tables.conll_ner("carried")


def test_annotate_table_splits_cpu_per_document_by_run_and_process():
    import tables

    def pair(docs, plain, local, actor, driver, daemons):
        ray = {"Ray actors (the pipeline)": actor, "this process (driver)": driver, "Ray's daemons": daemons}
        return {"docs": docs, "plain": {"cpu_seconds": {"this process": plain}}, "local": {"cpu_seconds": {"this process (driver)": local}}, "ray": {"cpu_seconds": ray}}

    # per document: plain 10 ms, local 11 ms, Ray's actor 12 ms and its others 1.5 ms; fixed costs cancel
    rounds = [{"pairs": [pair(1000, 10, 15, 20, 3, 4), pair(3000, 30, 37, 44, 5, 5)]} for _ in range(2)]
    text = tables.annotate_cpu({"rounds": rounds})
    assert "the plain loop 10.00 ms (10.00-10.00)" in text and "the local engine 11.00 ms" in text
    assert "Ray's actor 12.00 ms" in text and "reads) 1.50 ms" in text
