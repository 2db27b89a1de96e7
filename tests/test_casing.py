import numpy as np
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam, Config

from conftest import ner_config
from spacy_bertprod.casing import CASE_FEATURES, doc_case_features, word_case
from spacy_bertprod.ner import DEFAULT_NER_MODEL_CFG

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


def _train(tiny_bert, architecture, **arch):
    nlp = spacy.blank("en")
    model = Config(DEFAULT_NER_MODEL_CFG).copy()
    if architecture.endswith(".v1"):
        model.pop("case_features", None), model.pop("case_scale", None)
    model.update({"@architectures": architecture, **arch})
    model["encoder"].update(ner_config(tiny_bert)["model"]["encoder"])
    nlp.add_pipe("bertprod_ner", config={"model": model})
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in CASED_DATA]
    nlp.initialize(lambda: examples)
    optimizer = Adam(2e-3)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_v1_cannot_see_case_v2_can(tiny_bert):
    v1 = _train(tiny_bert, "bertprod.TokenClassifier.v1")
    upper, lower = v1.get_pipe("bertprod_ner").model.predict([v1.make_doc(t) for t, _ in CASED_DATA[:2]])
    np.testing.assert_allclose(upper, lower)  # the uncased tokenizer makes them one input

    v2 = _train(tiny_bert, "bertprod.TokenClassifier.v2")
    output = v2.get_pipe("bertprod_ner").model.get_ref("output")
    encoder_width = v2.get_pipe("bertprod_ner").model.get_ref("encoder").get_dim("nO")
    assert output.get_dim("nI") == encoder_width + len(CASE_FEATURES)
    assert [[(e.text, e.label_) for e in v2(t).ents] for t, _ in CASED_DATA] == [
        [("Bank", "ORG")], [], [("Paris", "LOC")], [],
    ]


def test_v2_round_trip(tiny_bert, tmp_path):
    nlp = _train(tiny_bert, "bertprod.TokenClassifier.v2")
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    docs = [t for t, _ in CASED_DATA]
    for a, b in zip(
        nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in docs]),
        loaded.get_pipe("bertprod_ner").model.predict([loaded.make_doc(t) for t in docs]),
    ):
        np.testing.assert_array_equal(a, b)


def test_case_scale_must_be_positive(tiny_bert):
    with pytest.raises(ValueError, match="E041"):
        _train(tiny_bert, "bertprod.TokenClassifier.v2", case_scale=0)


def test_v2_without_case_features_is_v1(tiny_bert):
    nlp = _train(tiny_bert, "bertprod.TokenClassifier.v2", case_features=False)
    model = nlp.get_pipe("bertprod_ner").model
    assert model.get_ref("output").get_dim("nI") == model.get_ref("encoder").get_dim("nO")
