"""The Hugging Face torch module as a thinc layer (PyTorchWrapper_v3):
(ids, mask[, token types]) -> hidden states, with its own (de)serialization
(HF config + safetensors, int8 state as plain tensors: never a pickle).

`hf_module` reads the torch module of an encoder and `set_hf_module` swaps
it (pretrained weights, int8 quantization, cut layers): nothing else writes
the shim's module.

Without torch (the lean install) an encoder on ONNX Runtime gets a stand-in
layer (`TorchlessShim`) that keeps the saved torch state as bytes and runs
nothing; an encoder exported `--inference-only` has no torch weights at all
(`InferenceOnlyWeights`, its HF config only).
"""

import contextlib
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, cast

import numpy as np
import srsly
from thinc.api import ArgsKwargs, Model, PyTorchShim, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.shims import Shim
from thinc.types import ArrayXd

from ..errors import Errors, PipelineFileError, describe
from ..extras import torch_installed
from .hf_loader import module_from_config
from .int8_state import INT8_FORMAT, QUANTIZATIONS, int8_tensors, quantized_from_tensors

#: Format of the torch state of an encoder exported `--inference-only`: the
#: HF config and no weights (the ONNX model in the encoder's attrs runs).
INFERENCE_ONLY_FORMAT = "inference-only-v1"


class InferenceOnlyWeights:
    """Where an encoder exported `--inference-only` would hold its torch
    module: the HF config (a dict), no weights. `hf_module` and the torch
    path of `run_transformer` raise E102 for it."""

    def __init__(self, config: Dict[str, Any]):
        self.config = config

    # thinc's PyTorchShim moves its module with the model (to_cpu / to_gpu):
    # there is nothing to move, ONNX Runtime runs on the CPU
    def to(self, *args: Any, **kwargs: Any) -> "InferenceOnlyWeights":
        return self

    def cpu(self) -> "InferenceOnlyWeights":
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> "InferenceOnlyWeights":
        return self


def serialize_module(module: Any) -> bytes:
    """HF config + weights (safetensors); an uninitialized placeholder saves
    as empty. An int8-quantized module is stored as plain tensors
    (`int8_tensors`) with the quantization used to rebuild it: nothing in a
    pipeline folder is a pickle. Inference-only weights save their config
    alone."""
    config = getattr(module, "config", None)
    if config is None:
        return srsly.msgpack_dumps({"config": None, "state": b""})
    if isinstance(module, InferenceOnlyWeights):
        return srsly.msgpack_dumps({"config": config, "format": INFERENCE_ONLY_FORMAT, "state": b""})
    from safetensors.torch import save

    quantization = getattr(module, "bertprod_quantization", None)
    if quantization:
        state = save(int8_tensors(module))
        return srsly.msgpack_dumps({"config": config.to_dict(), "quantization": quantization, "format": INT8_FORMAT, "state": state})
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return srsly.msgpack_dumps({"config": config.to_dict(), "state": save(state)})


def deserialize_module(current: Any, data: bytes, device: Any) -> Any:
    """Rebuild the module `serialize_module` stored. Raises PipelineFileError
    for damaged data and for int8 state in the old pickle format (E045),
    which is never unpickled."""
    try:
        msg = srsly.msgpack_loads(data)
        config = msg["config"]
        quantization = msg.get("quantization")
    except (ValueError, KeyError, TypeError) as err:
        raise PipelineFileError(Errors.E044, err=describe(err)) from err
    if config is None:
        return current
    if msg.get("format") == INFERENCE_ONLY_FORMAT:
        return InferenceOnlyWeights(config)
    if quantization is not None and msg.get("format") != INT8_FORMAT:
        raise PipelineFileError(Errors.E045)
    try:
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r}, expected one of {QUANTIZATIONS}")
        from safetensors.torch import load

        module = module_from_config(config)
        if quantization is not None:
            return quantized_from_tensors(module, quantization, load(msg["state"]))
        module.load_state_dict(load(msg["state"]))
    except Exception as err:  # safetensors, torch and transformers errors
        raise PipelineFileError(Errors.E044, err=describe(err)) from err
    module.to(device)
    return module


def convert_inputs(model: Model, X: Tuple[np.ndarray, ...], is_train: bool):
    """(ids, mask) or (ids, mask, segment ids) -> the HF model's keywords."""
    device = cast(PyTorchShim, model.shims[0]).device
    names = ("input_ids", "attention_mask", "token_type_ids")
    kwargs = {name: xp2torch(model.ops.asarray(cast(ArrayXd, x)), device=device) for name, x in zip(names, X)}
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def convert_outputs(model: Model, inputs_outputs: Any, is_train: bool):
    _, output = inputs_outputs
    hidden = output[0].float()
    Y = torch2xp(hidden)

    def backprop(dY):
        d_hidden = xp2torch(dY, device=hidden.device)
        return ArgsKwargs(args=(hidden,), kwargs={"grad_tensors": (d_hidden,)})

    return Y, backprop


def _placeholder_module() -> Any:
    import torch

    return torch.nn.Module()


