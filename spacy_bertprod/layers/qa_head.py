"""The question-answering layer: (doc, question) pairs -> start/end logits
over each context window.

Every pair is encoded as [CLS] question [SEP] context-window [SEP] (segment
ids 0 then 1), with the question cut to `max_question_len` wordpieces and the
context cut into windows of the encoder's `window` that overlap by at least
`doc_stride` wordpieces, so an answer never falls between two windows.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Linear, Model
from thinc.types import Floats2d

from ..errors import Errors
from .attrs import ConfigInt
from .batching import encode_sequences
from .encoder import AUTO, check_input, is_count
from .windows import window_bounds

QAPair = Tuple[Doc, str]


@dataclass
class QAWindow:
    ctx_start: int  # first context wordpiece in this window
    ctx_end: int
    start_logits: np.ndarray  # (1 + ctx_end - ctx_start,): [CLS] then the context
    end_logits: np.ndarray


@dataclass
class QAScores:
    offsets: np.ndarray  # (n_context_wordpieces, 2) character spans
    windows: List[QAWindow]


def build_qa_model(encoder: Model, max_question_len: int, doc_stride: int) -> Model[List[QAPair], List[QAScores]]:
    if not is_count(max_question_len, 1):
        raise ValueError(Errors.E061.format(value=max_question_len))
    if not is_count(doc_stride, 0):
        raise ValueError(Errors.E062.format(value=doc_stride))
    if encoder.attrs.get("input_casing") is True:
        raise ValueError(Errors.E040)
    if encoder.attrs.get("input_casing") == AUTO:
        # the token types mark question and context: never casing here
        encoder.attrs["input_casing"] = False
    head = Linear(nO=2)
    return Model(
        "bertprod_qa",
        qa_forward,
        init=qa_init,
        layers=[encoder, head],
        refs={"encoder": encoder, "output": head},
        # the config decides, also on load
        attrs={"max_question_len": ConfigInt(max_question_len), "doc_stride": ConfigInt(doc_stride)},
    )


def qa_init(model: Model, X: Any = None, Y: Any = None) -> None:
    encoder, head = model.layers
    encoder.initialize()
    head.set_dim("nI", encoder.get_dim("nO"), force=True)
    head.initialize()


def plan_pairs(model: Model, pairs: List[QAPair]):
    """Wordpiece sequences, segment starts and (pair, ctx_start, ctx_end,
    row of the first context wordpiece) for every window of every pair."""
    encoder = model.layers[0]
    holder = encoder.attrs["tokenizer"]
    window = encoder.attrs["window"]
    overlap = model.attrs["doc_stride"]
    for doc, question in pairs:
        if not isinstance(question, str):
            raise TypeError(Errors.E021.format(type=type(question).__name__))
        if not question.strip():
            raise ValueError(Errors.E018)
        if not doc.text.strip():
            raise ValueError(Errors.E019)
    check_input(encoder, [doc for doc, _ in pairs])
    # a context asked several questions is tokenized once
    unique: Dict[int, Doc] = {}
    for doc, _ in pairs:
        unique.setdefault(id(doc), doc)
    contexts = dict(zip(unique, holder.offsets_and_ids([d.text for d in unique.values()])))
    questions = holder.offsets_and_ids([q for _, q in pairs])
    seqs, segments, meta, offsets = [], [], [], []
    for p, ((doc, _), (q_ids, _)) in enumerate(zip(pairs, questions)):
        ctx_ids, ctx_offsets = contexts[id(doc)]
        q_ids = q_ids[: model.attrs["max_question_len"]]
        content = window - 3 - len(q_ids)
        if content <= overlap:
            raise ValueError(Errors.E020.format(n_question=len(q_ids), content=content, window=window, stride=overlap))
        head = np.concatenate(([holder.cls_id], q_ids, [holder.sep_id]))
        for s, e in window_bounds(len(ctx_ids), content, content - overlap):
            seqs.append(np.concatenate((head, ctx_ids[s:e], [holder.sep_id])))
            segments.append(len(head))
            meta.append((p, s, e, len(head)))
        offsets.append(ctx_offsets)
    return seqs, segments, meta, offsets


def qa_forward(model: Model, pairs: List[QAPair], is_train: bool) -> Tuple[List[QAScores], Callable]:
    encoder, head = model.layers
    ops = model.ops
    seqs, segments, meta, offsets = plan_pairs(model, pairs)
    flat, base, bp_encoder = encode_sequences(encoder, seqs, segments, is_train)
    logits, bp_head = head(flat, is_train)
    logits_np = ops.to_numpy(logits)
    outputs = [QAScores(offsets=o, windows=[]) for o in offsets]
    rows_of = []
    for w, (p, s, e, first) in enumerate(meta):
        rows = np.concatenate(([base[w]], base[w] + first + np.arange(e - s)))
        rows_of.append(rows)
        outputs[p].windows.append(QAWindow(s, e, logits_np[rows, 0], logits_np[rows, 1]))

    def backprop(d_outputs: List[List[Tuple[np.ndarray, np.ndarray]]]) -> List[QAPair]:
        """d_outputs: per pair, per window, (d_start, d_end) like the logits."""
        d_logits = np.zeros(logits_np.shape, dtype="float32")
        w = 0
        for per_pair in d_outputs:
            for d_start, d_end in per_pair:
                d_logits[rows_of[w], 0] += d_start
                d_logits[rows_of[w], 1] += d_end
                w += 1
        bp_encoder(bp_head(ops.asarray2f(cast(Floats2d, d_logits))))
        return []

    return outputs, backprop
