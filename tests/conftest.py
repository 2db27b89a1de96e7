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


#: NER examples in German, French and Chinese (spaCy's blank "zh" makes one
#: token per character: a wordpiece such as "北京" spans two tokens).
LANGUAGE_DATA = {
    "de": [("Angela Merkel besuchte das Werk in München.", [(0, 13, "PER"), (35, 42, "LOC")]), ("Die Straße führt nach Köln.", [(22, 26, "LOC")])],
    "fr": [("Marie Curie est née à Varsovie.", [(0, 11, "PER"), (22, 30, "LOC")]), ("L'usine d'Orléans ferme.", [(10, 17, "LOC")])],
    "zh": [("马克在北京工作。", [(0, 2, "PER"), (3, 5, "LOC")]), ("我住在上海。", [(3, 5, "LOC")])],
}

#: The encoder families `build_tiny_family` builds: each a tiny random model
#: of that architecture with the kind of tokenizer its checkpoints ship.
FAMILIES = ("bert", "bert-cased", "roberta", "xlm-roberta", "deberta-v2", "deberta-v3", "electra", "distilbert", "modernbert")

#: Text the byte-level BPE and SentencePiece tokenizers are trained on.
TOKENIZER_CORPUS = (
    [t for t, _ in TRAIN_DATA]
    + [t for t, _ in CATS]
    + [QA_CONTEXT]
    + [r["question"] for r in QA_ROWS]
    + [" ".join(WORDS), " ".join(w.title() for w in WORDS), "Café naïve Zürich 東京 жизнь Ω 1867 1891 ?!.,"]
    + [t for t, _ in LANGUAGE_DATA["de"] + LANGUAGE_DATA["fr"]]
    + [t for t, _ in LANGUAGE_DATA["zh"]] * 4  # pieces of several characters
)


def _trained_tokenizer(kind: str, specials: Tuple[str, ...], vocab_size: int = 300):
    """A fast tokenizer trained on TOKENIZER_CORPUS: "bpe" is byte-level BPE
    (RoBERTa's: leading-space pieces, offsets trimmed), "unigram"
    SentencePiece-style (XLM-R's and DeBERTa-v3's: the "▁" prefix)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(TOKENIZER_CORPUS * 3, trainer)
        tok.post_processor = processors.RobertaProcessing(sep=(specials[2], tok.token_to_id(specials[2])), cls=(specials[0], tok.token_to_id(specials[0])), trim_offsets=True, add_prefix_space=False)
        return tok
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(specials), unk_token=specials[3])
    tok.train_from_iterator(TOKENIZER_CORPUS * 3, trainer)
    cls, sep = specials[0], specials[2]
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok


def build_tiny_family(path: Path, family: str, *, layers: int = 2, width: int = 32, max_pos: int = 128, seed: int = 0) -> Path:
    """Save a random encoder of `family` (one of FAMILIES) with its kind of
    tokenizer to `path` as a Hugging Face folder (config, tokenizer.json,
    safetensors weights), as a user's own model would be."""
    import torch
    import transformers

    if family == "bert":
        return build_tiny_bert(path, layers=layers, width=width, max_pos=max_pos, seed=seed)
    path.mkdir(parents=True, exist_ok=True)
    shape = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=width * 2, max_position_embeddings=max_pos)
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    bert_specials = ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")
    if family in ("bert-cased", "electra", "distilbert", "deberta-v2"):
        # wordpiece vocabularies: cased for "bert-cased", uncased otherwise
        lower = family != "bert-cased"
        letters = string.ascii_lowercase if lower else string.ascii_letters
        pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(letters + string.digits + string.punctuation) + list("éüçß中国人東京Ωж")
        pieces += ["##" + c for c in letters + string.digits] + WORDS + ([] if lower else [w.title() for w in WORDS])
        vocab_file = path / "vocab.txt"
        vocab_file.write_text("\n".join(dict.fromkeys(pieces)) + "\n", encoding="utf8")
        hf_tok = transformers.BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=lower)
    elif family == "roberta":
        specials = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
        kind = "bpe"
    elif family == "modernbert":  # byte-level BPE with BERT's special tokens
        specials, kind = bert_specials, "bpe"
    else:  # SentencePiece unigram: xlm-roberta, deberta-v3
        specials = ("<s>", "<pad>", "</s>", "<unk>", "<mask>") if family != "deberta-v3" else bert_specials
        kind = "unigram"
    if family not in ("bert-cased", "electra", "distilbert", "deberta-v2"):
        names = dict(zip(("cls_token", "pad_token", "sep_token", "unk_token", "mask_token"), specials))
        hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=_trained_tokenizer(kind, specials), bos_token=specials[0], eos_token=specials[2], **names)
    hf_tok.save_pretrained(str(path))
    vocab, pad = len(hf_tok), hf_tok.pad_token_id
    torch.manual_seed(seed)
    if family in ("bert-cased", "electra"):
        cls = transformers.BertConfig if family == "bert-cased" else transformers.ElectraConfig
        config = cls(vocab_size=vocab, pad_token_id=pad, **shape, **no_dropout)
        if family == "electra":
            config.embedding_size = width // 2  # ELECTRA projects smaller embeddings up
    elif family in ("roberta", "xlm-roberta"):
        cls = transformers.RobertaConfig if family == "roberta" else transformers.XLMRobertaConfig
        # position ids start after the padding index, as in the released checkpoints
        config = cls(vocab_size=vocab, pad_token_id=pad, bos_token_id=0, eos_token_id=2, type_vocab_size=1, **{**shape, "max_position_embeddings": max_pos + pad + 1}, **no_dropout)
    elif family == "deberta-v2":
        config = transformers.DebertaV2Config(vocab_size=vocab, pad_token_id=pad, type_vocab_size=0, relative_attention=False, position_biased_input=True, **shape, **no_dropout)
    elif family == "deberta-v3":
        config = transformers.DebertaV2Config(
            vocab_size=vocab, pad_token_id=pad, type_vocab_size=0, relative_attention=True, position_buckets=16, max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True, **shape, **no_dropout,
        )  # fmt: skip
    elif family == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=vocab, pad_token_id=pad, dim=width, n_layers=layers, n_heads=2, hidden_dim=width * 2, max_position_embeddings=max_pos, dropout=0.0, attention_dropout=0.0
        )
    elif family == "modernbert":
        config = transformers.ModernBertConfig(
            vocab_size=vocab, pad_token_id=pad, bos_token_id=hf_tok.cls_token_id, eos_token_id=hf_tok.sep_token_id, cls_token_id=hf_tok.cls_token_id, sep_token_id=hf_tok.sep_token_id,
            hidden_size=width, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=width * 2, max_position_embeddings=max_pos,
            global_attn_every_n_layers=2, local_attention=16, attention_dropout=0.0, embedding_dropout=0.0, mlp_dropout=0.0, reference_compile=False,
        )  # fmt: skip
    else:
        raise ValueError(f"unknown family {family!r}: one of {FAMILIES}")
    model = transformers.AutoModel.from_config(config)
    model.save_pretrained(str(path))
    return path
