import numpy as np
from spacy.tokens import Doc
from spacy.training import biluo_tags_to_spans
from spacy.vocab import Vocab

from spacy_bertprod.pipeline.decoding import biluo_tag_names, path_to_spans, transition_constraints, viterbi


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
