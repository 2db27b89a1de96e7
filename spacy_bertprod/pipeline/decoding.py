"""BILUO tag sets and constrained Viterbi decoding.

Decoding only ever yields valid sequences: an entity is `U-X` or `B-X I-X* L-X`,
so there are no orphan inside or last tags.
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

NEG = -1e9


def biluo_tag_names(labels: Sequence[str]) -> List[str]:
    """ "O" first, then B/I/L/U for each label, in label order."""
    return ["O"] + [f"{p}-{label}" for label in labels for p in "BILU"]


def transition_constraints(tag_names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(allowed[prev, cur], may_start[cur], may_end[prev]) as booleans."""
    n = len(tag_names)
    allowed: np.ndarray = np.zeros((n, n), dtype=bool)
    may_start: np.ndarray = np.zeros(n, dtype=bool)
    may_end: np.ndarray = np.zeros(n, dtype=bool)
    for j, cur in enumerate(tag_names):
        cur_p, cur_l = (cur.split("-", 1) + [""])[:2] if cur != "O" else ("O", "")
        may_start[j] = cur_p in ("O", "B", "U")
        may_end[j] = cur_p in ("O", "L", "U")
        for i, prev in enumerate(tag_names):
            prev_p, prev_l = (prev.split("-", 1) + [""])[:2] if prev != "O" else ("O", "")
            if prev_p in ("O", "L", "U"):
                allowed[i, j] = cur_p in ("O", "B", "U")
            else:  # inside an entity: continue or close the same label
                allowed[i, j] = cur_p in ("I", "L") and cur_l == prev_l
    return allowed, may_start, may_end


def viterbi(log_probs: np.ndarray, allowed: np.ndarray, may_start: np.ndarray, may_end: np.ndarray, fixed: Optional[np.ndarray] = None) -> np.ndarray:
    """Best tag path under the constraints; log_probs is (n_tokens, n_tags).

    `fixed` (n_tokens,) holds a tag id the path must take at a token, or -1
    where the model's scores decide: the path goes through the fixed tags and
    the free tokens around them are decoded to fit (an entity closes before a
    fixed "O" and opens after it). The fixed tags must themselves form a
    valid run; where they are all -1 this is the unconstrained decode.
    """
    n, n_tags = log_probs.shape
    if n == 0:
        return np.zeros(0, dtype="int64")
    if fixed is not None and (fixed >= 0).any():
        rows = np.flatnonzero(fixed >= 0)
        log_probs = log_probs.copy()
        log_probs[rows] = NEG
        log_probs[rows, fixed[rows]] = 0.0
    trans = np.where(allowed, 0.0, NEG)
    score = log_probs[0] + np.where(may_start, 0.0, NEG)
    back = np.zeros((n, n_tags), dtype="int64")
    for i in range(1, n):
        cand = score[:, None] + trans
        back[i] = cand.argmax(axis=0)
        score = cand[back[i], np.arange(n_tags)] + log_probs[i]
    score = score + np.where(may_end, 0.0, NEG)
    path = np.zeros(n, dtype="int64")
    path[-1] = int(score.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def path_to_spans(path: np.ndarray, tag_names: Sequence[str]) -> List[Tuple[int, int, str]]:
    """(start, end, label) token spans from a valid BILUO path."""
    spans = []
    start = None
    for i, tag_id in enumerate(path):
        tag = tag_names[tag_id]
        if tag == "O":
            continue
        prefix, label = tag.split("-", 1)
        if prefix == "U":
            spans.append((i, i + 1, label))
        elif prefix == "B":
            start = i
        elif prefix == "L" and start is not None:
            spans.append((start, i + 1, label))
            start = None
    return spans
