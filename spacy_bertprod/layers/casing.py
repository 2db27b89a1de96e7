"""Casing features for uncased encoders.

An uncased wordpiece model (the embedded MiniLM is one) lowercases its input,
so "Apple" and "apple" reach the head as the same vectors. Two ways to give
that cue back: a fixed 0/1 vector per spaCy token beside the encoder's output
(`case_features`, no weights), and a casing class per wordpiece that the
encoder feeds into the transformer as its token type (`wordpiece_case_ids`,
see `bertprod.Encoder.v1`'s `input_casing`).
"""

from functools import lru_cache
from typing import Callable, List, Tuple

import numpy as np
from spacy.attrs import ORTH
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from .attrs import ConfigFloat

CASE_FEATURES = (
    "lower",  # cased letters, all lowercase
    "title",  # first cased letter uppercase, the others lowercase ("Paris", "A")
    "upper",  # two or more cased letters, all uppercase ("NATO")
    "mixed",  # any other mix ("iPhone", "McDonald")
    "digit",  # contains a digit
    "no_alpha",  # no letters at all (punctuation, symbols, numbers)
    "opens_sentence",  # first token, or follows a line break or . ! ? :
)
_SENTENCE_END = frozenset(".!?:")


@lru_cache(maxsize=100_000)
def word_case(text: str) -> Tuple[float, ...]:
    """The context-free CASE_FEATURES of a token text (all but the last)."""
    cased = [c for c in text if c.isupper() or c.islower()]
    lower = upper = title = mixed = 0.0
    if cased:
        if not any(c.isupper() for c in cased):
            lower = 1.0
        elif len(cased) > 1 and not any(c.islower() for c in cased):
            upper = 1.0
        elif cased[0].isupper() and not any(c.isupper() for c in cased[1:]):
            title = 1.0
        else:
            mixed = 1.0
    digit = 1.0 if any(c.isdigit() for c in text) else 0.0
    no_alpha = 0.0 if any(c.isalpha() for c in text) else 1.0
    return (lower, title, upper, mixed, digit, no_alpha)


#: The casing classes of `wordpiece_case_ids`; class 0 ("none") is also the
#: token type of [CLS], [SEP] and padding.
WORDPIECE_CASES = ("none", "lower", "title", "upper", "mixed")


@lru_cache(maxsize=100_000)
def _piece_case(text: str) -> int:
    flags = word_case(text)[:4]  # lower, title, upper, mixed
    return flags.index(1.0) + 1 if 1.0 in flags else 0


def wordpiece_case_ids(text: str, offsets: np.ndarray) -> np.ndarray:
    """The `WORDPIECE_CASES` class of each wordpiece, read from the original
    characters it covers (`offsets`: (n, 2) character spans in `text`)."""
    return np.fromiter((_piece_case(text[s:e]) for s, e in offsets), dtype="int64", count=len(offsets))


def doc_case_features(doc: Doc) -> np.ndarray:
    """A (len(doc), len(CASE_FEATURES)) float32 array of 0/1 values.

    Read per distinct word (the doc's ORTH ids) rather than per token: making
    a Token object for each word cost more than a CNN encoder's forward pass."""
    out = np.zeros((len(doc), len(CASE_FEATURES)), dtype="float32")
    if not len(doc):
        return out
    orths, index = np.unique(doc.to_array(ORTH), return_inverse=True)
    strings = doc.vocab.strings
    texts = [strings[int(orth)] for orth in orths]
    out[:, :-1] = np.array([word_case(text) for text in texts], dtype="float32")[index]
    ends = np.array([text in _SENTENCE_END or "\n" in text for text in texts], dtype="bool")[index]
    out[0, -1] = 1.0
    out[1:, -1] = ends[:-1]
    return out


def case_features(scale: float = 1.0) -> Model[List[Doc], List[Floats2d]]:
    """Per-token casing features (`CASE_FEATURES`), one row per spaCy token,
    each 0 or `scale`."""
    return Model("bertprod_case_features", _forward, dims={"nO": len(CASE_FEATURES)}, attrs={"scale": ConfigFloat(scale)})  # the config decides, also on load


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    scale = model.attrs["scale"]
    Y = [model.ops.asarray2f(doc_case_features(doc) * scale) for doc in docs]

    def backprop(dY: List[Floats2d]) -> List[Doc]:
        return []

    return Y, backprop
