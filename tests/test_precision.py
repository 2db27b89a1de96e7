"""`inference_precision`: half-precision prediction under torch autocast.

CI has no GPU, so these run bf16 autocast on CPU; on CUDA the same code path
runs fp16 or bf16 on the GPU.
"""

import numpy as np
import pytest
import spacy

from conftest import TRAIN_DATA, make_examples, ner_config, train
from spacy_bertprod.compression.pipelines import onnx_pipeline, quantize_pipeline
from spacy_bertprod.layers.architectures import encoder_v1

PRECISION_KEY = "components.bertprod_ner.model.encoder.inference_precision"


def _encoder(path, **kwargs):
    model = encoder_v1(name=path, window=16, stride=8, max_batch_wordpieces=64, **kwargs)
    model.initialize()
    return model


def test_bf16_prediction_is_close_to_fp32(nlp, tiny_bert):
    doc = nlp.make_doc("angela merkel visited the siemens plant in munich " * 4)
    fp32 = _encoder(tiny_bert).predict([doc])[0]
    bf16 = _encoder(tiny_bert, inference_precision="bf16").predict([doc])[0]
    assert bf16.dtype == fp32.dtype == np.float32
    assert bf16.shape == fp32.shape
    # it really ran in bf16 (about 3 significant digits), and stayed close
    assert not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=0.1)
    assert np.abs(bf16 - fp32).mean() < 0.02


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch int8
def test_config_override_on_load(tmp_path, tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    examples = make_examples(nlp)
    train(nlp, examples, steps=40)
    nlp.to_disk(tmp_path / "fp32")
    half = spacy.load(tmp_path / "fp32", config={PRECISION_KEY: "bf16"})
    encoder = half.get_pipe("bertprod_ner").model.get_ref("encoder")
    assert encoder.attrs["inference_precision"] == "bf16"
    texts = [text for text, _ in TRAIN_DATA]

    def ents(pipeline):
        return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in pipeline.pipe(texts)]

    expected = ents(nlp)
    assert sum(map(len, expected)) >= len(texts)  # the trained head tags: not a comparison of empties
    assert ents(half) == expected
    # saved and loaded again, the config's setting stays
    half.to_disk(tmp_path / "bf16")
    assert spacy.load(tmp_path / "bf16").config["components"]["bertprod_ner"]["model"]["encoder"]["inference_precision"] == "bf16"
    assert spacy.load(tmp_path / "bf16", config={PRECISION_KEY: "fp32"}).get_pipe("bertprod_ner").model.get_ref("encoder").attrs["inference_precision"] == "fp32"
    # ONNX Runtime runs the exported model as it is: converting resets the
    # setting, so the saved config loads
    onnx = spacy.load(tmp_path / "bf16")
    onnx_pipeline(onnx)
    onnx.to_disk(tmp_path / "onnx")
    reloaded = spacy.load(tmp_path / "onnx")
    assert reloaded.get_pipe("bertprod_ner").model.get_ref("encoder").attrs["inference_precision"] == "fp32"
    assert ents(reloaded) == expected
    # int8 torch layers cannot take half-precision input: a clear error
    quantize_pipeline(half)
    with pytest.raises(ValueError, match="E033.*fp32"):
        half(texts[0])


@pytest.mark.parametrize(
    "kwargs,code,why",
    [({"inference_precision": "int4"}, "E053", "one of"), ({"inference_precision": "bf16", "backend": "onnx"}, "E054", 'backend "torch"')],
)
def test_bad_precision_settings(tiny_bert, kwargs, code, why):
    with pytest.raises(ValueError, match=f"{code}.*inference_precision") as err:
        encoder_v1(name=tiny_bert, window=16, stride=8, **kwargs)
    assert why in str(err.value)
