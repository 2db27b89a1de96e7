"""`bertprod.Encoder.v1` with `input_casing`: each wordpiece's casing class is
fed to the transformer as its token type."""

import numpy as np
import pytest
import spacy
import torch

from conftest import build_tiny_bert, make_examples, train
from spacy_bertprod.layers.architectures import encoder_v1
from spacy_bertprod.layers.casing import WORDPIECE_CASES, wordpiece_case_ids
from spacy_bertprod.layers.transformer import hf_module

SETTINGS = {"window": 16, "stride": 8, "max_batch_wordpieces": 64}
# Only the casing tells these apart for an uncased encoder.
CASED_DATA = [
    ("He saw Bank in town.", [(7, 11, "ORG")]),
    ("He saw bank in town.", []),
    ("She left Paris for work.", [(9, 14, "LOC")]),
    ("She left paris for work.", []),
]


def _encoder(path, **kwargs):
    model = encoder_v1(name=path, input_casing=True, **{**SETTINGS, **kwargs})
    model.initialize()
    return model


def test_wordpiece_case_ids_read_the_original_characters():
    text = "Apple iPhone NATO of 42 A, Zürich 東京"
    spans = [(0, 5), (6, 12), (13, 17), (18, 20), (21, 23), (24, 25), (25, 26), (27, 33), (34, 36)]
    cases = [WORDPIECE_CASES[i] for i in wordpiece_case_ids(text, np.array(spans))]
    assert cases == ["title", "mixed", "upper", "lower", "none", "title", "none", "title", "none"]
    # a word split into pieces: each piece has the casing of its own characters
    assert [WORDPIECE_CASES[i] for i in wordpiece_case_ids("McDonald", np.array([(0, 2), (2, 5), (5, 8)]))] == [
        "title",
        "title",
        "lower",
    ]
    assert wordpiece_case_ids("", np.zeros((0, 2), dtype="int64")).shape == (0,)


def test_starts_from_the_pretrained_outputs(nlp, tiny_bert):
    docs = [nlp.make_doc("Angela Merkel visited the Siemens plant in MUNICH."), nlp.make_doc("paris")]
    plain = encoder_v1(name=tiny_bert, **SETTINGS)
    plain.initialize()
    cased = _encoder(tiny_bert)
    types = hf_module(cased).embeddings.token_type_embeddings.weight.detach()
    assert types.shape[0] == len(WORDPIECE_CASES) == hf_module(cased).config.type_vocab_size
    # every class starts as a copy of the pretrained type 0
    assert torch.equal(types, hf_module(plain).embeddings.token_type_embeddings.weight.detach()[:1].expand_as(types))
    for a, b in zip(plain.predict(docs), cased.predict(docs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_casing_reaches_the_transformer(nlp, tiny_bert):
    model = _encoder(tiny_bert)
    with torch.no_grad():
        # a shift along one direction (a constant one would vanish in LayerNorm)
        hf_module(model).embeddings.token_type_embeddings.weight[WORDPIECE_CASES.index("title"), 0] += 1.0
    upper, lower = model.predict([nlp.make_doc("Paris in spring"), nlp.make_doc("paris in spring")])
    assert not np.allclose(upper[0], lower[0])
    # the other tokens see the difference through attention
    assert not np.allclose(upper[2], lower[2])


def _train_ner(tiny_bert, input_casing):
    nlp = spacy.blank("en")
    encoder = {"@architectures": "bertprod.Encoder.v1", "name": tiny_bert, "input_casing": input_casing, **SETTINGS}
    model = {"@architectures": "bertprod.TokenClassifier.v1", "nO": None, "dropout": 0.1, "case_features": False, "encoder": encoder}
    nlp.add_pipe("bertprod_ner", config={"model": model})
    return train(nlp, make_examples(nlp, CASED_DATA), lr=2e-3)


def test_ner_without_head_features_learns_case_only_entities(tiny_bert, tmp_path):
    plain = _train_ner(tiny_bert, False)
    upper, lower = plain.get_pipe("bertprod_ner").model.predict([plain.make_doc(t) for t, _ in CASED_DATA[:2]])
    np.testing.assert_allclose(upper, lower)  # one input for the uncased tokenizer

    nlp = _train_ner(tiny_bert, True)
    assert [[(e.text, e.label_) for e in nlp(t).ents] for t, _ in CASED_DATA] == [
        [("Bank", "ORG")],
        [],
        [("Paris", "LOC")],
        [],
    ]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert hf_module(loaded.get_pipe("bertprod_ner").model.get_ref("encoder")).config.type_vocab_size == len(WORDPIECE_CASES)
    docs = [t for t, _ in CASED_DATA]
    for a, b in zip(
        nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in docs]),
        loaded.get_pipe("bertprod_ner").model.predict([loaded.make_doc(t) for t in docs]),
    ):
        np.testing.assert_array_equal(a, b)


