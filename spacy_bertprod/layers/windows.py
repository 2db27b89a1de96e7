"""Striding windows over a document's wordpieces.

A document of any length is cut into windows of at most `content` wordpieces
that overlap by at least `content - stride` wordpieces. Every token is read from exactly one window, the one in
which it has the most context on both sides, so nothing is truncated and no
prediction is averaged across windows.
"""

from typing import List, Optional, Tuple

import numpy as np
from spacy.tokens import Doc

from ..errors import Errors
from .alignment import doc_wordpieces
from .casing import wordpiece_case_ids
from .tokenizer import TokenizerHolder
from .types import WindowPlan


def window_bounds(n_wordpieces: int, content: int, stride: int) -> List[Tuple[int, int]]:
    """(start, end) of each window over `n_wordpieces`.

    Uses the fewest windows of at most `content` wordpieces whose neighbours
    overlap by at least `content - stride`, all of the same size and spread
    evenly from the first wordpiece to the last, so no wordpiece is encoded
    more often than the overlap requires.
    """
    if n_wordpieces <= 0:
        return []
    if n_wordpieces <= content:
        return [(0, n_wordpieces)]
    overlap = content - stride
    n_windows = -(-(n_wordpieces - overlap) // stride)
    size = min(content, -(-(n_wordpieces + (n_windows - 1) * overlap) // n_windows))
    span = n_wordpieces - size
    starts = [round(i * span / (n_windows - 1)) for i in range(n_windows)]
    return [(s, s + size) for s in starts]


def assign_tokens(
    wp_start: np.ndarray,
    wp_end: np.ndarray,
    bounds: List[Tuple[int, int]],
    n_wordpieces: int,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose the window each token is read from.

    Returns (window, start, end) per token: the window's index (-1 for a token
    without wordpieces) and the token's wordpiece range clipped to it. A token
    whose pieces fit in several windows goes to the one where it is furthest
    from an edge (the document's own start and end do not count as edges;
    on a tie, the first such window). A token too long for any window keeps
    the part inside the window that holds the most of it.

    `bounds` are windows as `window_bounds` makes them: in order, covering
    wordpieces 0 to `n_wordpieces`. Only the windows a token overlaps are
    compared (a few per token), so time and memory grow linearly with the
    document, not with tokens x windows.
    """
    n_tokens = len(wp_start)
    window = np.full(n_tokens, -1, dtype="int64")
    if n_tokens == 0 or not bounds:
        return window, wp_start.copy(), wp_end.copy()
    ws = np.array([b[0] for b in bounds], dtype="int64")
    we = np.array([b[1] for b in bounds], dtype="int64")
    _check_windows(ws, we, n_wordpieces)
    has = wp_end > wp_start
    if np.any(wp_start[has] < 0) or np.any(wp_end[has] > n_wordpieces):
        raise ValueError(Errors.E041.format(n=n_wordpieces))
    tokens = np.flatnonzero(has)
    a, b = wp_start[tokens], wp_end[tokens]
    # The windows overlapping a token are a run: the first ending after its
    # first piece up to the last starting before its end.
    lo = np.searchsorted(we, a, side="right")
    counts = np.searchsorted(ws, b, side="left") - lo
    seg_start = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(tokens)), counts)
    cand = lo[owner] + np.arange(len(owner)) - seg_start[owner]
    a_c, b_c, ws_c, we_c = a[owner], b[owner], ws[cand], we[cand]
    big = n_wordpieces + 1
    contains = (ws_c <= a_c) & (b_c <= we_c)
    left = np.where(ws_c == 0, big, a_c - ws_c)
    right = np.where(we_c == n_wordpieces, big, we_c - b_c)
    fits = np.logical_or.reduceat(contains, seg_start) if len(owner) else np.zeros(0, dtype=bool)
    # Where the token fits a window, its margin in the windows holding it;
    # elsewhere how many of its pieces each window holds (a window it
    # overlaps holds at least one, any other none, so it never wins).
    score = np.where(
        fits[owner],
        np.where(contains, np.minimum(left, right), -big),
        np.minimum(b_c, we_c) - np.maximum(a_c, ws_c),
    )
    best = _first_argmax(score, seg_start, owner)
    choice = cand[best]
    window[tokens] = choice
    start, end = wp_start.copy(), wp_end.copy()
    start[tokens] = np.maximum(a, ws[choice])
    end[tokens] = np.minimum(b, we[choice])
    return window, start, end


def _check_windows(ws: np.ndarray, we: np.ndarray, n_wordpieces: int) -> None:
    """Windows in order (starts and ends never decreasing), each non-empty,
    covering wordpieces 0 to n_wordpieces without a gap."""
    ordered = np.all(ws[1:] >= ws[:-1]) and np.all(we[1:] >= we[:-1])
    no_gap = np.all(ws[1:] <= we[:-1])
    if not (ordered and no_gap and np.all(we > ws) and ws[0] == 0 and we[-1] == n_wordpieces):
        raise ValueError(Errors.E041.format(n=n_wordpieces))


def _first_argmax(score: np.ndarray, seg_start: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Index of the first maximum of each segment of `score` (segments start
    at `seg_start`, each non-empty; `owner` is the segment of each entry)."""
    if len(score) == 0:
        return np.zeros(0, dtype="int64")
    seg_max = np.maximum.reduceat(score, seg_start)
    at_max = np.flatnonzero(score == seg_max[owner])
    return at_max[np.searchsorted(owner[at_max], np.arange(len(seg_start)), side="left")]


def plan_windows(
    tokenizer: TokenizerHolder,
    docs: List[Doc],
    *,
    window: int,
    stride: int,
    first_only: bool,
    input_casing: bool,
) -> WindowPlan:
    """Tokenize `docs` and cut them into windows of `window` wordpieces
    ([CLS] and [SEP] included) `stride` apart; each token is read from one
    window, by its first wordpiece (`first_only`) or all of them."""
    content = window - 2
    windows: List[np.ndarray] = []
    # token type (casing class) of each window's wordpieces, with input_casing
    window_types: Optional[List[np.ndarray]] = [] if input_casing else None
    token_window, token_pos, token_len, doc_lengths = [], [], [], []
    doc_windows: List[Tuple[int, int]] = []
    for doc, pieces in zip(docs, doc_wordpieces(tokenizer, docs)):
        ids = pieces.ids
        bounds = window_bounds(len(ids), content, stride)
        win, start, end = assign_tokens(pieces.starts, pieces.ends, bounds, len(ids))
        base = len(windows)
        doc_windows.append((base, len(bounds)))
        starts_of = np.array([b[0] for b in bounds] or [0], dtype="int64")
        has = win >= 0
        token_window.append(np.where(has, win + base, -1))
        token_pos.append(np.where(has, start - starts_of[np.clip(win, 0, None)], 0))
        token_len.append(np.where(has, 1 if first_only else end - start, 0))
        windows.extend(ids[s:e] for s, e in bounds)
        if window_types is not None:
            cases = wordpiece_case_ids(pieces.text, pieces.offsets)
            window_types.extend(cases[s:e] for s, e in bounds)
        doc_lengths.append(len(doc))

    def cat(arrs):
        return np.concatenate(arrs) if arrs else np.zeros(0, dtype="int64")

    return WindowPlan(
        windows=windows,
        window_types=window_types,
        doc_windows=doc_windows,
        doc_lengths=doc_lengths,
        token_window=cat(token_window),
        token_pos=cat(token_pos),
        token_len=cat(token_len),
    )
