"""Doc-level pooling: one vector per doc, for text classification.

With a bertprod encoder, a doc's vector comes straight from its windows:
- "cls": the mean of the windows' [CLS] vectors, weighted by how many
  wordpieces each window holds;
- "mean": the mean of every wordpiece vector of every window ([CLS], [SEP] and
  padding excluded; a wordpiece inside two overlapping windows counts twice).
With token vectors from elsewhere (a shared `tok2vec` listener), "mean" is the
mean of the doc's token vectors.
A doc without wordpieces gets a zero vector.
"""

from typing import Any, Callable, List, Tuple, cast

import numpy as np
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d, Ints1d

from ..errors import Errors
from .attrs import ConfigSetting
from .encoder import POOL_CHUNK, run_windows

DOC_POOLING = ("cls", "mean")


def doc_pooler(encoder: Model, pooling: str) -> Model[List[Doc], Floats2d]:
    """Docs -> (n_docs, width) from the encoder's windows."""
    if pooling not in DOC_POOLING:
        raise ValueError(Errors.E012.format(options=DOC_POOLING, value=pooling))
    return Model(
        f"bertprod_doc_pool_{pooling}",
        _doc_pool_forward,
        layers=[encoder],
        attrs={"pooling": ConfigSetting(pooling)},  # the config decides, also on load
        dims={"nO": encoder.maybe_get_dim("nO")},
        init=_doc_pool_init,
    )


def _doc_pool_init(model: Model, X: Any = None, Y: Any = None) -> None:
    encoder = model.layers[0]
    encoder.initialize(X=X)
    model.set_dim("nO", encoder.get_dim("nO"), force=True)


def _pool_rows(out: Any, pooling: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat rows to average, the doc each belongs to, and its weight."""
    rows, owners, weights = [], [], []
    for d, (first, n) in enumerate(out.plan.doc_windows):
        if n == 0:
            continue
        wins = np.arange(first, first + n)
        lengths = out.window_lengths[wins]
        if pooling == "cls":
            rows.append(out.window_base[wins])
            weights.append(lengths / lengths.sum())
            owners.append(np.full(n, d))
        else:
            r = np.concatenate([out.window_base[w] + 1 + np.arange(out.window_lengths[w]) for w in wins])
            rows.append(r)
            weights.append(np.full(len(r), 1.0 / len(r)))
            owners.append(np.full(len(r), d))
    if not rows:
        empty = np.zeros(0, dtype="int64")
        return empty, empty, np.zeros(0, dtype="float32")
    return np.concatenate(rows), np.concatenate(owners), np.concatenate(weights).astype("float32")


def _doc_pool_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    encoder = model.layers[0]
    ops = model.ops
    out, bp_windows = run_windows(encoder, docs, is_train)
    rows, owners, weights = _pool_rows(out, model.attrs["pooling"])
    rows_xp, owners_xp = ops.asarray1i(cast(Ints1d, rows)), ops.asarray1i(cast(Ints1d, owners))
    weights_xp = ops.asarray2f(cast(Floats2d, weights[:, None]))
    Y = ops.alloc2f(len(docs), encoder.get_dim("nO"))
    # A slice of rows at a time: "mean" reads every wordpiece of a long
    # document, which should not be copied as a whole beside the window states.
    for r0 in range(0, len(rows), POOL_CHUNK):
        r1 = r0 + POOL_CHUNK
        ops.scatter_add(Y, owners_xp[r0:r1], out.flat[rows_xp[r0:r1]] * weights_xp[r0:r1])
    flat_shape = out.flat.shape
    del out  # the window states are not needed for the backward pass

    def backprop(dY: Floats2d) -> List[Doc]:
        d_flat = ops.alloc2f(*flat_shape)
        if len(rows):
            ops.scatter_add(d_flat, rows_xp, dY[owners_xp] * weights_xp)
        bp_windows(d_flat)
        return []

    return Y, backprop


def token_mean_pooler() -> Model[List[Floats2d], Floats2d]:
    """Mean of each doc's token vectors; an empty doc gives zeros."""
    return Model("bertprod_token_mean", _token_mean_forward)


def _token_mean_forward(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    width = Xs[0].shape[1] if Xs else 0
    Y = ops.alloc2f(len(Xs), width)
    for i, X in enumerate(Xs):
        if len(X):
            Y[i] = X.mean(axis=0)

    def backprop(dY: Floats2d) -> List[Floats2d]:
        return [ops.xp.repeat(dY[i : i + 1] / max(len(X), 1), len(X), axis=0) for i, X in enumerate(Xs)]

    return Y, backprop
