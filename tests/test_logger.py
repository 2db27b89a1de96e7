"""`bertprod.ConsoleLogger.v1` never leaves an untrained model-best."""

from pathlib import Path

import pytest
from spacy.cli.train import train
from spacy.tokens import DocBin

from conftest import make_examples

CONFIG = Path(__file__).parent.parent / "configs/ner.cfg"


def _train(tmp_path, tiny_bert, nlp, eval_frequency, steps=6):
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
    out = _train(tmp_path, tiny_bert, nlp, eval_frequency=3)
    assert (out / "model-best" / "meta.json").exists()
    assert "[W003]" not in capfd.readouterr().out


@pytest.mark.parametrize("tty,expected", [(True, "eval"), (False, None)])
def test_auto_progress_bar_follows_the_terminal(monkeypatch, tty, expected):
    import spacy_bertprod.training.logger as module

    seen = {}
    monkeypatch.setattr(module.sys.stderr, "isatty", lambda: tty)
    monkeypatch.setattr(module, "console_logger_v3", lambda progress_bar, **kw: seen.setdefault("bar", progress_bar))
    module.console_logger("auto")
    assert seen["bar"] == expected
