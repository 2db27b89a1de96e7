"""ONNX Runtime inference for the shared encoder: export the torch transformer
to ONNX (optionally int8-quantized) and run it in an onnxruntime session.

Only the transformer is exported; the task heads (tagger, classifier, QA
logits) stay thinc layers and run on the hidden states as with torch. The
ONNX model lives in the encoder's attrs (`OnnxSession`), so `nlp.to_disk`
saves it in the pipeline folder and `spacy.load` restores it.

onnxruntime is a core dependency: running an exported model needs neither
torch nor onnx. Exporting and quantizing need torch and onnx (the `train`
extra).
"""

import contextlib
import inspect
import io
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import srsly

from ..compression.onnx_fusion import attention_shape, fuse_onnx, fused_op_types
from ..errors import Errors, Warnings, describe
from ..extras import torch_installed
from .attrs import ConfigSetting, bytes_attr
from .int8_state import is_torch_quantized

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
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


#: Intra-op threads of ONNX Runtime sessions where torch is not loaded: 0 is
#: ONNX Runtime's default (one per physical core), 1 in a forked worker.
_threads_without_torch = 0


def _one_thread_after_fork() -> None:
    """In a forked child (`nlp.pipe(n_process=...)` under the "fork" start
    method), run the encoders on one thread: GNU OpenMP's thread pool does
    not survive fork, so once the parent has predicted, a multi-threaded
    torch op in the child waits forever. Each process is one worker anyway."""
    global _threads_without_torch
    _threads_without_torch = 1
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_threads(threads: int) -> None:
    """Threads of the encoders a process loads after this call: torch's
    intra-op threads where torch is installed (ONNX Runtime follows them),
    else ONNX Runtime's own; 0 leaves them as they are."""
    global _threads_without_torch
    if not threads:
        return
    _threads_without_torch = threads
    if torch_installed():
        import torch

        torch.set_num_threads(threads)


def intra_op_threads() -> int:
    """The threads an ONNX session computes on: torch's thread count where
    torch is loaded (so `torch.set_num_threads` sets both runtimes), else
    ONNX Runtime's own default."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else _threads_without_torch


class BackendName(ConfigSetting):
    """The encoder's `backend` setting (the config decides on load, so a
    config override picks the backend)."""


def require_onnxruntime() -> Any:
    """Import onnxruntime, or say how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(Errors.E028) from err
    return onnxruntime


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


@bytes_attr
class OnnxSession:
    """The exported ONNX model of an encoder (bytes, and the backend it was
    made for) and its lazily created onnxruntime session; serializable as a
    thinc attr."""

    def __init__(self, data: Optional[bytes] = None, backend: Optional[str] = None):
        self.data = data
        self.backend = backend
        self._session: Any = None
        self._threads = 0

    def has_model(self, backend: str) -> bool:
        return self.data is not None and self.backend == backend

    def set_model(self, data: bytes, backend: str) -> None:
        self.data, self.backend = data, backend
        self._session = None

    def export_from(self, module: Any, backend: str, *, fuse: bool = True) -> None:
        """Export the torch module, fuse its graph (`fuse`, when fusion
        applies) and for "onnx-int8" quantize it."""
        require_onnxruntime()
        data = export_onnx(module)
        if fuse:
            data = fuse_checked(data, module.config.to_dict())
        self.set_model(quantize_onnx(data) if backend == "onnx-int8" else data, backend)

    def clear(self) -> None:
        """Forget the ONNX model (the torch weights it came from changed)."""
        self.data = self.backend = self._session = None

    def session(self) -> Any:
        """The inference session, made again when the thread count changed."""
        threads = intra_op_threads()
        if self._session is None or threads != self._threads:
            ort = require_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.data, options, providers=["CPUExecutionProvider"])
            self._threads = threads
        return self._session

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(batch, seq) int64 inputs -> (batch, seq, width) float32 hidden states."""
        session = self.session()
        feed = dict(zip(INPUT_NAMES, (ids, mask, types)))
        # the exporter drops inputs the model ignores (no token types)
        wanted = {i.name for i in session.get_inputs()}
        return session.run([OUTPUT_NAME], {k: v for k, v in feed.items() if k in wanted})[0]

    def __getstate__(self) -> dict:
        # an InferenceSession cannot be copied or pickled: it is made again
        return {**self.__dict__, "_session": None}

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps({"backend": self.backend, "model": self.data})

    @classmethod
    def from_bytes(cls, data: bytes) -> "OnnxSession":
        msg = srsly.msgpack_loads(data)
        return cls(msg["model"], msg["backend"])
