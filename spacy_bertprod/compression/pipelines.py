"""Compress trained pipelines for CPU serving.

`quantize_pipeline` applies int8 dynamic quantization (torch) to the linear
layers of every bertprod encoder in a pipeline. The quantized weights are
saved in the pipeline folder and `spacy.load` rebuilds the quantized encoder
with no extra step; `nlp.meta["bertprod"]["compression"]` records what was done.

`onnx_pipeline` switches every bertprod encoder to ONNX Runtime inference
(optionally with int8 dynamic quantization of the ONNX model): the ONNX model
is exported now and saved in the pipeline folder, and the pipeline's config
says `backend = "onnx"` (or "onnx-int8"), so `spacy.load` runs it on ONNX
Runtime with no extra step. With `inference_only` the torch weights are left
out: the folder holds the ONNX model, the tokenizer and the heads, loads
without torch (the lean runtime) and cannot be trained (E102).
"""

from pathlib import Path
from typing import Callable, List, Union

import spacy
from spacy.language import Language
from thinc.api import Model

from ..errors import Errors
from ..layers.attrs import ConfigSetting
from ..layers.backends import set_backend, uses_onnx
from ..layers.encoder import bertprod_encoders, encoder_blocks
from ..layers.int8_state import QUANTIZATION_INT8, is_torch_quantized, quantize_module
from ..layers.onnx_session import require_onnxruntime
from ..layers.transformer import drop_torch_weights, hf_module, set_hf_module
from .onnx_export import ONNX_OPSET, QUANTIZED_OPS, export_encoder
from .onnx_fusion import fused_op_types


def quantize_pipeline(nlp: Language) -> List[str]:
    """Quantize the pipeline's encoders in place; returns the components done.
    Refuses pipelines whose encoders run on ONNX Runtime (E032)."""
    encoders = bertprod_encoders(nlp)
    for name, encoder in encoders.items():
        if uses_onnx(encoder):
            raise ValueError(Errors.E032.format(component=name, backend=str(encoder.attrs["backend"])))
    done = []
    for name, encoder in encoders.items():
        module = hf_module(encoder)
        if is_torch_quantized(module):
            continue
        set_hf_module(encoder, quantize_module(module.to("cpu")))
        done.append(name)
    meta = nlp.meta.setdefault("bertprod", {})
    meta["compression"] = {"quantization": QUANTIZATION_INT8, "components": sorted(set(meta.get("compression", {}).get("components", [])) | set(done)), "layers": "torch.nn.Linear", "backend": "torch"}
    return done


def _convert_path(convert: Callable[[Language], List[str]], action: str, input_path: Union[str, Path], output_path: Union[str, Path]) -> List[str]:
    """Load a pipeline, `convert` its encoders, save it elsewhere; a pipeline
    without a bertprod encoder is refused (E076), not copied unchanged."""
    nlp = spacy.load(input_path)
    if not bertprod_encoders(nlp):
        other = [name for name, pipe in nlp.components if isinstance(model := getattr(pipe, "model", None), Model) and model.has_ref("encoder")]
        if other:
            raise ValueError(Errors.E185.format(path=input_path, action=action, components=other))
        raise ValueError(Errors.E076.format(path=input_path, action=action, pipes=nlp.pipe_names))
    done = convert(nlp)
    nlp.to_disk(output_path)
    return done


def quantize_path(input_path: Union[str, Path], output_path: Union[str, Path]) -> List[str]:
    return _convert_path(quantize_pipeline, "quantize", input_path, output_path)


def set_config_backend(nlp: Language, backend: str) -> None:
    """Write `backend` into every bertprod encoder block of the components'
    configs, which `nlp.config` (and the saved config.cfg) is built from.
    ONNX backends run the exported model as it is, so they reset
    `inference_precision` to "fp32"."""
    for name in nlp.component_names:
        for block in encoder_blocks(nlp.get_pipe_config(name)):
            block["backend"] = backend
            if backend != "torch" and block.get("inference_precision", "fp32") != "fp32":
                block["inference_precision"] = "fp32"


def onnx_pipeline(nlp: Language, int8: bool = False, *, inference_only: bool = False, fuse: bool = True) -> List[str]:
    """Run every bertprod encoder of the pipeline on ONNX Runtime (int8: with
    dynamic int8 quantization of its MatMul weights), exporting the ONNX
    models now, their graphs fused by ONNX Runtime's transformer optimizer
    first (`fuse`, where it applies: warning W010 otherwise);
    `inference_only` then drops the torch weights. Returns the components
    whose encoders were converted."""
    ort = require_onnxruntime()
    backend = "onnx-int8" if int8 else "onnx"
    encoders = bertprod_encoders(nlp)
    for encoder in encoders.values():
        if is_torch_quantized(hf_module(encoder)):
            raise ValueError(Errors.E030)
    for encoder in encoders.values():
        set_backend(encoder, backend)
        encoder.attrs["inference_precision"] = ConfigSetting("fp32")
        export_encoder(encoder, fuse=fuse)
        if inference_only:
            drop_torch_weights(encoder)
    set_config_backend(nlp, backend)
    meta = nlp.meta.setdefault("bertprod", {})
    meta["compression"] = {
        "backend": "onnxruntime",
        "encoder_backend": backend,
        "quantization": QUANTIZATION_INT8 if int8 else None,
        "layers": "+".join(QUANTIZED_OPS) + " (per-channel)" if int8 else None,
        "components": sorted(encoders),
        "opset": ONNX_OPSET,
        "onnxruntime": ort.__version__,
        "inference_only": inference_only,
        "fused_ops": {name: fused_op_types(encoder.attrs["onnx"].data) for name, encoder in encoders.items()},
    }
    return list(encoders)


def onnx_path(input_path: Union[str, Path], output_path: Union[str, Path], int8: bool = False, *, inference_only: bool = False, fuse: bool = True) -> List[str]:
    """Load a pipeline, run its encoders on ONNX Runtime, save it elsewhere."""
    return _convert_path(lambda nlp: onnx_pipeline(nlp, int8, inference_only=inference_only, fuse=fuse), "export to ONNX", input_path, output_path)
