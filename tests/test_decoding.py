import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans
from spacy.vocab import Vocab

from spacy_bertprod.pipeline import decoding
from spacy_bertprod.pipeline.decoding import biluo_tag_names, path_to_spans, transition_constraints, viterbi, viterbi_batch


def _is_valid(tags):
    open_label = None
    for tag in tags:
        prefix, _, label = tag.partition("-")
        if open_label is None:
            if prefix in ("I", "L"):
                return False
            if prefix == "B":
                open_label = label
        else:
            if prefix not in ("I", "L") or label != open_label:
                return False
            if prefix == "L":
                open_label = None
    return open_label is None


def test_tag_names():
    assert biluo_tag_names(["LOC", "PER"]) == ["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC", "B-PER", "I-PER", "L-PER", "U-PER"]


def test_viterbi_only_yields_valid_sequences():
    names = biluo_tag_names(["LOC", "ORG", "PER"])
    allowed, may_start, may_end = transition_constraints(names)
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 40]:
        for _ in range(50):
            log_probs = np.log(rng.dirichlet(np.ones(len(names)) * 0.3, size=n))
            path = viterbi(log_probs, allowed, may_start, may_end)
            assert _is_valid([names[i] for i in path])


def test_viterbi_repairs_orphan_tags():
    names = biluo_tag_names(["PER"])
    allowed, may_start, may_end = transition_constraints(names)
    # Greedy argmax would give "I-PER L-PER" (no B): the decoder must not.
    probs = np.full((2, len(names)), 0.01)
    probs[0, names.index("I-PER")] = 0.6
    probs[0, names.index("B-PER")] = 0.3
    probs[1, names.index("L-PER")] = 0.9
    path = viterbi(np.log(probs), allowed, may_start, may_end)
    assert [names[i] for i in path] == ["B-PER", "L-PER"]


def test_path_to_spans_matches_spacy():
    names = biluo_tag_names(["LOC", "PER"])
    tags = ["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "I-LOC", "L-LOC"]
    spans = path_to_spans(np.array([names.index(t) for t in tags]), names)
    doc = Doc(Vocab(), words=[str(i) for i in range(len(tags))])
    expected = [(s.start, s.end, s.label_) for s in biluo_tags_to_spans(doc, tags)]
    assert spans == expected


def test_empty_sequence():
    names = biluo_tag_names(["PER"])
    assert len(viterbi(np.zeros((0, len(names))), *transition_constraints(names))) == 0


def _fixed(names, n, runs):
    """A `fixed` array: -1 everywhere but the (start, tags) runs."""
    fixed = np.full(n, -1, dtype="int64")
    for start, tags in runs:
        fixed[start : start + len(tags)] = [names.index(t) for t in tags]
    return fixed


def test_fixed_outside_tokens_split_an_entity_the_scores_want():
    names = biluo_tag_names(["LOC"])
    allowed, may_start, may_end = transition_constraints(names)
    # The scores want one entity over all four tokens; token 2 is fixed "O".
    probs = np.full((4, len(names)), 0.01)
    for i, tag in enumerate(["B-LOC", "I-LOC", "I-LOC", "L-LOC"]):
        probs[i, names.index(tag)] = 0.6
    probs[1, names.index("L-LOC")] = 0.3
    probs[3, names.index("U-LOC")] = 0.3
    assert [names[i] for i in viterbi(np.log(probs), allowed, may_start, may_end)] == ["B-LOC", "I-LOC", "I-LOC", "L-LOC"]
    path = viterbi(np.log(probs), allowed, may_start, may_end, _fixed(names, 4, [(2, ["O"])]))
    tags = [names[i] for i in path]
    assert tags[2] == "O" and _is_valid(tags)
    # the entity closes before the fixed token and one opens after it
    assert tags == ["B-LOC", "L-LOC", "O", "U-LOC"]


def test_fixed_unit_scored_as_outside_by_the_model():
    names = biluo_tag_names(["LOC", "PER"])
    allowed, may_start, may_end = transition_constraints(names)
    probs = np.full((3, len(names)), 0.01)
    probs[:, names.index("O")] = 0.9
    fixed = _fixed(names, 3, [(1, ["U-PER"])])
    assert [names[i] for i in viterbi(np.log(probs), allowed, may_start, may_end, fixed)] == ["O", "U-PER", "O"]


def test_adjacent_predicted_entity_beside_a_fixed_one():
    names = biluo_tag_names(["LOC", "ORG"])
    allowed, may_start, may_end = transition_constraints(names)
    # tokens 0-1 are fixed (a preset entity, "O" in the model's tag space);
    # the scores want an ORG entity over tokens 1-2: it shrinks to token 2
    probs = np.full((4, len(names)), 0.01)
    probs[0, names.index("O")] = 0.9
    probs[1, names.index("B-ORG")] = 0.9
    probs[2, names.index("L-ORG")] = 0.6
    probs[2, names.index("U-ORG")] = 0.3
    probs[3, names.index("O")] = 0.9
    path = viterbi(np.log(probs), allowed, may_start, may_end, _fixed(names, 4, [(0, ["O", "O"])]))
    assert [names[i] for i in path] == ["O", "O", "U-ORG", "O"]
    assert path_to_spans(path, names) == [(2, 3, "ORG")]


LABELS = ["LOC", "ORG", "PER"]
NAMES = biluo_tag_names(LABELS)
CONSTRAINTS = transition_constraints(NAMES)
# a valid fixed run: "O", a unit entity or a B I* L entity
fixed_runs = st.one_of(
    st.just(["O"]),
    st.sampled_from(LABELS).map(lambda label: [f"U-{label}"]),
    st.tuples(st.sampled_from(LABELS), st.integers(0, 3)).map(lambda t: [f"B-{t[0]}"] + [f"I-{t[0]}"] * t[1] + [f"L-{t[0]}"]),
)


@st.composite
def scores_and_fixed(draw):
    n = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    log_probs = np.log(rng.dirichlet(np.ones(len(NAMES)) * 0.3, size=n) + 1e-12)
    runs = []
    pos = draw(st.integers(0, n))
    for run in draw(st.lists(fixed_runs, max_size=5)):
        if pos + len(run) > n:
            break
        runs.append((pos, run))
        pos += len(run) + draw(st.integers(0, 4))
    return log_probs, _fixed(NAMES, n, runs)


@settings(max_examples=200, deadline=None)
@given(case=scores_and_fixed())
def test_constrained_viterbi_properties(case):
    log_probs, fixed = case
    path = viterbi(log_probs, *CONSTRAINTS, fixed)
    assert len(path) == len(log_probs)
    assert _is_valid([NAMES[i] for i in path])
    assert np.array_equal(path[fixed >= 0], fixed[fixed >= 0])
    nothing_fixed = np.full(len(log_probs), -1, dtype="int64")
    assert np.array_equal(viterbi(log_probs, *CONSTRAINTS, nothing_fixed), viterbi(log_probs, *CONSTRAINTS))


@settings(max_examples=100, deadline=None)
@given(case=scores_and_fixed())
def test_constrained_viterbi_is_best_among_paths_that_respect_the_fixed_tags(case):
    """Brute force on short inputs: no valid path through the fixed tags
    scores higher than the decoded one."""
    import itertools

    log_probs, fixed = case
    log_probs, fixed = log_probs[:3], fixed[:3]
    if len(fixed) and fixed[-1] >= 0 and NAMES[fixed[-1]][0] in "BI":
        return  # a fixed run cut by the truncation is not a valid run
    path = viterbi(log_probs, *CONSTRAINTS, fixed)
    best = max(
        log_probs[np.arange(len(cand)), list(cand)].sum()
        for cand in itertools.product(range(len(NAMES)), repeat=len(fixed))
        if _is_valid([NAMES[i] for i in cand]) and all(f < 0 or f == c for f, c in zip(fixed, cand))
    )
    assert log_probs[np.arange(len(path)), path].sum() == pytest.approx(best)


def _path_score(log_probs, path):
    return float(log_probs[np.arange(len(path)), path].sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=7), st.integers(min_value=0, max_value=2**31 - 1))
