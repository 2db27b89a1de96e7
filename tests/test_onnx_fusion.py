"""ONNX Runtime's transformer fusions at export: the fused graph has the
fused operators and the unfused graph's outputs; when fusion fails or finds
nothing, the unfused graph is kept with warning W010."""

import warnings

import numpy as np
import pytest
import spacy

from conftest import TRAIN_DATA, assert_varies
from spacy_bertprod.compression import onnx_export
from spacy_bertprod.compression.onnx_fusion import attention_shape, fuse_onnx, fused_op_types
from spacy_bertprod.compression.pipelines import onnx_pipeline
from spacy_bertprod.layers.onnx_session import OnnxSession
from spacy_bertprod.layers.transformer import hf_config, hf_module

TEXTS = [t for t, _ in TRAIN_DATA]
FUSED = ["Attention", "BiasGelu", "EmbedLayerNormalization", "SkipLayerNormalization"]


def _encoder(nlp):
    return nlp.get_pipe("bertprod_ner").model.get_ref("encoder")


def _probs(nlp):
    return nlp.get_pipe("bertprod_ner").model.predict([nlp.make_doc(t) for t in TEXTS])


def _ents(nlp):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(TEXTS)]


def test_fusion_fuses_and_keeps_the_outputs(trained_ner_path):
    encoder = _encoder(spacy.load(trained_ner_path))
    data = onnx_export.export_onnx(hf_module(encoder))
    fused = fuse_onnx(data, **attention_shape(hf_config(encoder)))
    assert fused_op_types(data) == []
    assert fused_op_types(fused) == FUSED
    plain, fast = OnnxSession(data, "onnx"), OnnxSession(fused, "onnx")
    rng = np.random.default_rng(0)
    for batch, length in ((1, 5), (3, 13), (4, 40)):
        ids = rng.integers(5, 100, (batch, length))
        mask = (np.arange(length)[None, :] < rng.integers(1, length + 1, (batch, 1))).astype("int64")
        types = (np.arange(length)[None, :] >= length // 2).astype("int64").repeat(batch, axis=0)
        expected, got = plain.run(ids, mask, types), fast.run(ids, mask, types)
        real = mask.astype(bool)  # padded positions are never read
        np.testing.assert_allclose(got[real], expected[real], atol=1e-5)


@pytest.mark.parametrize("int8", [False, True])
def test_exported_pipelines_are_fused(trained_ner_path, int8):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fusion applies: no W010
        fused, plain = spacy.load(trained_ner_path), spacy.load(trained_ner_path)
        onnx_pipeline(fused, int8=int8)
        onnx_pipeline(plain, int8=int8, fuse=False)
    expected_ops = [op.replace("Attention", "QAttention") if int8 else op for op in FUSED]
    assert fused.meta["bertprod"]["compression"]["fused_ops"] == {"bertprod_ner": sorted(expected_ops)}
    assert plain.meta["bertprod"]["compression"]["fused_ops"] == {"bertprod_ner": []}
    a, b = _probs(fused), _probs(plain)
    assert_varies(a)
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b))
    assert diff < (0.1 if int8 else 1e-4)
    expected = _ents(spacy.load(trained_ner_path))
    assert all(expected) and _ents(fused) == expected


def _fails(data, **shape):
    raise RuntimeError("no fusion today")


@pytest.mark.parametrize("fuse, reason", [(_fails, "RuntimeError: no fusion today"), (lambda data, **shape: data, "nothing in the graph matched a fusion")])
def test_unfused_graph_is_kept_with_a_warning(trained_ner_path, monkeypatch, fuse, reason):
    plain = spacy.load(trained_ner_path)
    onnx_pipeline(plain, fuse=False)
    monkeypatch.setattr(onnx_export, "fuse_onnx", fuse)
    nlp = spacy.load(trained_ner_path)
    with pytest.warns(UserWarning, match=r"\[W010\] ONNX Runtime's transformer optimizer did not fuse") as record:
        onnx_pipeline(nlp)
    assert reason in str(record[0].message)
    assert nlp.meta["bertprod"]["compression"]["fused_ops"] == {"bertprod_ner": []}
    assert _encoder(nlp).attrs["onnx"].data == _encoder(plain).attrs["onnx"].data