class TorchlessShim(Shim):
    """Stands in for thinc's PyTorchShim where torch is not installed, in an
    encoder that runs on ONNX Runtime: it keeps the saved torch state as
    bytes, unread, so the pipeline saves again unchanged (the same bytes as
    PyTorchShim writes), and refuses to run or train (E100)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.state = serialize_module(None)
        self._saved: Optional[Dict[str, Any]] = None

    def __call__(self, inputs: Any, is_train: bool) -> Tuple[Any, Callable]:
        raise ImportError(Errors.E100.format(module="torch"))

    def finish_update(self, optimizer: Any) -> None:
        raise ImportError(Errors.E100.format(module="torch"))

    def to_device(self, device_type: str, device_id: int) -> None:
        """Nothing to move: ONNX Runtime runs on the CPU."""

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps({"config": self.cfg, "state": self.state})

    def from_bytes(self, bytes_data: bytes) -> "TorchlessShim":
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg, self.state, self._saved = msg["config"], msg["state"], None
        return self

    def saved(self) -> Dict[str, Any]:
        """The torch state's HF config and format, read once when asked
        (not on load: the weights may be large and nothing runs them)."""
        if self._saved is None:
            try:
                msg = srsly.msgpack_loads(self.state)
                self._saved = {"config": msg["config"], "format": msg.get("format")}
            except (ValueError, KeyError, TypeError) as err:
                raise PipelineFileError(Errors.E044, err=describe(err)) from err
        return self._saved


class AveragingPyTorchShim(PyTorchShim):
    """thinc's PyTorchShim whose `use_params` also takes the parameter
    averages the optimizer keeps for it (`use_averages = true`): the
    optimizer keys them `(shim id, parameter name)`, thinc's own shim looks
    for string keys only, so spaCy evaluated and saved the encoder's last
    weights beside the heads' averages."""

    @contextlib.contextmanager
    def use_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        # an int8 or inference-only module has no trained parameters to average
        names = [name for name, _ in self._model.named_parameters()] if hasattr(self._model, "named_parameters") else []
        state = {name: xp2torch(params[(self.id, name)], device=self.device) for name in names if (self.id, name) in params}
        if not state:
            with super().use_params(params):
                yield
            return
        backup = {name: value.clone() for name, value in self._model.state_dict().items()}
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)


def _torchless_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    raise ImportError(Errors.E100.format(module="torch"))


def build_transformer_layer(mixed_precision: bool = False, backend: str = "torch") -> Model:
    """The torch transformer as a thinc layer: (ids, mask) -> hidden states.
    Without torch, an encoder on ONNX Runtime gets a stand-in layer of the
    same name and shape (`TorchlessShim`); one on backend "torch" raises E101."""
    if not torch_installed():
        if backend == "torch":
            raise ImportError(Errors.E101)
        return Model("pytorch", _torchless_forward, shims=[TorchlessShim()], dims={"nI": None, "nO": None})
    # thinc's PyTorchWrapper_v3, on the shim that applies parameter averages
    shim = AveragingPyTorchShim(_placeholder_module(), mixed_precision=mixed_precision, serialize_model=serialize_module, deserialize_model=deserialize_module)
    return Model("pytorch", pytorch_forward, attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs}, shims=[shim], dims={"nI": None, "nO": None})


def hf_module(encoder: Model) -> Any:
    """The Hugging Face torch module inside bertprod encoder layer `encoder`:
    E100 without torch, E102 for an encoder exported inference-only."""
    shim = encoder.get_ref("transformer").shims[0]
    if isinstance(shim, TorchlessShim):
        raise ImportError(Errors.E100.format(module="torch"))
    if isinstance(shim._model, InferenceOnlyWeights):
        raise ValueError(Errors.E102)
    return shim._model


def drop_torch_weights(encoder: Model) -> None:
    """Keep only the HF config of the encoder's torch module: an encoder
    whose ONNX model is exported runs without them (`--inference-only`)."""
    set_hf_module(encoder, InferenceOnlyWeights(cast(Dict[str, Any], hf_config(encoder))))


def is_inference_only(encoder: Model) -> bool:
    """Whether encoder layer `encoder` has no torch weights (exported
    `--inference-only`, or loaded so without torch)."""
    shim = encoder.get_ref("transformer").shims[0]
    if isinstance(shim, TorchlessShim):
        return shim.saved()["format"] == INFERENCE_ONLY_FORMAT
    return isinstance(shim._model, InferenceOnlyWeights)


def hf_config(encoder: Model) -> Optional[Dict[str, Any]]:
    """The HF config (a dict) of the encoder's weights, with or without
    torch; None before weights are loaded."""
    shim = encoder.get_ref("transformer").shims[0]
    if isinstance(shim, TorchlessShim):
        return shim.saved()["config"]
    config = getattr(shim._model, "config", None)
    return config if config is None or isinstance(config, dict) else config.to_dict()


def set_hf_module(encoder: Model, module: Any, *, to_device: bool = False) -> None:
    """Swap the torch module inside bertprod encoder layer `encoder` (the
    pretrained model, its int8 version, a student with fewer layers);
    `to_device` first moves it to the layer's device (an int8 module stays
    on the CPU it runs on)."""
    shim = cast(PyTorchShim, encoder.get_ref("transformer").shims[0])
    if to_device:
        module.to(shim.device)
    shim._model = module
