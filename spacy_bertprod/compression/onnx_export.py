"""Exporting an encoder to ONNX (the training stack: torch and onnx): the
torch transformer traced to an ONNX graph, ONNX Runtime's transformer fusions
where they apply and give the same hidden states, and int8 dynamic
quantization for backend "onnx-int8". The result goes into the encoder's
`OnnxSession` (layers/onnx_session.py), which runs it.
"""

import contextlib
import inspect
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
from thinc.api import Model

from ..errors import Errors, Warnings, describe
from ..layers.int8_state import is_torch_quantized
from ..layers.onnx_session import INPUT_NAMES, OUTPUT_NAME, OnnxSession, require_onnxruntime
from ..layers.tokenizer import is_loaded
from ..layers.transformer import hf_module
from .onnx_fusion import attention_shape, fuse_onnx, fused_op_types

ONNX_OPSET = 17
#: Operators quantized by "onnx-int8": the linear layers' matrix products,
#: with per-channel weight scales (closer to fp32 than per-tensor or torch's
#: int8 Linear), and in a fused graph the attention's QKV projection (fused
#: `Attention`, which the quantizer makes a `QAttention`). The embedding
#: lookups (Gather) stay fp32: quantizing them too saved 35 MB on MiniLM but
#: cost 0.6 points of SST-2 accuracy, at the same speed.
QUANTIZED_OPS = ("MatMul", "Attention")
#: Largest difference between the fused and the unfused graph's hidden states
#: on the check batch for which the fused graph is kept (fp32 fusions differ
#: by rounding, around 1e-6).
FUSION_ATOL = 1e-3


def require_onnx() -> Any:
    """Import onnx (needed to export and quantize), or say how to install it."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError(Errors.E028) from err
    return onnx


def _hidden_states(module: Any) -> Any:
    """Wrap a HF encoder so the traced graph takes three int64 inputs and
    gives one output, the last hidden state."""
    import torch

    takes_types = "token_type_ids" in inspect.signature(module.forward).parameters

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            kwargs = {"token_type_ids": token_type_ids} if takes_types else {}
            return self.module(input_ids=input_ids, attention_mask=attention_mask, **kwargs)[0]

    return HiddenStates()


def export_onnx(module: Any, *, opset: int = ONNX_OPSET) -> bytes:
    """Export a float torch HF encoder to ONNX bytes: inputs input_ids,
    attention_mask, token_type_ids (int64, dynamic batch and sequence axes),
    output last_hidden_state. Uses the TorchScript exporter (no onnxscript)."""
    import torch

    if is_torch_quantized(module):
        raise ValueError(Errors.E030)
    require_onnx()  # else torch's exporter fails with its own error
    device = next(iter(module.parameters()), torch.empty(0)).device
    # padding in the example keeps the attention-mask path in the graph
    ids = torch.ones((2, 8), dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    types = torch.zeros_like(ids)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES + (OUTPUT_NAME,)}
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer warnings
            torch.onnx.export(
                _hidden_states(module),
                (ids, mask, types),
                buffer,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                **kwargs,
            )
    finally:
        module.train(was_training)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs a pre-processing hint on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx(data: bytes) -> bytes:
    """int8 dynamic quantization (QInt8 per-channel weights) of an ONNX
    model's QUANTIZED_OPS."""
    require_onnxruntime()
    onnx = require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "model.int8.onnx"
        with _quiet_root_logger():
            quantize_dynamic(
                onnx.load_from_string(data),
                output,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                weight_type=QuantType.QInt8,
                # onnx's shape inference gives no type to the outputs of
                # ONNX Runtime's fused operators: they are float
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        return output.read_bytes()


def _max_difference(data: bytes, fused: bytes, vocab_size: int) -> float:
    """Largest difference of two graphs' hidden states on a padded batch."""
    ids = np.random.default_rng(0).integers(0, max(vocab_size, 1), (2, 16))
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    types = np.zeros_like(ids)
    outputs = [OnnxSession(graph, "onnx").run(ids, mask, types) for graph in (data, fused)]
    return float(np.abs(outputs[0] - outputs[1]).max())


def fuse_checked(data: bytes, config: Dict[str, Any]) -> bytes:
    """The graph after ONNX Runtime's transformer fusions (`fuse_onnx`) when
    they apply and give the unfused graph's outputs; otherwise the unfused
    graph, with warning W010 saying why."""
    try:
        with _quiet_root_logger():
            fused = fuse_onnx(data, **attention_shape(config))
        if not fused_op_types(fused):
            reason = "nothing in the graph matched a fusion (not a BERT-style encoder)"
        else:
            difference = _max_difference(data, fused, int(config.get("vocab_size", 1)))
            if difference <= FUSION_ATOL:
                return fused
            reason = f"the fused graph's hidden states differ from the unfused graph's by {difference:.2g}"
    except Exception as err:  # the optimizer raises its own and onnx's errors
        reason = describe(err)
    warnings.warn(Warnings.W010.format(reason=reason), stacklevel=2)
    return data


def export_encoder(encoder: Model, backend: Optional[str] = None, *, fuse: bool = True) -> OnnxSession:
    """Export encoder layer `encoder`'s torch transformer into its ONNX
    session for `backend` (default: the encoder's own), unless the session
    already holds a model for it: the graph fused (`fuse`, when fusion
    applies) and for "onnx-int8" quantized."""
    holder: OnnxSession = encoder.attrs["onnx"]
    backend = backend or str(encoder.attrs["backend"])
    if holder.has_model(backend):
        return holder
    if not is_loaded(encoder):
        raise ValueError(Errors.E005)
    module = hf_module(encoder)
    require_onnxruntime()
    data = export_onnx(module)
    if fuse:
        data = fuse_checked(data, module.config.to_dict())
    holder.set_model(quantize_onnx(data) if backend == "onnx-int8" else data, backend)
    return holder
