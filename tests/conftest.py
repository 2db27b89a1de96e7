"""Fixtures: tiny random BERT models and vocabularies built on the fly, so the
suite needs no download and stays fast. Tests marked `slow` use the real
embedded MiniLM."""

import random
import shutil
import string
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import spacy
from spacy.training import Example
from thinc.api import fix_random_seed

WORDS = (
    "the a of in to and was is visited plant company city river film she he "
    "it born moved new york angela merkel siemens munich paris london berlin "
    "marie curie warsaw john smith bank work works worked mr ms dr st co inc "
    "cafe naive zurich tokyo"
).split()
TRAIN_DATA = [
    ("Angela Merkel visited the Siemens plant in Munich.", [(0, 13, "PER"), (26, 33, "ORG"), (43, 49, "LOC")]),
    ("John Smith works in London.", [(0, 10, "PER"), (20, 26, "LOC")]),
    ("Marie Curie was born in Warsaw.", [(0, 11, "PER"), (24, 30, "LOC")]),
    ("Siemens moved to Berlin.", [(0, 7, "ORG"), (17, 23, "LOC")]),
    ("She visited Paris and Tokyo.", [(12, 17, "LOC"), (22, 27, "LOC")]),
    ("The bank worked in Zurich.", [(19, 25, "LOC")]),
]

#: textcat training data (exclusive POS / NEG)
CATS = [
    ("the film was a delight", "POS"),
    ("she worked in a bank", "NEG"),
    ("new city river film", "POS"),
    ("the bank of the river", "NEG"),
]
#: a QA context and two SQuAD-style rows on it
QA_CONTEXT = "Marie Curie was born in Warsaw in 1867. She moved to Paris in 1891."
QA_ROWS = [
    {"id": "1", "question": "where was marie curie born?", "context": QA_CONTEXT, "answers": [(24, 30, "Warsaw")]},
    {"id": "2", "question": "where did she move?", "context": QA_CONTEXT, "answers": [(53, 58, "Paris")]},
]


def build_tiny_bert(path: Path, *, layers: int = 2, width: int = 32, max_pos: int = 128, seed: int = 0, extra_words: Tuple[str, ...] = ()) -> Path:
    """Save a random BERT with a small uncased wordpiece vocab to `path`
    (`extra_words`: more whole-word pieces, for another vocabulary)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation) + list("éüçß中国人東京Ωж")
    pieces += chars + ["##" + c for c in string.ascii_lowercase + string.digits] + WORDS + list(extra_words)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(pieces)) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=width * 2,
        max_position_embeddings=max_pos,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state (weights of new heads,
    dropout masks, shuffles), so results after tiny training runs are
    reproducible rather than lucky."""
    fix_random_seed(0)


@pytest.fixture
def nlp():
    return spacy.blank("en")


def ner_config(model_path: str, **encoder) -> dict:
    settings = {"name": model_path, "window": 16, "stride": 8, "max_batch_wordpieces": 256}
    settings.update(encoder)
    return {"model": {"encoder": settings}}


def cats_examples(nlp, data=CATS):
    """Textcat examples with exclusive POS / NEG cats."""
    return [Example.from_dict(nlp.make_doc(t), {"cats": {"POS": float(label == "POS"), "NEG": float(label == "NEG")}}) for t, label in data]


def make_examples(nlp, data=TRAIN_DATA):
    examples = []
    for text, ents in data:
        doc = nlp.make_doc(text)
        examples.append(Example.from_dict(doc, {"entities": ents}))
    return examples


def train(nlp, examples, steps: int = 40, lr: float = 1e-3, seed: int = 0):
    """Initialize `nlp` on `examples` and take `steps` Adam updates on them,
    from a fixed random state (module- and session-scoped fixtures call this
    before the per-test seed applies)."""
    from thinc.api import Adam

    fix_random_seed(seed)
    nlp.initialize(lambda: examples)
    optimizer = Adam(lr)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


def random_text(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def assert_varies(arrays, atol: float = 1e-4) -> None:
    """The outputs (one array per input, or the rows of one array) are not all
    the same: a head that ignores the encoder (thinc's Softmax starts with
    all-zero weights, so an untrained NER head gives every tag 1/13 on every
    token) would make a comparison of two pipelines compare constants."""
    rows = [np.asarray(row, dtype="float64") for a in arrays for row in np.atleast_2d(np.asarray(a, dtype="float64"))]
    assert len(rows) > 1, "need at least two outputs to see them vary"
    spread = max(float(np.abs(row - rows[0]).max()) for row in rows)
    assert spread > atol, f"every output is the same (max difference {spread:.2g}): the head ignores its input"


@pytest.fixture(scope="session")
def trained_ner_path(tiny_bert, tmp_path_factory) -> Path:
    """A bertprod_ner pipeline on the tiny BERT, trained (seeded) until it
    tags TRAIN_DATA, saved to disk: round-trip tests compare outputs that
    depend on the encoder, not the constant 1/13 of an untrained head."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(model_path=tiny_bert))
    train(nlp, make_examples(nlp), steps=40)
    path = tmp_path_factory.mktemp("trained-ner")
    nlp.to_disk(path)
    return path


def copy_sources(root: Path, dest: Path) -> Path:
    """A copy of the package's sources at `dest`, to build its wheel from:
    setuptools writes build/ and *.egg-info beside the sources, which in the
    checkout would shadow the installed package for anything that puts the
    checkout on sys.path (pip then sees spacy-bertprod as installed)."""
    shutil.copytree(root / "spacy_bertprod", dest / "spacy_bertprod", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, dest / name)
    return dest
