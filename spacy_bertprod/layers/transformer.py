"""The Hugging Face torch module as a thinc layer (PyTorchWrapper_v3):
(ids, mask[, token types]) -> hidden states, with its own (de)serialization
(HF config + safetensors, int8 state as plain tensors: never a pickle).

`hf_module` reads the torch module of an encoder and `set_hf_module` swaps
it (pretrained weights, int8 quantization, cut layers): nothing else writes
the shim's module.
"""

import os
import sys
from typing import Any, Tuple, cast

import numpy as np
import srsly
from thinc.api import ArgsKwargs, Model, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from thinc.types import ArrayXd

from ..errors import Errors, PipelineFileError, describe
from ..hf_loader import module_from_config
from .quantization import INT8_FORMAT, QUANTIZATIONS, int8_tensors, quantized_from_tensors


def serialize_module(module: Any) -> bytes:
    """HF config + weights (safetensors); an uninitialized placeholder saves
    as empty. An int8-quantized module is stored as plain tensors
    (`int8_tensors`) with the quantization used to rebuild it: nothing in a
    pipeline folder is a pickle."""
    from safetensors.torch import save

    config = getattr(module, "config", None)
    if config is None:
        return srsly.msgpack_dumps({"config": None, "state": b""})
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
    from safetensors.torch import load

    try:
        msg = srsly.msgpack_loads(data)
        config = msg["config"]
        quantization = msg.get("quantization")
    except (ValueError, KeyError, TypeError) as err:
        raise PipelineFileError(Errors.E044, err=describe(err)) from err
    if config is None:
        return current
    if quantization is not None and msg.get("format") != INT8_FORMAT:
        raise PipelineFileError(Errors.E045)
    try:
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {quantization!r}, expected one of {QUANTIZATIONS}")
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


def build_transformer_layer(mixed_precision: bool = False) -> Model:
    """The torch transformer as a thinc layer: (ids, mask) -> hidden states."""
    return PyTorchWrapper_v3(
        _placeholder_module(),
        convert_inputs=convert_inputs,
        convert_outputs=convert_outputs,
        mixed_precision=mixed_precision,
        serialize_model=serialize_module,
        deserialize_model=deserialize_module,
    )


def hf_module(encoder: Model) -> Any:
    """The Hugging Face torch module inside bertprod encoder layer `encoder`."""
    return encoder.get_ref("transformer").shims[0]._model


def set_hf_module(encoder: Model, module: Any, *, to_device: bool = False) -> None:
    """Swap the torch module inside bertprod encoder layer `encoder` (the
    pretrained model, its int8 version, a student with fewer layers);
    `to_device` first moves it to the layer's device (an int8 module stays
    on the CPU it runs on)."""
    shim = cast(PyTorchShim, encoder.get_ref("transformer").shims[0])
    if to_device:
        module.to(shim.device)
    shim._model = module


def _torch_single_thread_after_fork() -> None:
    """In a forked child (`nlp.pipe(n_process=...)` under the "fork" start
    method), run torch on one thread: GNU OpenMP's thread pool does not
    survive fork, so once the parent has predicted, a multi-threaded torch
    op in the child waits forever. Each process is one worker anyway."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_torch_single_thread_after_fork)
