"""CoNLL-2003 benchmark for bertprod_ner.

1. Converts ../shared/datasets/conll2003 (document level) to DocBins.
2. Trains bertprod_ner with `spacy train configs/ner.cfg` on the embedded MiniLM.
3. Scores entity P/R/F (overall and per type) on the *test* set with spaCy's scorer.
4. Times `nlp.pipe` on the test set (CPU, --threads) for bertprod_ner and, in
   the same run, for spacy-transformers (`transformer` + `ner` listening to it)
   with the same MiniLM encoder, and prints the ratio.

    python bench/conll_ner.py [--train-limit N] [--epochs E] [--skip-train]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import spacy
import torch
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

from spacy_bertprod.convert import conll_to_docs, write_docbin  # noqa: E402
from spacy_bertprod.hf_loader import embedded_model_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SPACY_TRANSFORMERS_CFG = """
[nlp]
lang = "en"
pipeline = ["transformer", "ner"]
batch_size = 32

[components]

[components.transformer]
factory = "transformer"
max_batch_items = 4096

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "{name}"
mixed_precision = false
tokenizer_config = {{"use_fast": true}}

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = false
nO = null

[components.ner.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
pooling = {{"@layers":"reduce_mean.v1"}}
upstream = "*"
"""


def time_pipe(nlp, texts, batch_size, repeats):
    """Best-of-`repeats` wall time of nlp.pipe over texts (after one warm-up)."""
    list(nlp.pipe(texts[:20], batch_size=batch_size))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=batch_size):
            pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/conll"))
    parser.add_argument("--config", default=str(ROOT / "configs/ner.cfg"))
    parser.add_argument("--train-limit", type=int, default=0, help="train documents to use (0: all)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--skip-train", action="store_true", help="reuse the model in --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = Path(args.data)
    print("machine:", describe(), flush=True)

    corpus = out / "corpus"
    splits = {}
    for split, fname in (("train", "train.txt"), ("dev", "dev.txt"), ("test", "test.txt")):
        docs = conll_to_docs(data / fname)
        if split == "train" and args.train_limit:
            docs = docs[: args.train_limit]
        splits[split] = docs
        write_docbin(docs, corpus / f"{split}.spacy")
        print(f"{split}: {len(docs)} documents, {sum(len(d) for d in docs)} tokens", flush=True)

    model_dir = out / "model"
    if not args.skip_train:
        from spacy.cli.train import train

        n_words = sum(len(d) for d in splits["train"])
        steps = int(args.epochs * n_words / 1000 * 1.15) + 1
        overrides = {
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
            "training.max_epochs": args.epochs,
            "training.optimizer.learn_rate.total_steps": steps,
        }
        start = time.perf_counter()
        train(args.config, model_dir, overrides=overrides, use_gpu=args.gpu_id)
        print(f"training time: {time.perf_counter() - start:.0f} s ({args.epochs} epochs)", flush=True)

    best = model_dir / "model-best"
    nlp = spacy.load(best if best.exists() else model_dir / "model-last")
    test_docs = splits["test"]
    examples = [Example(nlp.make_doc(d.text), d) for d in test_docs]
    scores = nlp.evaluate(examples, batch_size=args.batch_size)
    print(f"\nTEST (CoNLL-2003 testb, {len(test_docs)} documents) entity scores, spaCy scorer:")
    print(f"  overall  P {scores['ents_p']*100:.2f}  R {scores['ents_r']*100:.2f}  F {scores['ents_f']*100:.2f}")
    for label, prf in sorted(scores["ents_per_type"].items()):
        print(f"  {label:<8} P {prf['p']*100:.2f}  R {prf['r']*100:.2f}  F {prf['f']*100:.2f}")

    texts = [d.text for d in test_docs]
    n_words = sum(len(d) for d in test_docs)
    ours = time_pipe(nlp, texts, args.batch_size, args.repeats)

    st_nlp = spacy.util.load_model_from_config(
        spacy.util.load_config_from_str(SPACY_TRANSFORMERS_CFG.format(name=embedded_model_path())),
        auto_fill=True,
        validate=True,
    )
    labels = sorted({e.label_ for d in splits["train"] for e in d.ents})
    for label in labels:
        st_nlp.get_pipe("ner").add_label(label)
    st_nlp.initialize(lambda: [Example(st_nlp.make_doc(d.text), d) for d in splits["train"][:20]])
    theirs = time_pipe(st_nlp, texts, args.batch_size, args.repeats)

    print(f"\nTHROUGHPUT on the test set ({n_words} words, nlp.pipe batch {args.batch_size}, CPU, {torch.get_num_threads()} threads, best of {args.repeats}):")
    print(f"  bertprod_ner                      {n_words / ours:10.0f} words/s  ({ours:.1f} s)")
    print(f"  spacy-transformers transformer+ner {n_words / theirs:9.0f} words/s  ({theirs:.1f} s)")
    print(f"  ratio bertprod / spacy-transformers: {theirs / ours:.2f}x")
    result = {
        "machine": describe(),
        "test_scores": {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")},
        "words_per_second": {"bertprod_ner": n_words / ours, "spacy_transformers": n_words / theirs},
        "ratio": theirs / ours,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
