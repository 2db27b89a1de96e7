"""What flows between the encoder's layers: the window plan of a batch of
docs (tokenizer + windows -> transformer calls and pooling) and the hidden
states of its windows (transformer -> token or doc pooling)."""

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np


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
