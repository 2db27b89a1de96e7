"""Every config shipped in the package (spacy_bertprod/configs, which the
repository's configs/ links to) loads and resolves; the text classification
and shared-encoder configs also train a few steps and round-trip."""

from pathlib import Path

import pytest
import spacy
from spacy.schemas import ConfigSchemaTraining
from spacy.training import Example
from spacy.util import load_config, load_model_from_config, registry
from thinc.api import Adam, fix_random_seed

from conftest import TRAIN_DATA, assert_varies
from spacy_bertprod.cli.init_config import CONFIGS_DIR

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(CONFIGS_DIR.glob("*.cfg"))


def _tiny_pipeline(path, tiny_bert, tmp_path):
    """The config's pipeline on the tiny BERT (windows and listener width to fit)."""
    from spacy.tokens import DocBin

    corpus = tmp_path / "c.spacy"
    DocBin().to_disk(corpus)
    config = load_config(path, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)}, interpolate=False)
    for component in config["components"].values():
        model = component.get("model", {})
        for layer in (model, model.get("encoder", {})):
            if layer.get("@architectures") == "bertprod.Encoder.v1":
                layer.update(name=tiny_bert, window=64, stride=32)
            if layer.get("@architectures") == "spacy.Tok2VecListener.v1":
                layer["width"] = 32  # the tiny model's hidden size
    return load_model_from_config(config, auto_fill=True, validate=True)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_resolves(path, tiny_bert, tmp_path):
    nlp = _tiny_pipeline(path, tiny_bert, tmp_path)
    assert nlp.pipe_names
    resolved = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
    assert resolved["optimizer"] is not None


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"ner.cfg", "textcat.cfg", "textcat_multilabel.cfg", "ner_textcat.cfg"}


def test_the_repository_configs_are_the_shipped_ones():
    """One copy: configs/ (project.yml, the README) is the package's folder."""
    assert (ROOT / "configs").resolve() == CONFIGS_DIR.resolve()
    assert CONFIGS_DIR.resolve().is_relative_to(ROOT / "spacy_bertprod")


def _cats(i, multilabel):
    # multi-label: every third text is both
    return {"POS": float(i % 2 == 0 or (multilabel and i % 3 == 0)), "NEG": float(i % 2 == 1 or (multilabel and i % 3 == 0))}


@pytest.mark.parametrize("name", ["textcat.cfg", "textcat_multilabel.cfg", "ner_textcat.cfg"])
def test_config_trains_and_round_trips(name, tiny_bert, tmp_path):
    nlp = _tiny_pipeline(CONFIGS[0].parent / name, tiny_bert, tmp_path)
    multilabel = not nlp.get_pipe("bertprod_textcat").cfg["exclusive_classes"]
    with_ner = "bertprod_ner" in nlp.pipe_names
    if with_ner:  # the shared encoder feeds each wordpiece's casing to the transformer
        assert nlp.get_pipe("tok2vec").model.attrs["input_casing"] is True
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": _cats(i, multilabel), **({"entities": ents} if with_ner else {})}) for i, (text, ents) in enumerate(TRAIN_DATA)]
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    history = []
    for _ in range(25):
        losses = {}
        nlp.update(examples, sgd=optimizer, drop=0.0, losses=losses)
        history.append(losses)
    for component in ("bertprod_textcat", "bertprod_ner") if with_ner else ("bertprod_textcat",):
        assert history[-1][component] < 0.5 * history[0][component], component
    texts = [t for t, _ in TRAIN_DATA]
    docs = list(nlp.pipe(texts))
    assert_varies([[d.cats["POS"]] for d in docs])
    if with_ner:
        assert any(d.ents for d in docs)
    nlp.to_disk(tmp_path / "trained")
    again = spacy.load(tmp_path / "trained")
    for doc, loaded in zip(docs, again.pipe(texts)):
        assert loaded.cats == doc.cats
        assert [(e.start, e.end, e.label_) for e in loaded.ents] == [(e.start, e.end, e.label_) for e in doc.ents]
