"""Command line: `python -m spacy_bertprod COMMAND` (the project.yml steps).

convert      one CoNLL-2003 file -> .spacy (document level)
convert-all  a dataset folder laid out like ../shared/datasets (or assets/)
             -> corpus/ner, corpus/textcat (.spacy) and corpus/qa (SQuAD JSON)
train        `spacy train` of configs/<task>.cfg on corpus/<task>
evaluate     score a trained pipeline on corpus/<task>; JSON metrics, and
             displaCy HTML for NER
distill      train a smaller student (fewer transformer layers, or another
             narrower encoder) to match a trained teacher pipeline: soft
             targets plus gold loss
quantize     int8-quantize the encoders of a trained pipeline (CPU serving)
onnx         run a trained pipeline's encoders on ONNX Runtime (fp32 or int8)
demo         convert the shipped NER sample, train bertprod_ner on the
             embedded MiniLM and print the entities of a few sentences
"""

import argparse
import time
from pathlib import Path
from typing import List, Optional, Tuple

from .errors import Errors

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


TASK_FILES = {
    "ner": [("conll2003/train.txt", "train.spacy"), ("conll2003/dev.txt", "dev.spacy"), ("conll2003/test.txt", "test.spacy")],
    "textcat": [("sst2/glue/train.tsv", "train.spacy"), ("sst2/glue/dev.tsv", "dev.spacy")],
    "qa": [("squad/train-subset-v1.1.json", "train.json"), ("squad/dev-v1.1.json", "dev.json")],
}


def convert_all(args: argparse.Namespace) -> None:
    import shutil

    import spacy

    from .convert import conll_to_docs, sst2_to_docs, write_docbin

    data, corpus = Path(args.data_dir), Path(args.corpus)
    blank = spacy.blank("en")
    for task, files in TASK_FILES.items():
        for source, target in files:
            src, dest = data / source, corpus / task / target
            if not src.exists():
                print(f"skip {src} (not there)")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if task == "qa":
                shutil.copyfile(src, dest)
                print(f"{src} -> {dest}")
                continue
            docs = conll_to_docs(src) if task == "ner" else sst2_to_docs(src, blank, limit=args.limit)
            if args.limit:
                docs = docs[: args.limit]
            write_docbin(docs, dest)
            print(f"{src} -> {dest} ({len(docs)} docs)")


def _corpus_paths(corpus: Path, task: str) -> Tuple[Path, Path]:
    ext = "json" if task == "qa" else "spacy"
    return corpus / task / f"train.{ext}", corpus / task / f"dev.{ext}"


