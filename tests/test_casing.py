import numpy as np
import pytest
import spacy
from thinc.api import Config

from conftest import make_examples, ner_config, train
from spacy_bertprod.layers.casing import CASE_FEATURES, doc_case_features, word_case
from spacy_bertprod.pipeline.ner import DEFAULT_NER_MODEL_CFG

# Only the casing tells these apart for an uncased encoder.
CASED_DATA = [
    ("He saw Bank in town.", [(7, 11, "ORG")]),
    ("He saw bank in town.", []),
    ("She left Paris for work.", [(9, 14, "LOC")]),
    ("She left paris for work.", []),
]


def _features(text):
    return {name: bool(v) for name, v in zip(CASE_FEATURES, word_case(text))}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("paris", {"lower"}),
        ("Paris", {"title"}),
        ("A", {"title"}),
        ("NATO", {"upper"}),
        ("iPhone", {"mixed"}),
        ("McDonald", {"mixed"}),
        ("1996", {"digit", "no_alpha"}),
        ("B52", {"title", "digit"}),  # one cased letter, like "A"
        ("MP3", {"upper", "digit"}),
        ("Zürich", {"title"}),
        (",", {"no_alpha"}),
        ("東京", set()),  # letters without case: no casing feature
    ],
)
def test_word_case(text, expected):
    assert {name for name, on in _features(text).items() if on} == expected


def test_doc_features_mark_sentence_openings():
    doc = spacy.blank("en")("Paris is big. Berlin too\nRome")
    features = doc_case_features(doc)
    assert features.shape == (len(doc), len(CASE_FEATURES))
    opens = [t.text for t, row in zip(doc, features) if row[CASE_FEATURES.index("opens_sentence")]]
    assert opens == ["Paris", "Berlin", "Rome"]
    assert doc_case_features(spacy.blank("en")("")).shape == (0, len(CASE_FEATURES))


def _train(tiny_bert, data=CASED_DATA, **arch):
    nlp = spacy.blank("en")
    encoder = Config(DEFAULT_NER_MODEL_CFG["encoder"]).copy()
    encoder.update(ner_config(tiny_bert)["model"]["encoder"])
    encoder["input_casing"] = False  # casing reaches the head only (see test_input_casing.py)
    model = {"@architectures": "bertprod.TokenClassifier.v1", "nO": None, "dropout": 0.1, **arch, "encoder": encoder}
    nlp.add_pipe("bertprod_ner", config={"model": model})
    return train(nlp, make_examples(nlp, data), lr=2e-3)


@pytest.mark.parametrize("text", ["", "a", "NATO NATO nato . NATO\n\nNato iPhone 3rd !", "x . x . x"])
def test_doc_features_are_each_tokens_own(text):
    """Read per distinct word, the rows are still each token's own."""
    doc = spacy.blank("en")(text)
    features = doc_case_features(doc)
    assert features.shape == (len(doc), len(CASE_FEATURES))
    for i, token in enumerate(doc):
        opens = i == 0 or "\n" in doc[i - 1].text or doc[i - 1].text in ".!?:"
        assert tuple(features[i]) == (*word_case(token.text), float(opens))


def test_case_features_let_the_head_see_case(tiny_bert):
    v1 = _train(tiny_bert, case_features=False)
    upper, lower = v1.get_pipe("bertprod_ner").model.predict([v1.make_doc(t) for t, _ in CASED_DATA[:2]])
    np.testing.assert_allclose(upper, lower)  # the uncased tokenizer makes them one input

    v2 = _train(tiny_bert, case_window=0)
    output = v2.get_pipe("bertprod_ner").model.get_ref("output")
    encoder_width = v2.get_pipe("bertprod_ner").model.get_ref("encoder").get_dim("nO")
    assert output.get_dim("nI") == encoder_width + len(CASE_FEATURES)
    assert [[(e.text, e.label_) for e in v2(t).ents] for t, _ in CASED_DATA] == [
        [("Bank", "ORG")],
        [],
        [("Paris", "LOC")],
        [],
    ]


