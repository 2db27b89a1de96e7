"""Static wordpiece vectors: pretrained knowledge for a CNN token encoder.

A CNN student's hash embeddings are learnt from the training text alone, so
a name the text never shows gets nothing but its spelling's hashes; on
CoNLL-2003, whose test documents name many such entities, that is most of
what a CNN loses against a transformer. This layer gives every token the
mean of its wordpieces' rows in a table taken from a pretrained encoder's
input embeddings (`table_from_embeddings`: reduced by PCA to a few columns),
through the encoder's own fast tokenizer and character offsets: "Kwazulu"
gets the rows of its pieces, whatever the training text held.

The table is frozen (the layer passes no gradient) and saved with the model,
with the tokenizer; running it needs numpy and `tokenizers` only, so a
student on it runs in the lean runtime. The table is set before the model is
initialised (`set_wordpiece_table`); distillation sets it from the teacher.
"""

from typing import Callable, List, Tuple, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from ..errors import Errors
from .alignment import doc_wordpieces
from .tokenizer import TokenizerHolder

LAYER_NAME = "bertprod_wordpiece_vectors"


def wordpiece_vectors(dims: int) -> Model[List[Doc], List[Floats2d]]:
    """One `dims`-wide vector per token: the mean of its wordpieces' rows
    in the table (zeros for a token with no wordpiece, such as a space)."""
    return Model(LAYER_NAME, _forward, init=_init, dims={"nO": dims}, params={"E": None}, attrs={"tokenizer": TokenizerHolder()})


def set_wordpiece_table(model: Model, tokenizer: TokenizerHolder, table: np.ndarray) -> None:
    """Give layer `model` its tokenizer and (n_wordpieces, nO) table."""
    width = model.get_dim("nO")
    if table.ndim != 2 or table.shape[1] != width or tokenizer.tokenizer is None or table.shape[0] < tokenizer.tokenizer.get_vocab_size():
        size = tokenizer.tokenizer.get_vocab_size() if tokenizer.tokenizer is not None else 0
        raise ValueError(Errors.E191.format(shape=tuple(table.shape), rows=size, width=width))
    model.attrs["tokenizer"] = tokenizer
    model.set_param("E", model.ops.asarray2f(cast(Floats2d, np.ascontiguousarray(table, dtype="float32"))))


def table_from_embeddings(weights: np.ndarray, dims: int) -> np.ndarray:
    """The (n, dims) principal components of an (n, width) embedding table:
    its most varied directions in `dims` columns, each scaled to unit
    variance (the layer after it normalizes anyway)."""
    if not 0 < dims <= weights.shape[1]:
        raise ValueError(Errors.E192.format(dims=dims, width=weights.shape[1]))
    centred = weights.astype("float64") - weights.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vectors[:, ::-1][:, :dims]  # eigh sorts ascending
    return (projected / projected.std(axis=0).clip(1e-8)).astype("float32")


def _init(model: Model, X=None, Y=None) -> None:
    if not model.has_param("E"):
        raise ValueError(Errors.E193)


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    table = model.ops.to_numpy(model.get_param("E"))
    out: List[Floats2d] = []
    for pieces in doc_wordpieces(model.attrs["tokenizer"], docs):
        # the mean of each token's [start, end) rows, by cumulative sums
        sums = np.zeros((len(pieces.ids) + 1, table.shape[1]), dtype="float32")
        np.cumsum(table[pieces.ids], axis=0, out=sums[1:])
        counts = (pieces.ends - pieces.starts).clip(1)[:, None].astype("float32")
        out.append(model.ops.asarray2f(cast(Floats2d, (sums[pieces.ends] - sums[pieces.starts]) / counts)))

    def backprop(dY: List[Floats2d]) -> List[Doc]:
        return []  # a frozen table: no gradient

    return out, backprop
