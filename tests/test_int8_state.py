"""torch int8 of the encoder module: quiet, and bit for bit through its tensors."""

import warnings

import torch

from spacy_bertprod.layers.int8_state import QUANTIZATION_INT8, int8_tensors, quantize_module, quantized_from_tensors


def test_quantize_and_load_raise_no_deprecation_notices(tiny_bert):
    """torch's deprecation notices of torch.ao.quantization and quantized
    tensors came on every quantize and every int8 load;
    the int8 weights still come back bit for bit."""
    from transformers import AutoModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = quantize_module(AutoModel.from_pretrained(tiny_bert))
        tensors = int8_tensors(quantized)
        loaded = quantized_from_tensors(AutoModel.from_pretrained(tiny_bert), QUANTIZATION_INT8, tensors)
    notices = [str(w.message).splitlines()[0] for w in caught if "quantiz" in str(w.message)]
    assert not notices, notices
    for key, value in int8_tensors(loaded).items():
        assert torch.equal(value, tensors[key]), key
