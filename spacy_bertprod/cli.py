"""Command line: `python -m spacy_bertprod COMMAND`.

convert  CoNLL-2003 files -> .spacy corpora (document level)
demo     convert the shipped sample, train bertprod_ner on the embedded MiniLM,
         evaluate it and print the entities of a few sentences
"""

import argparse
import time
from pathlib import Path
from typing import List, Optional

DEMO_TEXTS = [
    "Angela Merkel visited the Siemens plant in Munich.",
    "Kenji Tanaka told Reuters that talks would resume in Oslo.",
    "Shares of Nokia rose 3 percent in Toronto trading.",
]


def convert(args: argparse.Namespace) -> None:
    from .convert import conll_to_docs, write_docbin

    docs = conll_to_docs(args.input, n_sents=args.n_sents)
    path = write_docbin(docs, args.output)
    print(f"{len(docs)} docs, {sum(len(d) for d in docs)} tokens -> {path}")


def demo(args: argparse.Namespace) -> None:
    import spacy
    from spacy.cli.train import train

    from .convert import conll_to_docs, write_docbin

    corpus = Path(args.corpus)
    for split in ("train", "dev"):
        write_docbin(conll_to_docs(Path(args.assets) / f"{split}.conll"), corpus / f"{split}.spacy")
    overrides = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "training.max_epochs": 0,
        "training.max_steps": args.steps,
        "training.eval_frequency": max(args.steps // 4, 1),
        "training.batcher.size": 300,
        "training.optimizer.learn_rate.warmup_steps": max(args.steps // 10, 1),
        "training.optimizer.learn_rate.total_steps": args.steps,
        "training.optimizer.learn_rate.initial_rate": 2e-4,
    }
    start = time.perf_counter()
    train(args.config, args.output, overrides=overrides, use_gpu=args.gpu_id)
    print(f"\ntrained in {time.perf_counter() - start:.0f} s")
    nlp = spacy.load(Path(args.output) / "model-best")
    for doc in nlp.pipe(DEMO_TEXTS):
        ents = ", ".join(f"{e.text} [{e.label_} {e._.bertprod_score:.2f}]" for e in doc.ents)
        print(f"{doc.text}\n    -> {ents or '(no entities)'}")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m spacy_bertprod", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="CoNLL-2003 file -> .spacy")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--n-sents", type=int, default=0, help="sentences per doc (0: keep -DOCSTART- documents)")
    p.set_defaults(func=convert)
    p = sub.add_parser("demo", help="train NER on the shipped sample and tag example text")
    p.add_argument("--assets", default="assets/ner")
    p.add_argument("--corpus", default="corpus/ner-sample")
    p.add_argument("--config", default="configs/ner.cfg")
    p.add_argument("--output", default="training/ner-demo")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--gpu-id", type=int, default=-1)
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    args.func(args)
