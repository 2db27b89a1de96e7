"""Which runtime computes the hidden states of one padded batch: torch
(training, and prediction in fp32), torch autocast (prediction in the
encoder's `inference_precision`) or ONNX Runtime (backend "onnx" /
"onnx-int8", prediction only)."""

from typing import Any, Callable, List, Tuple, cast

import numpy as np
from thinc.api import Model
from thinc.types import Floats3d

from ..errors import Errors
from .int8_state import is_torch_quantized
from .onnx_session import BACKENDS, BackendName, OnnxSession, require_onnxruntime
from .transformer import convert_inputs, convert_outputs, hf_module, is_inference_only

#: `inference_precision` settings and the torch dtype each predicts in.
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def validate_backend(backend: str) -> None:
    """A known backend, whose runtime is installed: a pipeline saved for ONNX
    Runtime fails in `spacy.load` (E028) without onnxruntime, not on its
    first doc."""
    if backend not in BACKENDS:
        raise ValueError(Errors.E052.format(value=backend, options=BACKENDS))
    if backend != "torch":
        require_onnxruntime()


def validate_precision(precision: str, backend: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(Errors.E053.format(value=precision, options=tuple(PRECISIONS)))
    if precision != "fp32" and backend != "torch":
        raise ValueError(Errors.E054.format(value=precision, backend=backend))


def refuse_training(model: Model) -> None:
    """Encoders on ONNX Runtime are not trained: E029, or E102 when there are
    no torch weights to train with backend "torch" either."""
    if is_inference_only(model):
        raise ValueError(Errors.E102)
    raise ValueError(Errors.E029.format(backend=str(model.attrs["backend"])))


def uses_onnx(model: Model) -> bool:
    """Whether encoder layer `model` runs inference in ONNX Runtime."""
    return model.attrs["backend"] != "torch"


def set_backend(model: Model, backend: str) -> None:
    """Switch encoder layer `model` to another inference backend."""
    validate_backend(backend)
    model.attrs["backend"] = BackendName(backend)


def onnx_session(model: Model) -> OnnxSession:
    """The encoder's ONNX session. Its model is exported ahead of time
    (compression/onnx_export.py, `python -m spacy bertprod onnx`), never
    here: the runtime has neither torch nor onnx (E150)."""
    holder: OnnxSession = model.attrs["onnx"]
    backend = str(model.attrs["backend"])
    if not holder.has_model(backend):
        raise ValueError(Errors.E150.format(backend=backend, held=holder.backend or "none", int8=" --int8" if backend == "onnx-int8" else ""))
    return holder


def _predict_autocast(model: Model, X: Tuple[np.ndarray, ...]) -> Tuple[Any, Callable]:
    """Hidden states (as fp32) of one padded batch, predicted under torch
    autocast in the encoder's `inference_precision`. Runs the module itself:
    thinc's predict path would turn autocast off again on CUDA."""
    import torch

    transformer = model.get_ref("transformer")
    module = hf_module(model)
    if is_torch_quantized(module):
        raise ValueError(Errors.E033.format(precision=str(model.attrs["inference_precision"])))
    inputs, _ = convert_inputs(transformer, X, False)
    device = next(module.parameters()).device
    dtype = getattr(torch, PRECISIONS[model.attrs["inference_precision"]])
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=dtype):
            output = module(*inputs.args, **inputs.kwargs)
    finally:
        module.train(was_training)
    hidden, _ = convert_outputs(transformer, (inputs, output), False)
    return hidden, _no_backprop(model)


def _no_backprop(model: Model) -> Callable:
    def backprop(d_hidden: Any) -> Any:
        raise ValueError(Errors.E029.format(backend=str(model.attrs["backend"])))

    return backprop


def _predict_backprop(d_hidden: Any) -> List[Any]:
    """What thinc's PyTorchWrapper gives back after a prediction: nothing."""
    return []


def run_transformer(model: Model, X: Tuple[np.ndarray, ...], is_train: bool) -> Tuple[Any, Callable]:
    """Hidden states of one padded batch from torch or ONNX Runtime."""
    if not uses_onnx(model):
        if is_inference_only(model):  # exported for ONNX Runtime, run as "torch"
            raise ValueError(Errors.E102)
        if is_train:
            return model.get_ref("transformer")(X, is_train)
        if model.attrs.get("inference_precision", "fp32") != "fp32":
            return _predict_autocast(model, X)
        import torch

        # no autograd bookkeeping at all for prediction (thinc's predict path
        # only turns gradients off)
        with torch.inference_mode():
            hidden, _ = model.get_ref("transformer")(X, is_train)
        # thinc's callback would keep the output tensor alive only to do
        # nothing with it (the shim's prediction has no backward pass)
        return hidden, _predict_backprop
    ids, mask = X[:2]
    types = X[2] if len(X) > 2 else np.zeros_like(ids)
    hidden = onnx_session(model).run(ids, mask, types)
    return model.ops.asarray3f(cast(Floats3d, hidden)), _no_backprop(model)
