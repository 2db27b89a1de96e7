import subprocess
import sys

import numpy as np
import spacy

from conftest import TRAIN_DATA, make_examples, ner_config


def test_quantize_round_trip(tmp_path, tiny_bert):
    from thinc.api import Adam

    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp_path / "fp32")
    out = subprocess.run([sys.executable, "-m", "spacy_bertprod", "quantize", str(tmp_path / "fp32"), str(tmp_path / "int8")], capture_output=True, text=True, check=True)
    assert "bertprod_ner" in out.stdout
    int8 = spacy.load(tmp_path / "int8")
    assert int8.meta["bertprod"]["compression"]["quantization"] == "int8-dynamic-per-channel"
    module = int8.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]._model
    import torch

    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in module.modules())
    # smaller on disk, close in output, same entities on the training data
    size = lambda p: (p / "bertprod_ner" / "model").stat().st_size
    assert size(tmp_path / "int8") < size(tmp_path / "fp32")
    doc = nlp.make_doc(TRAIN_DATA[0][0])
    a = nlp.get_pipe("bertprod_ner").model.predict([doc])[0]
    b = int8.get_pipe("bertprod_ner").model.predict([doc])[0]
    assert np.abs(a - b).max() < 0.1
    assert nlp.evaluate(examples)["ents_f"] == int8.evaluate(examples)["ents_f"]
    # and it loads again, quantized, from its own folder
    int8.to_disk(tmp_path / "int8-again")
    again = spacy.load(tmp_path / "int8-again")
    np.testing.assert_array_equal(b, again.get_pipe("bertprod_ner").model.predict([doc])[0])


def test_per_channel_by_default_and_per_tensor_pipelines_still_load(tmp_path, tiny_bert):
    import torch

    from spacy_bertprod.compress import quantize_pipeline
    from spacy_bertprod.encoder import QUANTIZATION_INT8_PER_TENSOR, quantize_module

    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    nlp.initialize(lambda: make_examples(nlp))
    shim = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]
    fp32 = shim._model
    linear = lambda module: next(m for m in module.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear))
    per_tensor = quantize_module(fp32, QUANTIZATION_INT8_PER_TENSOR)
    assert linear(per_tensor).weight().qscheme() == torch.per_tensor_affine
    # a pipeline quantized per tensor (as before per-channel existed) loads as it was saved
    shim._model = per_tensor
    nlp.meta["bertprod"] = {"compression": {"quantization": QUANTIZATION_INT8_PER_TENSOR}}
    nlp.to_disk(tmp_path / "per-tensor")
    doc = nlp.make_doc(TRAIN_DATA[0][0])
    loaded = spacy.load(tmp_path / "per-tensor")
    module = loaded.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]._model
    assert module.bertprod_quantization == QUANTIZATION_INT8_PER_TENSOR
    np.testing.assert_array_equal(nlp.get_pipe("bertprod_ner").model.predict([doc])[0], loaded.get_pipe("bertprod_ner").model.predict([doc])[0])
    # the default is per channel, and closer to fp32 than per tensor
    shim._model = fp32
    reference = nlp.get_pipe("bertprod_ner").model.predict([doc])[0]
    shim._model = per_tensor
    err_tensor = np.abs(nlp.get_pipe("bertprod_ner").model.predict([doc])[0] - reference).max()
    shim._model = fp32
    quantize_pipeline(nlp)
    assert linear(shim._model).weight().qscheme() == torch.per_channel_affine
    err_channel = np.abs(nlp.get_pipe("bertprod_ner").model.predict([doc])[0] - reference).max()
    assert err_channel <= err_tensor
