"""Map wordpieces to spaCy tokens by character offsets.

The fast tokenizer reports, for every wordpiece, the character span of the
original text it came from. A wordpiece belongs to every spaCy token whose
characters it overlaps, so the mapping is exact whatever the normalizer did
(lower-casing, accent stripping, dropped control characters). No string
matching is involved.
"""

from typing import List, Tuple

import numpy as np
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Doc

from .tokenizer import TokenizerHolder
from .types import DocWordpieces


def doc_wordpieces(tokenizer: TokenizerHolder, docs: List[Doc]) -> List[DocWordpieces]:
    """Tokenize `docs` (one batch call) and align each one's wordpieces to
    its tokens."""
    texts = [doc.text for doc in docs]
    encoded = tokenizer.offsets_and_ids(texts)
    return [DocWordpieces(text, ids, offsets, *align_wordpieces(doc, offsets)) for doc, text, (ids, offsets) in zip(docs, texts, encoded)]


def token_char_spans(doc: Doc) -> Tuple[np.ndarray, np.ndarray]:
    """Start and end character of every token (end excludes trailing space),
    read as an array: a Token object per token cost more than the alignment."""
    if not len(doc):
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    spans = doc.to_array([IDX, LENGTH]).astype("int64").reshape(-1, 2)
    return spans[:, 0], spans[:, 0] + spans[:, 1]


def align_wordpieces(doc: Doc, offsets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Give each token of `doc` the contiguous range of wordpieces that overlap it.

    offsets: (n_wordpieces, 2) character spans from the fast tokenizer.
    Returns (wp_start, wp_end), one entry per token; a token that produced no
    wordpiece (a whitespace token, a dropped control character) has
    wp_start == wp_end.
    """
    n_tokens = len(doc)
    wp_start = np.zeros(n_tokens, dtype="int64")
    wp_end = np.zeros(n_tokens, dtype="int64")
    if n_tokens == 0 or len(offsets) == 0:
        return wp_start, wp_end
    tok_starts, tok_ends = token_char_spans(doc)
    offsets = np.asarray(offsets, dtype="int64").reshape(-1, 2)
    char_s, char_e = offsets[:, 0], offsets[:, 1]
    # First token touched: the last token starting at or before the piece's
    # first character, or the next one if that character is its trailing space.
    first = np.searchsorted(tok_starts, char_s, side="right") - 1
    after_end = (first >= 0) & (char_s >= tok_ends[np.clip(first, 0, None)])
    first = np.where((first < 0) | after_end, first + 1, first)
    last = np.searchsorted(tok_starts, char_e - 1, side="right") - 1
    valid = (char_e > char_s) & (first <= last) & (first < n_tokens)
    valid_idx = np.flatnonzero(valid)
    if len(valid_idx) == 0:
        return wp_start, wp_end
    first, last = first[valid_idx], last[valid_idx]
    token_ids = np.arange(n_tokens)
    # Pieces are in text order, so first/last are non-decreasing and each
    # token's pieces form one run: from the first piece ending at or after the
    # token to the last piece starting at or before it.
    lo = np.searchsorted(last, token_ids, side="left")
    hi = np.searchsorted(first, token_ids, side="right")
    has = hi > lo
    wp_start[has] = valid_idx[lo[has]]
    wp_end[has] = valid_idx[hi[has] - 1] + 1
    return wp_start, wp_end
