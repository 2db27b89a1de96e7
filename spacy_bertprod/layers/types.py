"""What flows between the encoder's layers: each doc's wordpieces aligned to
its tokens (tokenizer -> windows, wordpiece vectors), the window plan of a
batch of docs (tokenizer + windows -> transformer calls and pooling) and the
hidden states of its windows (transformer -> token or doc pooling)."""

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np


@dataclass
class DocWordpieces:
    """One doc's wordpieces, special tokens excluded, and the contiguous
    range of them each spaCy token overlaps
    (`spacy_bertprod.layers.alignment.doc_wordpieces`)."""

    #: the doc's text, read once (Doc.text makes a Token object per token)
    text: str
    #: wordpiece ids and (n, 2) character offsets in `text`
    ids: np.ndarray
    offsets: np.ndarray
    #: per token: its first wordpiece and one past its last (equal: none)
    starts: np.ndarray
    ends: np.ndarray


@dataclass
class WindowPlan:
    """Windows and token-to-wordpiece indices for one batch of docs
    (`spacy_bertprod.layers.windows.plan_windows`)."""

    #: wordpiece ids of each window, special tokens excluded
    windows: List[np.ndarray]
    #: casing class of each window's wordpieces (with `input_casing`), else None
    window_types: Optional[List[np.ndarray]]
    #: (first window, number of windows) of each doc
    doc_windows: List[Tuple[int, int]]
    #: spaCy tokens of each doc
    doc_lengths: List[int]
    #: per token of the batch: the window it is read from (-1: no wordpieces),
    #: its first wordpiece's position in that window and how many of its
    #: wordpieces are pooled (1 for "first" pooling)
    token_window: np.ndarray
    token_pos: np.ndarray
    token_len: np.ndarray


@dataclass
class WindowOutput:
    """Hidden states of every window of a batch, flattened to (rows, width),
    with the plan that says where each doc's windows and tokens are."""

    flat: Any
    plan: WindowPlan
    #: flat row of each window's [CLS]
    window_base: np.ndarray
    #: wordpieces in each window, specials excluded
    window_lengths: np.ndarray
