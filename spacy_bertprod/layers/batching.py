"""Length-bucket batching: wordpiece sequences of any lengths -> padded
transformer calls of similar lengths -> one flat array of hidden states.

An observer of those states (distillation matching hidden states) is set on
the encoder layer itself with `hidden_state_hook`, not in global state.
"""

import contextlib
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np
import srsly
from thinc.api import Model, deserialize_attr, serialize_attr

from .backends import refuse_training, run_transformer, uses_onnx
from .tokenizer import TokenizerHolder
from .transformer import hf_config

# Length bucketing: a group of windows is closed once the next (longer) window
# would be padded to over PAD_RATIO x its shortest member, unless the group
# still has fewer than MIN_GROUP windows (tiny transformer calls cost more in
# overhead than the padding they save).
PAD_RATIO = 1.25
MIN_GROUP = 4

#: hook(flat, valid, backprop) -> backprop (see `hidden_state_hook`)
HiddenHook = Callable[[Any, Any, Callable], Callable]


class HiddenStateObserver:
    """The encoder's `hidden_hook` attr: the observer of its hidden states
    while a `hidden_state_hook` is active, else None. A callback of the
    running process, so it is saved as nothing and comes back empty."""

    def __init__(self) -> None:
        self.hook: Optional[HiddenHook] = None


@serialize_attr.register(HiddenStateObserver)
def _serialize_observer(_: HiddenStateObserver, value: HiddenStateObserver, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(None)


@deserialize_attr.register(HiddenStateObserver)
def _deserialize_observer(current: HiddenStateObserver, value: bytes, name: str, model: Model) -> HiddenStateObserver:
    return current


@contextlib.contextmanager
def hidden_state_hook(model: Model, hook: HiddenHook) -> Iterator[None]:
    """While active, every batch encoder layer `model` encodes is passed to
    `hook(flat, valid, backprop)`: its hidden states (rows, width), which
    rows are real wordpieces (not padding), and the backprop callback, which
    the hook returns (or wraps, to add a gradient). Used by distillation to
    match hidden states."""
    observer: HiddenStateObserver = model.attrs["hidden_hook"]
    observer.hook = hook
    try:
        yield
    finally:
        observer.hook = None


def length_groups(lengths: np.ndarray, max_wordpieces: int) -> List[np.ndarray]:
    """Sequence indices grouped by similar length: each group holds at most
    `max_wordpieces` padded wordpieces, and a new group starts when the next
    sequence is over PAD_RATIO times the group's shortest one."""
    order = np.argsort(lengths, kind="stable")
    groups: List[np.ndarray] = []
    current: List[int] = []
    for i in order:
        if current and ((len(current) + 1) * lengths[i] > max_wordpieces or (len(current) >= MIN_GROUP and lengths[i] > PAD_RATIO * lengths[current[0]])):
            groups.append(np.array(current))
            current = []
        current.append(i)
    if current:
        groups.append(np.array(current))
    return groups


def embeds_segments(model: Model) -> bool:
    """Whether the transformer of encoder layer `model` has a token type for
    the second segment of a pair. RoBERTa and XLM-R embed one type only
    (their tokenizers give every position type 0), DeBERTa-v3 none, and
    DistilBERT and ModernBERT take no token types at all: for them a pair's
    segments are told apart by the separator alone and no types are sent."""
    return int((hf_config(model) or {}).get("type_vocab_size") or 0) >= 2


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
            refuse_training(model)
        model.attrs["onnx"].clear()  # the torch weights are about to change
    lengths = np.array([len(q) for q in seqs], dtype="int64")
    base = np.zeros(len(seqs), dtype="int64")
    callbacks, sizes, masks = [], [], []
    offset = 0
    if segments is not None and not embeds_segments(model):
        segments = None  # the model's own default: every position type 0
    has_types = segments is not None or type_ids is not None
    groups = length_groups(lengths, model.attrs["max_batch_wordpieces"])
    # Each batch's states are copied into one array as they come, so a long
    # document never holds them twice (the batches' own and a concatenation).
    flat = model.ops.alloc2f(sum(len(g) * int(lengths[g].max()) for g in groups), width, zeros=False)
    for group in groups:
        seq_len = int(lengths[group].max())
        ids = np.full((len(group), seq_len), holder.pad_id, dtype="int64")
        mask = np.zeros((len(group), seq_len), dtype="int64")
        types = np.zeros((len(group), seq_len), dtype="int64")  # sent only with has_types
        for row, i in enumerate(group):
            ids[row, : lengths[i]] = seqs[i]
            mask[row, : lengths[i]] = 1
            if type_ids is not None:
                types[row, : lengths[i]] = type_ids[i]
            elif segments is not None:
                types[row, segments[i] : lengths[i]] = 1
        X = (ids, mask, types) if has_types else (ids, mask)
        hidden, bp_hidden = run_transformer(model, X, is_train)
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

    hook = model.attrs["hidden_hook"].hook
    if hook is not None:
        valid = np.concatenate(masks).astype(bool) if masks else np.zeros(0, dtype=bool)
        backprop = hook(flat, valid, backprop)
    return flat, base, backprop