def test_viterbi_batch_finds_the_best_valid_path_of_every_sequence(lengths, seed):
    """Sequences of mixed lengths (empty ones too), decoded in groups of
    several sizes: each path is valid and scores as high as the best valid
    path found by enumerating them all."""
    import itertools

    names = biluo_tag_names(["LOC"])
    allowed, may_start, may_end = transition_constraints(names)
    rng = np.random.default_rng(seed)
    seqs = [np.log(rng.dirichlet(np.ones(len(names)), size=n)) if n else np.zeros((0, len(names))) for n in lengths]
    best = []
    for lp in seqs:
        valid = [p for p in itertools.product(range(len(names)), repeat=len(lp)) if _is_valid([names[i] for i in p])]
        best.append(max(_path_score(lp, np.array(p, dtype="int64")) for p in valid) if len(lp) else 0.0)
    for positions in (1, 8, decoding.BATCH_POSITIONS):
        decoding.BATCH_POSITIONS, saved = positions, decoding.BATCH_POSITIONS
        try:
            paths = viterbi_batch(seqs, allowed, may_start, may_end)
        finally:
            decoding.BATCH_POSITIONS = saved
        assert [len(p) for p in paths] == lengths
        for lp, path, score in zip(seqs, paths, best):
            assert _is_valid([names[i] for i in path])
            assert _path_score(lp, path) == pytest.approx(score)


def test_viterbi_batch_keeps_each_sequences_fixed_tags():
    names = biluo_tag_names(["PER"])
    allowed, may_start, may_end = transition_constraints(names)
    per = np.full((3, len(names)), 0.01)
    per[:, names.index("U-PER")] = 0.96
    fixed = np.array([-1, names.index("O"), -1])
    paths = viterbi_batch([np.log(per), np.log(per)], allowed, may_start, may_end, [fixed, None])
    assert [[names[i] for i in p] for p in paths] == [["U-PER", "O", "U-PER"], ["U-PER"] * 3]
