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
    return viterbi_batch([log_probs], allowed, may_start, may_end, [fixed])[0]


#: padded positions (sequences x longest) decoded in one step of the batch
#: loop; a longer sequence is decoded on its own, as long as it is
BATCH_POSITIONS = 16384


def viterbi_batch(
    log_probs: Sequence[np.ndarray],
    allowed: np.ndarray,
    may_start: np.ndarray,
    may_end: np.ndarray,
    fixed: Optional[Sequence[Optional[np.ndarray]]] = None,
) -> List[np.ndarray]:
    """`viterbi` for many sequences at once, the same paths: the loop over
    positions runs once for a group of sequences (sorted by length, so little
    is padded) instead of once a sequence, which is where a per-token Python
    loop spends its time on short documents."""
    fixed = list(fixed) if fixed is not None else [None] * len(log_probs)
    scores = [_with_fixed(lp, f) for lp, f in zip(log_probs, fixed)]
    paths: List[np.ndarray] = [np.zeros(0, dtype="int64")] * len(scores)
    order = sorted((i for i, lp in enumerate(scores) if len(lp)), key=lambda i: -len(scores[i]))
    trans = np.where(allowed, 0.0, NEG)
    start_mask = np.where(may_start, 0.0, NEG)
    end_mask = np.where(may_end, 0.0, NEG)
    group: List[int] = []
    for i in order + [-1]:
        if group and (i < 0 or (len(group) + 1) * len(scores[group[0]]) > BATCH_POSITIONS):
            for j, path in zip(group, _viterbi_group([scores[j] for j in group], trans, start_mask, end_mask)):
                paths[j] = path
            group = []
        if i >= 0:
            group.append(i)
    return paths


def _with_fixed(log_probs: np.ndarray, fixed: Optional[np.ndarray]) -> np.ndarray:
    if fixed is None or not (fixed >= 0).any():
        return log_probs
    rows = np.flatnonzero(fixed >= 0)
    log_probs = log_probs.copy()
    log_probs[rows] = NEG
    log_probs[rows, fixed[rows]] = 0.0
    return log_probs


def _viterbi_group(seqs: List[np.ndarray], trans: np.ndarray, start_mask: np.ndarray, end_mask: np.ndarray) -> List[np.ndarray]:
    """Sequences longest first, none empty. Past its end a sequence's score
    stays as it is and its back-pointers are the identity, so the shared
    backtrack walks its padding without moving."""
    lengths = np.array([len(x) for x in seqs])
    n_seqs, longest, n_tags = len(seqs), int(lengths[0]), seqs[0].shape[1]
    padded = np.zeros((n_seqs, longest, n_tags), dtype=seqs[0].dtype)
    for k, x in enumerate(seqs):
        padded[k, : len(x)] = x
    tags = np.arange(n_tags)
    score = padded[:, 0] + start_mask
    back = np.empty((n_seqs, longest, n_tags), dtype="int64")
    back[:, 0] = tags
    active = n_seqs  # sequences still running: a prefix, as they are sorted
    for i in range(1, longest):
        while lengths[active - 1] <= i:
            active -= 1
        back[active:, i] = tags
        cand = score[:active, :, None] + trans
        best = cand.argmax(axis=1)
        back[:active, i] = best
        score[:active] = np.take_along_axis(cand, best[:, None, :], axis=1)[:, 0] + padded[:active, i]
    score = score + end_mask
    path = np.empty((n_seqs, longest), dtype="int64")
    path[:, -1] = score.argmax(axis=1)
    rows = np.arange(n_seqs)
    for i in range(longest - 1, 0, -1):
        path[:, i - 1] = back[rows, i, path[:, i]]
    return [path[k, : lengths[k]] for k in range(n_seqs)]


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