def test_onnx_backend_gets_the_casing(nlp, tiny_bert):
    from spacy_bertprod.compression.onnx_export import export_encoder
    from spacy_bertprod.layers.backends import set_backend

    model = _encoder(tiny_bert)
    with torch.no_grad():
        hf_module(model).embeddings.token_type_embeddings.weight[1:] += torch.randn(len(WORDPIECE_CASES) - 1, 32)
    docs = [nlp.make_doc("Angela MERKEL visited iPhone plant in munich."), nlp.make_doc("Paris")]
    expected = model.predict(docs)
    set_backend(model, "onnx")
    export_encoder(model)
    for a, b in zip(expected, model.predict(docs)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_clear_errors(tiny_bert, tmp_path):
    from transformers import DistilBertConfig, DistilBertModel

    with pytest.raises(ValueError, match="input_casing"):
        encoder_v1(name=tiny_bert, input_casing="yes")
    # a model without token type embeddings
    path = build_tiny_bert(tmp_path / "distil")
    DistilBertModel(DistilBertConfig(vocab_size=200, dim=32, n_layers=1, n_heads=2, hidden_dim=64)).save_pretrained(str(path))
    with pytest.raises(ValueError, match="E039"):
        _encoder(str(path))
    # question answering needs the token types for question / context
    nlp = spacy.blank("en")
    encoder = {"@architectures": "bertprod.Encoder.v1", "name": tiny_bert, "input_casing": True, "window": 64, "stride": 32}
    with pytest.raises(ValueError, match="E040"):
        nlp.add_pipe("bertprod_qa", config={"model": {"encoder": encoder}})


def test_int8_and_student_keep_the_casing_types(tiny_bert, tmp_path):
    from spacy_bertprod.compression.pipelines import quantize_pipeline
    from spacy_bertprod.training.distiller import make_student

    teacher = _train_ner(tiny_bert, True)
    teacher_types = hf_module(teacher.get_pipe("bertprod_ner").model.get_ref("encoder")).embeddings.token_type_embeddings.weight
    student = make_student(teacher, n_layers=1)
    student_types = hf_module(student.get_pipe("bertprod_ner").model.get_ref("encoder")).embeddings.token_type_embeddings.weight
    assert torch.equal(student_types, teacher_types)
    assert student.get_pipe("bertprod_ner").model.get_ref("encoder").attrs["input_casing"]

    quantize_pipeline(teacher)
    texts = [t for t, _ in CASED_DATA]
    before = [[(e.text, e.label_) for e in doc.ents] for doc in teacher.pipe(texts)]
    teacher.to_disk(tmp_path / "int8")
    loaded = spacy.load(tmp_path / "int8")
    assert [[(e.text, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)] == before
    assert hf_module(loaded.get_pipe("bertprod_ner").model.get_ref("encoder")).config.type_vocab_size == len(WORDPIECE_CASES)
