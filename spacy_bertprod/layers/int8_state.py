"""torch int8 dynamic quantization of the encoder, and its state as plain
tensors, so a quantized pipeline is saved in safetensors, never pickled."""

import contextlib
import warnings
from typing import Any, Dict, Iterator

#: torch int8 dynamic quantization schemes: one weight scale per output
#: channel (the default; much closer to fp32 on MiniLM) or one per tensor
#: (pipelines quantized before per-channel existed still load).
QUANTIZATION_INT8 = "int8-dynamic-per-channel"
QUANTIZATION_INT8_PER_TENSOR = "int8-dynamic"
QUANTIZATIONS = (QUANTIZATION_INT8, QUANTIZATION_INT8_PER_TENSOR)
#: Format of int8 encoder state in a pipeline folder: plain tensors in
#: safetensors (see `int8_tensors`). The first int8 format was a torch.save
#: pickle, which is refused (E045): unpickling can run code.
INT8_FORMAT = "int8-safetensors-v1"
# keys of a quantized Linear's parts, after its module name
_INT8_PARTS = ("int8_weight", "int8_scales", "int8_zero_points", "int8_axis", "int8_bias")


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Hide torch's notices that `torch.ao.quantization` and quantized
    tensors are deprecated (in favour of torchao), raised on every int8
    quantize and load: the user cannot act on them (see docs/usage/int8-onnx.md)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation", category=UserWarning)
        yield


def quantize_module(module: Any, scheme: str = QUANTIZATION_INT8) -> Any:
    """int8 dynamic quantization of every torch Linear layer (CPU inference)."""
    import torch

    aq = torch.ao.quantization
    qconfig = aq.per_channel_dynamic_qconfig if scheme == QUANTIZATION_INT8 else aq.default_dynamic_qconfig
    with quiet_deprecations():
        quantized = aq.quantize_dynamic(module, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    quantized.bertprod_quantization = scheme
    return quantized


def is_torch_quantized(module: Any) -> bool:
    """Whether `module` is int8-quantized by `quantize_module`."""
    return bool(getattr(module, "bertprod_quantization", None))


def _quantized_linears(module: Any) -> Dict[str, Any]:
    import torch

    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    return {name: m for name, m in module.named_modules() if isinstance(m, dynamic_linear)}


def int8_tensors(module: Any) -> Dict[str, Any]:
    """The state of an int8-quantized module as plain tensors: for each
    quantized Linear its int8 weight values, scales, zero points, channel
    axis and fp32 bias; the rest of the module's state as it is."""
    import torch

    linears = _quantized_linears(module)
    prefixes = tuple(f"{name}." for name in linears)
    tensors = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items() if not key.startswith(prefixes)}
    for name, linear in linears.items():
        weight, bias = linear.weight(), linear.bias()
        tensors[f"{name}.int8_weight"] = weight.int_repr().contiguous()
        if weight.qscheme() == torch.per_channel_affine:
            tensors[f"{name}.int8_scales"] = weight.q_per_channel_scales().contiguous()
            tensors[f"{name}.int8_zero_points"] = weight.q_per_channel_zero_points().contiguous()
            tensors[f"{name}.int8_axis"] = torch.tensor(weight.q_per_channel_axis(), dtype=torch.int64)
        else:
            tensors[f"{name}.int8_scales"] = torch.tensor(weight.q_scale(), dtype=torch.float64)
            tensors[f"{name}.int8_zero_points"] = torch.tensor(weight.q_zero_point(), dtype=torch.int64)
        if bias is not None:
            tensors[f"{name}.int8_bias"] = bias.detach().contiguous()
    return tensors


def quantized_from_tensors(module: Any, scheme: str, tensors: Dict[str, Any]) -> Any:
    """Rebuild the int8 module whose `int8_tensors` these are from a float
    module of the same architecture: the rest of the state is loaded, the
    module quantized with `scheme`, and each quantized Linear gets its int8
    weights back bit for bit. Raises ValueError (or KeyError) when entries
    are missing, extra or misshapen."""
    import torch

    plain = {k: v for k, v in tensors.items() if k.rsplit(".", 1)[-1] not in _INT8_PARTS}
    missing, unexpected = module.load_state_dict(plain, strict=False)
    module = quantize_module(module, scheme)
    linears = _quantized_linears(module)
    weights = {f"{name}.{part}" for name in linears for part in ("weight", "bias")}
    missing = [k for k in missing if k not in weights]
    extra = sorted(set(tensors) - set(plain) - {f"{name}.{part}" for name in linears for part in _INT8_PARTS})
    if missing or unexpected or extra:
        raise ValueError(f"entries missing: {missing[:5]}, unexpected: {(unexpected + extra)[:5]}")
    for name, linear in linears.items():
        expected = linear.weight().shape
        values = tensors[f"{name}.int8_weight"]
        scales, zero_points = tensors[f"{name}.int8_scales"], tensors[f"{name}.int8_zero_points"]
        if values.dtype != torch.int8 or values.shape != expected:
            raise ValueError(f"{name}: int8 weight of {values.dtype} {tuple(values.shape)}, expected torch.int8 {tuple(expected)}")
        bias = tensors.get(f"{name}.int8_bias")
        if (bias is None) != (linear.bias() is None):
            raise ValueError(f"{name}: the bias is {'missing' if bias is None else 'unexpected'}")
        with quiet_deprecations():
            if f"{name}.int8_axis" in tensors:
                axis = int(tensors[f"{name}.int8_axis"])
                weight = torch._make_per_channel_quantized_tensor(values, scales.double(), zero_points.long(), axis)
            else:
                weight = torch._make_per_tensor_quantized_tensor(values, float(scales), int(zero_points))
            linear.set_weight_bias(weight, bias)
    return module
