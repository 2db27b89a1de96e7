import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_bertprod.layers.windows import assign_tokens, window_bounds


def assign_tokens_oracle(wp_start, wp_end, bounds, n_wordpieces):
    """The original (tokens x windows) implementation, kept as the
    reference the linear `assign_tokens` must match exactly."""
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
    choice = np.where(contains.any(axis=1), margin.argmax(axis=1), overlap.argmax(axis=1))
    has = wp_end > wp_start
    window[has] = choice[has]
    start = np.where(has, np.maximum(wp_start, ws[0, choice]), wp_start)
    end = np.where(has, np.minimum(wp_end, we[0, choice]), wp_end)
    return window, start, end


@st.composite
def token_ranges(draw):
    """A document's wordpiece count, window settings and token ranges: in
    text order like `align_wordpieces` gives (runs that may share a piece,
    empty tokens, very long tokens), or anywhere in the document."""
    n = draw(st.integers(1, 400))
    content = draw(st.integers(1, 64))
    stride = draw(st.integers(1, content))
    if draw(st.booleans()):
        lengths = draw(st.lists(st.integers(0, 3) | st.integers(0, 150), max_size=60))
        starts, pos = [], 0
        for length in lengths:
            pos = max(0, min(n, pos - draw(st.integers(0, 1))))
            starts.append((pos, min(n, pos + length)))
            pos = min(n, pos + length)
    else:
        pairs = draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, n)), max_size=60))
        starts = [(min(p), max(p)) for p in pairs]
    wp = np.array(starts, dtype="int64").reshape(-1, 2)
    return n, content, stride, wp[:, 0].copy(), wp[:, 1].copy()


@settings(max_examples=300, deadline=None)
@given(token_ranges())
def test_assign_tokens_matches_the_tokens_x_windows_oracle(case):
    n, content, stride, start, end = case
    bounds = window_bounds(n, content, stride)
    expected = assign_tokens_oracle(start, end, bounds, n)
    got = assign_tokens(start, end, bounds, n)
    for e, g in zip(expected, got):
        assert e.dtype == g.dtype and e.tolist() == g.tolist()


def test_assign_tokens_memory_grows_linearly():
    # 200k one-piece tokens over ~1000 default windows: a (tokens x windows)
    # matrix is 1.6 GB, and the old code built several (~8 GiB peak)
    n = 200_000
    start = np.arange(n)
    bounds = window_bounds(n, 254, 192)
    tracemalloc.start()
    try:
        window, s, e = assign_tokens(start, start + 1, bounds, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 400 * n  # bytes: ~40 MB, against 8 bytes x tokens x windows
    assert window.min() == 0 and window.max() == len(bounds) - 1
    assert (e - s == 1).all()


@pytest.mark.parametrize("bounds", [[(0, 4), (3, 6)], [(0, 4), (5, 10)], [(2, 10)], [(4, 10), (0, 6)]])
def test_windows_that_do_not_cover_the_doc_in_order_are_refused(bounds):
    with pytest.raises(ValueError, match="E041"):
        assign_tokens(np.array([0]), np.array([1]), bounds, 10)


def test_token_ranges_outside_the_doc_are_refused():
    with pytest.raises(ValueError, match="E041"):
        assign_tokens(np.array([8]), np.array([12]), window_bounds(10, 4, 2), 10)


@pytest.mark.parametrize("n,content,stride", [(1, 4, 2), (10, 4, 2), (11, 4, 3), (100, 30, 20), (7, 7, 1), (8, 7, 7)])
def test_windows_cover_everything(n, content, stride):
    bounds = window_bounds(n, content, stride)
    covered = set()
    for s, e in bounds:
        assert 0 <= s < e <= n and e - s <= content
        covered.update(range(s, e))
    assert covered == set(range(n))
    assert bounds[-1][1] == n


def test_no_windows_for_no_wordpieces():
    assert window_bounds(0, 4, 2) == []


def test_each_token_read_from_one_window_with_most_context():
    # 10 tokens of one wordpiece each, windows of 4 every 2
    start = np.arange(10)
    end = start + 1
    bounds = window_bounds(10, 4, 2)
    window, s, e = assign_tokens(start, end, bounds, 10)
    for t in range(10):
        ws, we = bounds[window[t]]
        assert ws <= s[t] < e[t] <= we
    # token 5 sits in windows [2,6) and [4,8); in the latter it has context on both sides
    assert bounds[window[5]] == (4, 8)
    # the first token has no left context anywhere: it stays in the first window
    assert window[0] == 0


def test_token_longer_than_any_window_keeps_its_largest_part():
    start = np.array([0, 1, 9])
    end = np.array([1, 9, 10])  # token 1 has 8 wordpieces, windows hold 4
    bounds = window_bounds(10, 4, 2)
    window, s, e = assign_tokens(start, end, bounds, 10)
    assert (e - s)[1] == 4
    ws, we = bounds[window[1]]
    assert ws <= s[1] and e[1] <= we


def test_tokens_without_wordpieces_get_no_window():
    start = np.array([0, 1, 1])
    end = np.array([1, 1, 2])
    window, _, _ = assign_tokens(start, end, window_bounds(2, 4, 2), 2)
    assert window.tolist() == [0, -1, 0]


@pytest.mark.parametrize("n", [255, 280, 500, 1000, 5003])
def test_fewest_equal_windows_with_the_minimum_overlap(n):
    content, stride = 254, 192
    bounds = window_bounds(n, content, stride)
    sizes = {e - s for s, e in bounds}
    assert len(sizes) == 1 and sizes.pop() <= content
    for (_, e1), (s2, _) in zip(bounds, bounds[1:]):
        assert e1 - s2 >= content - stride
    # one window fewer could not cover n with that overlap
    k = len(bounds) - 1
    assert k * content - (k - 1) * (content - stride) < n


def test_doc_just_over_one_window_is_not_encoded_twice():
    # 280 wordpieces: two windows of 171, not two of 254
    assert window_bounds(280, 254, 192) == [(0, 171), (109, 280)]


def test_length_buckets_limit_padding(nlp, tiny_bert):
    from conftest import random_text
    from spacy_bertprod.layers.architectures import encoder_v1
    from spacy_bertprod.layers.batching import MIN_GROUP, PAD_RATIO, length_groups
    from spacy_bertprod.layers.encoder import window_plan

    model = encoder_v1(name=tiny_bert, window=64, stride=32, max_batch_wordpieces=4096)
    model.initialize()
    docs = [nlp.make_doc(random_text(n, seed=n)) for n in range(1, 40)]
    plan = window_plan(model, docs)
    lengths = np.array([len(w) + 2 for w in plan.windows])
    groups = length_groups(lengths, 4096)
    assert sorted(i for g in groups for i in g) == list(range(len(plan.windows)))
    for group in groups:
        lengths = [len(plan.windows[i]) + 2 for i in group]
        assert len(group) <= MIN_GROUP or max(lengths) <= PAD_RATIO * min(lengths)
