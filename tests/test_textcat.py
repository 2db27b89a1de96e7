import warnings

import numpy as np
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam

from conftest import CATS, TRAIN_DATA, cats_examples, random_text, train


def _encoder(path):
    return {"name": path, "window": 16, "stride": 8, "max_batch_wordpieces": 256}


def _train(tiny_bert, exclusive=True, pooling="cls", steps=30, **cfg):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_textcat", config={"exclusive_classes": exclusive, "model": {"encoder": _encoder(tiny_bert), "pooling": pooling}, **cfg})
    examples = cats_examples(nlp)
    return train(nlp, examples, steps=steps), examples


@pytest.mark.parametrize("exclusive,pooling", [(True, "cls"), (True, "mean"), (False, "cls"), (False, "mean")])
def test_learns_training_data(tiny_bert, exclusive, pooling):
    nlp, examples = _train(tiny_bert, exclusive, pooling)
    scores = nlp.evaluate(examples)
    assert scores["cats_macro_f"] == 1.0 and scores["cats_macro_auc"] == 1.0
    cats = nlp(CATS[0][0]).cats
    assert set(cats) == {"POS", "NEG"} and cats["POS"] > 0.5
    if exclusive:
        assert sum(cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_multilabel_thresholds(tiny_bert):
    nlp, _ = _train(tiny_bert, exclusive=False, thresholds={"POS": 1.0})
    doc = nlp(CATS[0][0])
    assert doc.cats["POS"] > 0.5
    assert "POS" not in doc._.bertprod_labels  # its own threshold is 1.0
    assert nlp(CATS[1][0])._.bertprod_labels == ["NEG"]


def test_multilabel_thresholds_below_one_half(tiny_bert):
    # a few steps: scores still near 0.5, some of them below it
    nlp, _ = _train(tiny_bert, exclusive=False, steps=10, threshold=0.35, thresholds={"NEG": 0.4})
    below = 0
    for doc in nlp.pipe([t for t, _ in CATS]):
        expected = [label for label, cut in (("NEG", 0.4), ("POS", 0.35)) if doc.cats[label] >= cut]
        assert sorted(doc._.bertprod_labels) == expected
        below += sum(doc.cats[label] < 0.5 for label in expected)
    assert below > 0  # some label passed a threshold it would fail at 0.5


def test_empty_docs_score_zero(tiny_bert):
    nlp, _ = _train(tiny_bert, steps=1)
    for doc in nlp.pipe(["", "  \n", CATS[0][0]]):
        if doc.text.strip():
            assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
        else:
            assert doc.cats == {"NEG": 0.0, "POS": 0.0}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_long_document_pools_all_windows(tiny_bert, pooling):
    nlp, _ = _train(tiny_bert, pooling=pooling, steps=5)
    encoder = nlp.get_pipe("bertprod_textcat").model.get_ref("encoder")
    words = random_text(800).split()
    text = " ".join(words)
    from spacy_bertprod.layers.encoder import window_plan

    assert window_plan(encoder, [nlp.make_doc(text)]).doc_windows[0][1] > 10
    # only text far beyond the first window differs: the prediction must see it
    other = " ".join(words[:-100] + random_text(100, seed=7).split())
    a, b, again = nlp(text).cats, nlp(other).cats, nlp(text).cats
    assert np.isfinite(list(a.values())).all()
    assert a == again
    assert abs(a["POS"] - b["POS"]) > 1e-6


def test_exclusive_needs_exactly_one_positive(tiny_bert):
    nlp, _ = _train(tiny_bert, steps=0)
    doc = nlp.make_doc("the film")
    for cats in [{"POS": 1.0, "NEG": 1.0}, {"POS": 0.0, "NEG": 0.0}]:
        with pytest.raises(ValueError, match="E014"):
            nlp.update([Example.from_dict(doc, {"cats": cats})])


def test_unknown_category(tiny_bert):
    nlp, _ = _train(tiny_bert, steps=0)
    example = Example.from_dict(nlp.make_doc("the film"), {"cats": {"POS": 1.0, "NEG": 0.0, "MEH": 0.0}})
    with pytest.raises(ValueError, match="E015.*MEH"):
        nlp.update([example])


def test_bad_values_and_settings(tiny_bert):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="E058.*threshold"):
        nlp.add_pipe("bertprod_textcat", config={"threshold": 1.5, "model": {"encoder": _encoder(tiny_bert)}})
    textcat = nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": _encoder(tiny_bert)}})
    with pytest.raises(ValueError, match="E016"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        textcat.initialize(lambda: [Example.from_dict(nlp.make_doc("x"), {"cats": {"POS": 0.5, "NEG": 0.5}})])
    with pytest.raises(ValueError, match="E017"):
        textcat.initialize(lambda: [Example.from_dict(nlp.make_doc("x"), {"cats": {"POS": 1.0}})])


def test_label_without_positive_example_warns(tiny_bert):
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("bertprod_textcat", config={"exclusive_classes": False, "model": {"encoder": _encoder(tiny_bert)}})
    examples = [Example.from_dict(nlp.make_doc("the film"), {"cats": {"POS": 1.0, "NEG": 0.0}})]
    with pytest.warns(UserWarning, match="W001.*NEG"):
        textcat.initialize(lambda: examples)


def test_cls_pooling_needs_own_encoder():
    from spacy.util import registry

    from spacy_bertprod.layers.architectures import text_classifier_v1

    listener = registry.architectures.get("spacy.Tok2VecListener.v1")(width=32, upstream="*")
    with pytest.raises(ValueError, match="E013"):
        text_classifier_v1(listener, pooling="cls")


def test_round_trip(tiny_bert, tmp_path):
    # regression: srsly read threshold 0.3 back as 0.30000000000000004
    nlp, _ = _train(tiny_bert, exclusive=False, steps=5, thresholds={"POS": 0.3})
    nlp.to_disk(tmp_path)
    again = spacy.load(tmp_path)
    assert again.get_pipe("bertprod_textcat").cfg["thresholds"] == {"POS": 0.3}
    for text, _ in CATS:
        assert again(text).cats == nlp(text).cats


def _shared_pipeline(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "bertprod.Encoder.v1", **_encoder(tiny_bert)}})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"}
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": listener}})
    nlp.add_pipe("bertprod_textcat", config={"model": {"encoder": listener, "pooling": "mean"}})
    data = [Example.from_dict(nlp.make_doc(t), {"entities": e, "cats": {"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)}}) for i, (t, e) in enumerate(TRAIN_DATA)]
    nlp.initialize(lambda: data)
    return nlp, data


def _count_forward(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_shared_encoder_runs_transformer_once(tiny_bert, tmp_path):
    nlp, data = _shared_pipeline(tiny_bert)
    optimizer = Adam(1e-3)
    for _ in range(80):
        nlp.update(data, sgd=optimizer)
    module = nlp.get_pipe("tok2vec").model.get_ref("transformer").shims[0]._model
    calls = _count_forward(module)
    doc = nlp(TRAIN_DATA[0][0])
    assert len(calls) == 1
    assert [e.text for e in doc.ents] == ["Angela Merkel", "Siemens", "Munich"]
    assert set(doc.cats) == {"POS", "NEG"}
    # training also runs it once per batch for both heads
    calls.clear()
    nlp.update(data[:2], sgd=optimizer)
    assert len(calls) == 1
    # separate encoders run it twice
    separate = spacy.blank("en")
    separate.add_pipe("bertprod_ner", config={"model": {"encoder": _encoder(tiny_bert)}})
    separate.add_pipe("bertprod_textcat", config={"model": {"encoder": _encoder(tiny_bert)}})
    separate.initialize(lambda: data)
    counts = [_count_forward(separate.get_pipe(n).model.get_ref("encoder").get_ref("transformer").shims[0]._model) for n in ("bertprod_ner", "bertprod_textcat")]
    separate(TRAIN_DATA[0][0])
    assert [len(c) for c in counts] == [1, 1]
    # the shared pipeline round-trips
    nlp.to_disk(tmp_path)
    again = spacy.load(tmp_path)
    for text, _ in TRAIN_DATA:
        before, after = nlp(text), again(text)
        assert after.cats == before.cats
        assert [(e.start, e.end, e.label_) for e in after.ents] == [(e.start, e.end, e.label_) for e in before.ents]


@pytest.mark.parametrize("exclusive", [True, False])
def test_unlabelled_examples_teach_nothing(tiny_bert, exclusive):
    """An example without gold cats passed E014 and its gradient (the
    probabilities themselves, against an all-zero truth) flattened an
    exclusive model while it reported loss 0.0."""
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp, examples = _train(tiny_bert, exclusive=exclusive, steps=10)
    textcat = nlp.get_pipe("bertprod_textcat")
    unlabelled = [Example.from_dict(nlp.make_doc(text), {}) for text, _ in CATS]
    before = textcat.predict([eg.predicted for eg in examples])
    optimizer = Adam(1e-3)
    for _ in range(5):
        losses = nlp.update(unlabelled, sgd=optimizer)
        assert losses["bertprod_textcat"] == 0.0
    np.testing.assert_array_equal(textcat.predict([eg.predicted for eg in examples]), before)
    # a mixed batch: the loss and gradient of its labelled part, nothing else
    mixed = [examples[0], unlabelled[1], examples[2], unlabelled[3]]
    labelled = [examples[0], examples[2]]
    logits = textcat.model.predict([eg.predicted for eg in mixed])
    loss, d_scores = textcat.get_loss(mixed, logits)
    loss_labelled, d_labelled = textcat.get_loss(labelled, logits[[0, 2]])
    assert loss > 0.0 and loss == pytest.approx(loss_labelled, rel=1e-6)
    np.testing.assert_allclose(d_scores[[0, 2]], d_labelled, rtol=1e-6)
    assert not d_scores[[1, 3]].any()
