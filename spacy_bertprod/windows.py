"""Striding windows over a document's wordpieces.

A document of any length is cut into windows of at most `content` wordpieces
that overlap by at least `content - stride` wordpieces. Every token is read from exactly one window, the one in
which it has the most context on both sides, so nothing is truncated and no
prediction is averaged across windows.
"""

from typing import List, Tuple

import numpy as np


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
    from an edge (the document's own start and end do not count as edges). A
    token too long for any window keeps the part inside the window that holds
    the most of it.
    """
    n_tokens = len(wp_start)
    window = np.full(n_tokens, -1, dtype="int64")
    if n_tokens == 0 or not bounds:
        return window, wp_start.copy(), wp_end.copy()
    ws = np.array([b[0] for b in bounds], dtype="int64")[None, :]
    we = np.array([b[1] for b in bounds], dtype="int64")[None, :]
    a, b = wp_start[:, None], wp_end[:, None]
    big = n_wordpieces + 1
    left = np.where(ws == 0, big, a - ws)
    right = np.where(we == n_wordpieces, big, we - b)
    contains = (ws <= a) & (b <= we)
    margin = np.where(contains, np.minimum(left, right), -big)
    overlap = np.minimum(b, we) - np.maximum(a, ws)
    best_margin = margin.argmax(axis=1)
    best_overlap = overlap.argmax(axis=1)
    fits = contains.any(axis=1)
    choice = np.where(fits, best_margin, best_overlap)
    has = wp_end > wp_start
    window[has] = choice[has]
    chosen_s = ws[0, choice]
    chosen_e = we[0, choice]
    start = np.where(has, np.maximum(wp_start, chosen_s), wp_start)
    end = np.where(has, np.minimum(wp_end, chosen_e), wp_end)
    return window, start, end