def train_task(args: argparse.Namespace) -> None:
    from spacy.cli.train import train

    train_path, dev_path = _corpus_paths(Path(args.corpus), args.task)
    overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path)}
    if args.max_steps:
        overrides.update({"training.max_steps": args.max_steps, "training.max_epochs": 0, "training.eval_frequency": max(args.max_steps // 2, 1)})
        overrides["training.optimizer.learn_rate.total_steps"] = args.max_steps
        overrides["training.optimizer.learn_rate.warmup_steps"] = max(args.max_steps // 10, 1)
    if args.batch_size:
        overrides["training.batcher.size"] = args.batch_size
    if args.lr:
        overrides["training.optimizer.learn_rate.initial_rate"] = args.lr
    train(args.config or f"configs/{args.task}.cfg", args.output, overrides=overrides, use_gpu=args.gpu_id)


def evaluate_task(args: argparse.Namespace) -> None:
    import json

    import spacy
    from spacy.training import Corpus

    from .squad import squad_corpus

    nlp = spacy.load(args.model)
    corpus = Path(args.corpus) / args.task
    if args.task == "qa":
        path = corpus / "dev.json"
        examples = list(squad_corpus(str(path))(nlp))
    else:
        path = corpus / "test.spacy" if (corpus / "test.spacy").exists() else corpus / "dev.spacy"
        examples = list(Corpus(str(path))(nlp))
    scores = nlp.evaluate(examples)
    scores = {k: v for k, v in scores.items() if not k.startswith("token_")}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(scores, indent=2))
    print(f"{args.model} on {path} ({len(examples)} examples):")
    for key, value in scores.items():
        if isinstance(value, float):
            print(f"  {key:<16} {value:.4f}")
    if args.displacy_path and args.task == "ner":
        from spacy import displacy

        docs = list(nlp.pipe([eg.reference.text for eg in examples[: args.displacy_limit]]))
        Path(args.displacy_path).write_text(displacy.render(docs, style="ent", page=True), encoding="utf8")
        print(f"displaCy HTML -> {args.displacy_path}")


def _read_examples(nlp, path: Path, limit: int = 0) -> list:
    """Examples from a .spacy corpus, SQuAD-format JSON, or plain text (one
    text per line, unlabelled)."""
    from spacy.training import Corpus, Example

    from .squad import squad_corpus

    if path.suffix == ".json":
        examples = list(squad_corpus(str(path), limit=limit)(nlp))
    elif path.suffix == ".spacy":
        examples = list(Corpus(str(path), limit=limit)(nlp))
    else:
        lines = [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
        examples = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in lines]
    return examples[:limit] if limit else examples


def distill_cmd(args: argparse.Namespace) -> None:
    import spacy

    from .distill import distill, make_student

    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)
    if args.corpus:
        for split in ("train", "dev"):
            if getattr(args, split) is None:
                found = [p for p in (Path(args.corpus) / f"{split}.spacy", Path(args.corpus) / f"{split}.json") if p.exists()]
                setattr(args, split, str(found[0]) if found else None)
    teacher = spacy.load(args.teacher)
    train = _read_examples(teacher, Path(args.train), args.train_limit) if args.train else []
    n_plain = 0
    if args.unlabelled:
        plain = _read_examples(teacher, Path(args.unlabelled), args.train_limit)
        n_plain = len(plain)
        train += plain
    dev = _read_examples(teacher, Path(args.dev), args.dev_limit) if args.dev else []
    if not train:
        raise SystemExit(Errors.E027)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    student = make_student(teacher, layers=layers, n_layers=args.n_layers, encoder=args.encoder, get_examples=lambda: train or dev)
    done = student.meta["bertprod"]["distillation"]
    print(f"teacher {args.teacher} -> student " + (f"on encoder {done['encoder']}" if args.encoder else f"keeping layers {done['layers']}"))
    print(f"{len(train)} training examples ({n_plain} unlabelled), {len(dev)} dev examples")
    start = time.perf_counter()
    best = distill(
        teacher, student, train, dev, output=Path(args.output), steps=args.steps, batch_words=args.batch_words,
        learn_rate=args.lr, temperature=args.temperature, soft_weight=args.soft_weight, gold_weight=args.gold_weight, hidden_weight=args.hidden_weight,
        eval_every=args.eval_every, seed=args.seed,
    )
    print(f"distilled in {time.perf_counter() - start:.0f} s; best dev score {best['score']:.4f} at step {best.get('step')}")
    print(f"-> {Path(args.output) / 'model-best'} and {Path(args.output) / 'model-last'}")


def quantize(args: argparse.Namespace) -> None:
    from .compress import quantize_path

    done = quantize_path(args.input, args.output)
    print(f"int8-quantized the encoders of {done or 'no component'} -> {args.output}")


def onnx(args: argparse.Namespace) -> None:
    from .compress import onnx_path

    done = onnx_path(args.input, args.output, int8=args.int8)
    kind = "int8 " if args.int8 else ""
    print(f"exported the encoders of {done or 'no component'} to {kind}ONNX (onnxruntime backend) -> {args.output}")


def demo(args: argparse.Namespace) -> None:
    import spacy
    from spacy.cli.train import train

    from .convert import conll_to_docs, write_docbin

    corpus = Path(args.corpus)
    for split in ("train", "dev"):
        write_docbin(conll_to_docs(Path(args.assets) / f"{split}.txt"), corpus / f"{split}.spacy")
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
    p.add_argument("--assets", default="assets/conll2003")
    p.add_argument("--corpus", default="corpus/ner-sample")
    p.add_argument("--config", default="configs/ner.cfg")
    p.add_argument("--output", default="training/ner-demo")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--gpu-id", type=int, default=-1)
    p.set_defaults(func=demo)
    p = sub.add_parser("convert-all", help="dataset folder -> corpus/<task>")
    p.add_argument("data_dir")
    p.add_argument("corpus")
    p.add_argument("--limit", type=int, default=0, help="docs per file (0: all)")
    p.set_defaults(func=convert_all)
    p = sub.add_parser("train", help="spacy train configs/<task>.cfg on corpus/<task>")
    p.add_argument("task", choices=sorted(TASK_FILES))
    p.add_argument("--corpus", default="corpus")
    p.add_argument("--config", default=None, help="default: configs/<task>.cfg")
    p.add_argument("--output", required=True)
    p.add_argument("--max-steps", type=int, default=0, help="0: the config's epochs")
    p.add_argument("--batch-size", type=int, default=0, help="batcher size (0: the config's)")
    p.add_argument("--lr", type=float, default=0.0, help="initial learning rate (0: the config's)")
    p.add_argument("--gpu-id", type=int, default=-1)
    p.set_defaults(func=train_task)
    p = sub.add_parser("evaluate", help="score a pipeline on corpus/<task> (test, else dev)")
    p.add_argument("task", choices=sorted(TASK_FILES))
    p.add_argument("model")
    p.add_argument("--corpus", default="corpus")
    p.add_argument("--output", required=True, help="metrics JSON")
    p.add_argument("--displacy-path", default=None, help="NER: write displaCy HTML here")
    p.add_argument("--displacy-limit", type=int, default=25)
    p.set_defaults(func=evaluate_task)
    p = sub.add_parser("distill", help="train a smaller student pipeline against a trained teacher")
    p.add_argument("teacher", help="trained pipeline folder")
    p.add_argument("output", help="folder for model-best and model-last")
    p.add_argument("--corpus", default=None, help="folder with train and dev .spacy or .json (e.g. corpus/ner)")
    p.add_argument("--train", default=None, help=".spacy corpus or SQuAD-format JSON (gold and soft targets)")
    p.add_argument("--unlabelled", default=None, help="plain text, one text per line (soft targets only)")
    p.add_argument("--dev", default=None, help=".spacy corpus or SQuAD-format JSON for model-best")
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--dev-limit", type=int, default=0)
    p.add_argument("--layers", default=None, help="teacher layers to keep, e.g. 0,2,5")
    p.add_argument("--n-layers", type=int, default=None, help="or: how many layers, spread evenly")
    p.add_argument("--encoder", default=None, help="or: a student on another (e.g. narrower) pretrained encoder, HF name or local path; heads start fresh")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-words", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--soft-weight", type=float, default=0.5)
    p.add_argument("--gold-weight", type=float, default=0.5)
    p.add_argument("--hidden-weight", type=float, default=0.0, help="weight of the MSE between student and teacher hidden states (0: off)")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-id", type=int, default=-1)
    p.set_defaults(func=distill_cmd)
    p = sub.add_parser("quantize", help="int8 dynamic quantization of a pipeline's encoders")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=quantize)
    p = sub.add_parser("onnx", help="export a pipeline's encoders to ONNX Runtime (pip install spacy-bertprod[onnx])")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--int8", action="store_true", help="also int8-quantize with onnxruntime's dynamic quantizer")
    p.set_defaults(func=onnx)
    args = parser.parse_args(argv)
    args.func(args)