def test_own_casing_round_trip(tiny_bert, tmp_path):
    nlp = _train(tiny_bert, case_window=0)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    docs = [t for t, _ in CASED_DATA]
    for a, b in zip(
        nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in docs]),
        loaded.get_pipe("bertprod_ner").model.predict([loaded.make_doc(t) for t in docs]),
    ):
        np.testing.assert_array_equal(a, b)


def test_case_scale_must_be_positive(tiny_bert):
    with pytest.raises(ValueError, match="E037"):
        _train(tiny_bert, case_window=0, case_scale=0)


def test_without_case_features_the_head_sees_the_encoder_only(tiny_bert):
    nlp = _train(tiny_bert, case_window=0, case_features=False)
    model = nlp.get_pipe("bertprod_ner").model
    assert model.get_ref("output").get_dim("nI") == model.get_ref("encoder").get_dim("nO")


# Only the neighbours' casing tells the middle token's tag apart here.
NEIGHBOUR_DATA = [
    ("He met Bank of England staff.", [(7, 22, "ORG")]),
    ("He met bank of England staff.", [(15, 22, "LOC")]),
]


def _rows(nlp, texts, index):
    probs = nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in texts])
    return [p[index] for p in probs]


def test_case_window_sees_neighbours_casing(tiny_bert):
    texts = [t for t, _ in NEIGHBOUR_DATA]
    of = 3
    v2 = _train(tiny_bert, case_window=0, data=NEIGHBOUR_DATA)
    assert v2.make_doc(texts[0])[of].text == "of"
    a, b = _rows(v2, texts, of)
    np.testing.assert_allclose(a, b)  # same wordpieces, same own casing: one input

    v3 = _train(tiny_bert, data=NEIGHBOUR_DATA)
    model = v3.get_pipe("bertprod_ner").model
    encoder_width = model.get_ref("encoder").get_dim("nO")
    assert model.get_ref("output").get_dim("nI") == encoder_width + 3 * len(CASE_FEATURES)
    a, b = _rows(v3, texts, of)
    assert not np.allclose(a, b)
    assert [[(e.text, e.label_) for e in v3(t).ents] for t in texts] == [
        [("Bank of England", "ORG")],
        [("England", "LOC")],
    ]


def test_case_window_stays_inside_each_doc(tiny_bert):
    nlp = _train(tiny_bert, data=NEIGHBOUR_DATA)
    model = nlp.get_pipe("bertprod_ner").model
    alone = model.predict([nlp.make_doc("Paris is big.")])[0]
    # an upper-case doc before it in the batch must not leak into its first token
    batched = model.predict([nlp.make_doc("NATO NATO NATO"), nlp.make_doc(""), nlp.make_doc("Paris is big.")])
    assert batched[1].shape[0] == 0
    np.testing.assert_allclose(batched[2], alone, rtol=1e-5, atol=1e-6)


def test_case_window_round_trip_and_zero(tiny_bert, tmp_path):
    nlp = _train(tiny_bert, data=NEIGHBOUR_DATA, case_window=2)
    model = nlp.get_pipe("bertprod_ner").model
    assert model.get_ref("output").get_dim("nI") == model.get_ref("encoder").get_dim("nO") + 5 * len(CASE_FEATURES)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    texts = [t for t, _ in NEIGHBOUR_DATA]
    for a, b in zip(_rows(nlp, texts, slice(None)), _rows(loaded, texts, slice(None))):
        np.testing.assert_array_equal(a, b)

    alone = _train(tiny_bert, data=NEIGHBOUR_DATA, case_window=0)
    model = alone.get_pipe("bertprod_ner").model
    assert model.get_ref("output").get_dim("nI") == model.get_ref("encoder").get_dim("nO") + len(CASE_FEATURES)


@pytest.mark.parametrize("window,message", [(-1, "E038"), (1.5, "case_window")])
def test_case_window_must_be_whole(tiny_bert, window, message):
    with pytest.raises(ValueError, match=message):
        _train(tiny_bert, case_window=window)
