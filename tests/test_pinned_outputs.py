"""The outputs of seeded tiny-model pipelines, pinned: a restructure must not
move an entity, a category score or an answer.

tests/pinned_outputs.json holds what the code wrote when it was pinned; after
a change that is meant to alter outputs, look at the difference and rewrite it
with `python tests/test_pinned_outputs.py --write`.
"""

import json
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import spacy

from conftest import CATS, QA_CONTEXT, QA_ROWS, TRAIN_DATA, cats_examples, random_text, train

PINNED = Path(__file__).parent / "pinned_outputs.json"
#: scores may differ in the last bits between CPUs (kernels, summation order)
ATOL = 1e-4
CONTEXT = QA_CONTEXT
#: training texts, unseen ones, and a long one that spans many windows
TEXTS = [text for text, _ in TRAIN_DATA] + [
    "Angela Merkel moved to Paris and worked for Siemens.",
    "Dr. John Smith visited the Zurich bank in Tokyo.",
    random_text(120, seed=3),
    "",
]
ENCODER = {"window": 16, "stride": 8, "max_batch_wordpieces": 256}


def ner_outputs(tiny_bert: str) -> Dict[str, Any]:
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": {"name": tiny_bert, **ENCODER}}})
    train(nlp, [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in TRAIN_DATA], steps=40)
    out = []
    for doc in nlp.pipe(TEXTS, batch_size=3):
        group = doc.spans["bertprod_ner"]
        out.append([[s.start_char, s.end_char, s.label_, score] for s, score in zip(group, group.attrs["scores"])])
    return {"texts": TEXTS, "entities": out}


def textcat_outputs(tiny_bert: str) -> Dict[str, Any]:

    out = {}
    for exclusive, pooling in [(True, "cls"), (False, "mean")]:
        nlp = spacy.blank("en")
        nlp.add_pipe("bertprod_textcat", config={"exclusive_classes": exclusive, "model": {"encoder": {"name": tiny_bert, **ENCODER}, "pooling": pooling}})
        train(nlp, cats_examples(nlp), steps=30)
        out[f"{'exclusive' if exclusive else 'multilabel'}-{pooling}"] = [dict(sorted(doc.cats.items())) for doc in nlp.pipe([t for t, _ in CATS] + TEXTS, batch_size=3)]
    return out


def qa_outputs(tiny_bert: str) -> Dict[str, Any]:
    from spacy_bertprod.training.squad import make_examples

    nlp = spacy.blank("en")
    model = {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}
    qa = nlp.add_pipe("bertprod_qa", config={"model": model})
    train(nlp, list(make_examples(nlp, QA_ROWS)), steps=60)
    out = []
    for question in [row["question"] for row in QA_ROWS] + ["who moved in 1891?"]:
        for context in (CONTEXT, random_text(90, seed=5) + " " + CONTEXT):
            answers = qa.answer(nlp.make_doc(context), question, top_k=3)
            out.append([[a.start_char, a.end_char, a.text, a._.bertprod_score] for a in answers])
    return {"answers": out}


def outputs(tiny_bert: str) -> Dict[str, Any]:
    return {"ner": ner_outputs(tiny_bert), "textcat": textcat_outputs(tiny_bert), "qa": qa_outputs(tiny_bert)}


def assert_same(got: Any, pinned: Any, where: str = "") -> None:
    """Equal, floats within ATOL: labels, offsets and texts exactly."""
    if isinstance(pinned, float):
        assert isinstance(got, float) and abs(got - pinned) <= ATOL, f"{where}: {got!r} != pinned {pinned!r}"
    elif isinstance(pinned, (list, dict)):
        assert type(got) is type(pinned) and len(got) == len(pinned), f"{where}: {got!r} != pinned {pinned!r}"
        keys = pinned.keys() if isinstance(pinned, dict) else range(len(pinned))
        if isinstance(pinned, dict):
            assert got.keys() == pinned.keys(), f"{where}: keys {sorted(got)} != pinned {sorted(pinned)}"
        for key in keys:
            assert_same(got[key], pinned[key], f"{where}/{key}")
    else:
        assert got == pinned, f"{where}: {got!r} != pinned {pinned!r}"


def as_json(value: Any) -> Any:
    """What json.loads gives back for `value` (tuples become lists, float32 float)."""
    return json.loads(json.dumps(value, default=float))


@pytest.mark.parametrize("component", ["ner", "textcat", "qa"])
def test_outputs_match_pinned(tiny_bert, component):
    pinned = json.loads(PINNED.read_text(encoding="utf8"))[component]
    got = as_json({"ner": ner_outputs, "textcat": textcat_outputs, "qa": qa_outputs}[component](tiny_bert))
    assert_same(got, pinned, component)


def test_pinned_outputs_are_not_trivial():
    """The pinned file itself shows trained heads: entities found, categories
    told apart, answers with different scores."""
    pinned = json.loads(PINNED.read_text(encoding="utf8"))
    assert sum(len(ents) for ents in pinned["ner"]["entities"]) >= len(TRAIN_DATA)
    cats = pinned["textcat"]["exclusive-cls"]
    assert cats[0]["POS"] > 0.5 > cats[1]["POS"]
    assert [a[2] for a in pinned["qa"]["answers"][0][:1]] == ["Warsaw"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_pinned_outputs.py --write  (rewrites tests/pinned_outputs.json from this code)")
    import tempfile

    from thinc.api import fix_random_seed

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import build_tiny_bert

    with tempfile.TemporaryDirectory() as tmp:
        fix_random_seed(0)
        PINNED.write_text(json.dumps(as_json(outputs(str(build_tiny_bert(Path(tmp) / "tiny-bert")))), indent=1) + "\n", encoding="utf8")
    print(f"wrote {PINNED}")
