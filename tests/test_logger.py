"""`bertprod.ConsoleLogger.v1` never leaves an untrained model-best, and
writes its JSON lines as they come."""

import io
import json
from pathlib import Path

import pytest
from spacy.cli.train import train
from spacy.tokens import DocBin

from conftest import make_examples

CONFIG = Path(__file__).parent.parent / "configs/ner.cfg"


def _train(tmp_path, tiny_bert, nlp, eval_frequency, steps=6, **more):
    corpus = tmp_path / "train.spacy"
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(corpus)
    overrides = {
        "paths.train": str(corpus),
        "paths.dev": str(corpus),
        "components.bertprod_ner.model.encoder.name": tiny_bert,
        "components.bertprod_ner.model.encoder.window": 64,
        "components.bertprod_ner.model.encoder.stride": 32,
        "training.max_steps": steps,
        "training.max_epochs": 0,
        "training.eval_frequency": eval_frequency,
        "training.batcher.size": 40,
        **more,
    }
    out = tmp_path / "training"
    train(CONFIG, out, overrides=overrides)
    return out


def test_a_run_shorter_than_eval_frequency_keeps_no_model_best(tmp_path, tiny_bert, nlp, capfd):
    out = _train(tmp_path, tiny_bert, nlp, eval_frequency=200)
    assert not (out / "model-best").exists()
    assert (out / "model-last" / "meta.json").exists()
    printed = " ".join(capfd.readouterr().out.split())
    assert "[W003] Training ran 7 steps but evaluated only the model after its first update" in printed


def test_a_run_evaluated_after_step_0_keeps_model_best(tmp_path, tiny_bert, nlp, capfd):
    log = tmp_path / "logs" / "train_log.jsonl"
    out = _train(tmp_path, tiny_bert, nlp, eval_frequency=3, **{"training.logger.output_file": str(log)})
    assert (out / "model-best" / "meta.json").exists()
    assert "[W003]" not in capfd.readouterr().out
    # spaCy's ConsoleLogger.v3 lines: every evaluation, scores x 100
    lines = [json.loads(line) for line in log.read_text(encoding="utf8").splitlines()]
    assert [line["step"] for line in lines] == [0, 3, 6]
    assert set(lines[-1]) == {"epoch", "step", "losses", "scores", "score"}
    assert set(lines[-1]["losses"]) == {"bertprod_ner"} and set(lines[-1]["scores"]) == {"ents_f", "ents_p", "ents_r"}
    assert lines[-1]["scores"]["ents_f"] == pytest.approx(100 * lines[-1]["score"])


def test_each_log_line_is_on_disk_when_written(tmp_path, tiny_bert, nlp):
    import spacy

    from spacy_bertprod.training.logger import console_logger

    trained = spacy.load(_train(tmp_path, tiny_bert, nlp, eval_frequency=3) / "model-best")
    log = tmp_path / "live.jsonl"
    step, close = console_logger(progress_bar=False, output_file=str(log))(trained, stdout=io.StringIO(), stderr=io.StringIO())
    scores = {"ents_f": 0.5, "ents_p": 0.25, "ents_r": 1.0}
    step({"epoch": 1, "step": 40, "losses": {"bertprod_ner": 2.5}, "other_scores": scores, "score": 0.5})
    # read before the logger is closed: a training run is still going
    assert json.loads(log.read_text(encoding="utf8")) == {"epoch": 1, "step": 40, "losses": {"bertprod_ner": 2.5}, "scores": {"ents_f": 50.0, "ents_p": 25.0, "ents_r": 100.0}, "score": 0.5}
    close()


@pytest.mark.parametrize("tty,expected", [(True, "eval"), (False, None)])
def test_auto_progress_bar_follows_the_terminal(monkeypatch, tty, expected):
    import spacy_bertprod.training.logger as module

    seen = {}
    monkeypatch.setattr(module.sys.stderr, "isatty", lambda: tty)
    monkeypatch.setattr(module, "console_logger_v3", lambda progress_bar, **kw: seen.setdefault("bar", progress_bar))
    module.console_logger("auto")
    assert seen["bar"] == expected
