"""Every file in configs/ loads and resolves."""

from pathlib import Path

import pytest
from spacy.schemas import ConfigSchemaTraining
from spacy.util import load_config, load_model_from_config, registry

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.cfg"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_resolves(path, tiny_bert, tmp_path):
    from spacy.tokens import DocBin

    corpus = tmp_path / "c.spacy"
    DocBin().to_disk(corpus)
    config = load_config(path, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)}, interpolate=False)
    for component in config["components"].values():
        model = component.get("model", {})
        for layer in (model, model.get("encoder", {})):
            if layer.get("@architectures") in ("bertprod.Encoder.v1", "bertprod.Encoder.v2"):
                layer.update(name=tiny_bert, window=64, stride=32)
            if layer.get("@architectures") == "spacy.Tok2VecListener.v1":
                layer["width"] = 32  # the tiny model's hidden size
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names
    resolved = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
    assert resolved["optimizer"] is not None


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"ner.cfg", "textcat.cfg", "textcat_multilabel.cfg", "ner_textcat.cfg"}
