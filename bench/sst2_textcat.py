"""SST-2 benchmark for bertprod_textcat.

1. Trains bertprod_textcat (exclusive classes) with `spacy train
   configs/textcat.cfg` on ../shared/datasets/sst2/glue/train.tsv (full, or
   --train-limit sentences) with the embedded MiniLM.
2. Picks model-best on GLUE dev (872 sentences) during training, and reports
   accuracy and macro F1 on the labelled SST-2 test split (1,821 sentences,
   ../shared/datasets/sst2/test.tsv, PTB brackets `-lrb-`/`-rrb-` mapped to the
   `(`/`)` GLUE's train and dev use), with dev beside it; spaCy's scorer.
3. Times docs/s and words/s on the test set (CPU, --threads) in the same run as
   spacy-transformers `transformer` + `textcat` with the same encoder.
4. Times a pipeline where NER and textcat share one encoder (spaCy `tok2vec` +
   listeners, configs/ner_textcat.cfg) against NER alone and against NER and
   textcat with an encoder each, on CoNLL-2003 test documents.

    python bench/sst2_textcat.py [--train-limit N] [--epochs E] [--seed S] [--skip-train]
"""

import argparse
import sys
import time
from pathlib import Path

import spacy
import torch
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).parent))
from common import TRAIN_LOG, built_in_run, describe, model_provenance, read_sst2_test, record_made_by, save_result, spacy_transformers_pipeline, time_pipe  # noqa: E402

from spacy_bertprod.layers.hf_loader import embedded_model_path  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs, sst2_to_docs, write_docbin  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def scores_of(nlp, docs, batch_size):
    """Accuracy and spaCy's textcat scores of `nlp` on gold `docs`."""
    scores = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in docs], batch_size=batch_size)
    return accuracy(nlp, docs, batch_size), scores


def accuracy(nlp, docs, batch_size):
    correct = 0
    for pred, gold in zip(nlp.pipe([d.text for d in docs], batch_size=batch_size), docs):
        correct += max(pred.cats, key=pred.cats.get) == max(gold.cats, key=gold.cats.get)
    return correct / len(docs)


def pipeline_from_config(path, examples):
    config = spacy.util.load_config(path)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize(lambda: examples(nlp))
    return nlp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/sst2"))
    parser.add_argument("--config", default=str(ROOT / "configs/textcat.cfg"))
    parser.add_argument("--train-limit", type=int, default=0, help="train sentences (0: all 67,349)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0, help="the config's system.seed (training shuffling and initialization)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="scores only, no timing")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    if args.report and args.skip_train:
        model_provenance(Path(args.out) / "model/model-best")  # before the run: a report needs the model's record
    torch.set_num_threads(args.threads)
    out, data = Path(args.out), Path(args.data)
    print("machine:", describe(), flush=True)
    blank = spacy.blank("en")
    train_docs = sst2_to_docs(data / "sst2/glue/train.tsv", blank, limit=args.train_limit)
    dev_docs = sst2_to_docs(data / "sst2/glue/dev.tsv", blank)
    test_docs = read_sst2_test(data / "sst2/test.tsv", blank)
    write_docbin(train_docs, out / "corpus/train.spacy")
    write_docbin(dev_docs, out / "corpus/dev.spacy")
    print(f"train {len(train_docs)} sentences, dev {len(dev_docs)} sentences (model selection), test {len(test_docs)} sentences (reported)", flush=True)

    model_dir = out / "model"
    if not args.skip_train:
        from spacy.cli.train import train
        from spacy.training.batchers import minibatch_by_padded_size

        # size the learning-rate schedule to the batches the batcher really makes
        per_epoch = sum(1 for _ in minibatch_by_padded_size(train_docs, size=1000, buffer=64, discard_oversize=False, get_length=len))
        steps = args.epochs * per_epoch
        print(f"{per_epoch} batches per epoch, {steps} steps", flush=True)
        overrides = {
            "paths.train": str(out / "corpus/train.spacy"),
            "paths.dev": str(out / "corpus/dev.spacy"),
            # a step count, so the last step is always evaluated; four evaluations an epoch
            "training.max_epochs": 0,
            "training.max_steps": steps,
            "training.eval_frequency": max(per_epoch // 4, 1),
            "training.optimizer.learn_rate.total_steps": steps,
            "training.optimizer.learn_rate.warmup_steps": max(steps // 10, 1),
            "training.optimizer.learn_rate.initial_rate": args.lr,
            "system.seed": args.seed,
            "training.logger.output_file": str(model_dir / TRAIN_LOG),
        }
        (model_dir / TRAIN_LOG).unlink(missing_ok=True)  # spaCy appends to it
        start = time.perf_counter()
        train(args.config, model_dir, overrides=overrides, use_gpu=args.gpu_id)
        record_made_by(model_dir, config=args.config, overrides=overrides)
        print(f"training time: {time.perf_counter() - start:.0f} s ({args.epochs} epochs, {len(train_docs)} sentences)", flush=True)

    best = model_dir / "model-best"
    best = best if best.exists() else model_dir / "model-last"
    nlp = spacy.load(best)
    acc, scores = scores_of(nlp, test_docs, args.batch_size)
    dev_acc, dev_scores = scores_of(nlp, dev_docs, args.batch_size)
    print(f"\nTEST (SST-2 test split, {len(test_docs)} sentences; model-best picked on dev), spaCy scorer:")
    print(f"  accuracy {acc * 100:.2f}  macro F1 {scores['cats_macro_f'] * 100:.2f}  macro AUC {scores['cats_macro_auc'] * 100:.2f}")
    for label, prf in sorted(scores["cats_f_per_type"].items()):
        print(f"  {label:<9} P {prf['p'] * 100:.2f}  R {prf['r'] * 100:.2f}  F {prf['f'] * 100:.2f}")
    print(f"DEV (GLUE SST-2 dev, {len(dev_docs)} sentences, used for model selection): accuracy {dev_acc * 100:.2f}  macro F1 {dev_scores['cats_macro_f'] * 100:.2f}")
    result = {
        "machine": describe(),
        "train_sentences": len(train_docs),
        "test_accuracy": acc,
        "test_macro_f": scores["cats_macro_f"],
        "test_macro_auc": scores["cats_macro_auc"],
        "test_per_label": {label: {k: prf[k] for k in "prf"} for label, prf in scores["cats_f_per_type"].items()},
        "dev_accuracy": dev_acc,
        "dev_macro_f": dev_scores["cats_macro_f"],
    }
    if args.skip_speed:
        save_result(out, result, args.report, models={"bertprod_textcat": best})
        return

    texts = [d.text for d in test_docs]
    n_words = sum(len(d) for d in test_docs)
    name = str(embedded_model_path())
    ours = time_pipe(nlp, texts, args.batch_size, args.repeats)
    st = spacy_transformers_pipeline(name, ["textcat"], lambda n: [Example(n.make_doc(d.text), d) for d in train_docs[:50]])
    theirs = time_pipe(st, texts, args.batch_size, args.repeats)
    print(f"\nTHROUGHPUT on SST-2 test ({len(texts)} docs, {n_words} words, nlp.pipe batch {args.batch_size}, CPU, {torch.get_num_threads()} threads, best of {args.repeats}):")
    print(f"  bertprod_textcat                       {len(texts) / ours:8.1f} docs/s {n_words / ours:9.0f} words/s")
    print(f"  spacy-transformers transformer+textcat {len(texts) / theirs:8.1f} docs/s {n_words / theirs:9.0f} words/s")
    print(f"  ratio bertprod / spacy-transformers: {theirs / ours:.2f}x")

    # Shared encoder: timing only (heads initialized, not trained).
    conll = conll_to_docs(data / "conll2003/test.txt")
    both = []
    for i, d in enumerate(conll[:20]):
        gold = {"entities": [(e.start_char, e.end_char, e.label_) for e in d.ents], "cats": {"POSITIVE": float(i % 2), "NEGATIVE": float(1 - i % 2)}}
        both.append(Example.from_dict(blank.make_doc(d.text), gold))

    def remake(n):
        return [Example(n.make_doc(eg.reference.text), eg.reference) for eg in both]

    ner_alone = pipeline_from_config(ROOT / "configs/ner.cfg", remake)
    shared = pipeline_from_config(ROOT / "configs/ner_textcat.cfg", remake)
    separate = pipeline_from_config(ROOT / "configs/ner.cfg", remake)
    separate.add_pipe("bertprod_textcat")
    separate.get_pipe("bertprod_textcat").initialize(lambda: remake(separate), nlp=separate)
    conll_texts = [d.text for d in conll]
    conll_words = sum(len(d) for d in conll)
    print(f"\nSHARED ENCODER on CoNLL-2003 test ({len(conll_texts)} docs, {conll_words} words) and SST-2 test ({len(texts)} docs); seconds, best of {args.repeats}:")
    timings = {}
    for label, pipe in [("NER alone", ner_alone), ("NER + textcat, shared encoder", shared), ("NER + textcat, an encoder each", separate)]:
        timings[label] = (time_pipe(pipe, conll_texts, args.batch_size, args.repeats), time_pipe(pipe, texts, args.batch_size, args.repeats))
    base = timings["NER alone"]
    for label, (t_conll, t_sst) in timings.items():
        print(f"  {label:<32} CoNLL {t_conll:6.2f} s ({t_conll / base[0]:.2f}x)   SST-2 {t_sst:6.2f} s ({t_sst / base[1]:.2f}x)")
    result.update(
        {
            "docs_per_second": {"bertprod_textcat": len(texts) / ours, "spacy_transformers": len(texts) / theirs},
            "words_per_second": {"bertprod_textcat": n_words / ours, "spacy_transformers": n_words / theirs},
            "ratio": theirs / ours,
            "shared_encoder_seconds": {label: {"conll_test": t_conll, "sst2_test": t_sst} for label, (t_conll, t_sst) in timings.items()},
        }
    )
    models = {
        "bertprod_textcat": best,
        "spacy-transformers baseline": built_in_run("spacy-transformers transformer + textcat on the embedded MiniLM, initialised on 50 train sentences, untrained (speed only)"),
        "shared-encoder pipelines": built_in_run("configs/ner.cfg, configs/ner_textcat.cfg and ner.cfg + bertprod_textcat, heads initialised on 20 CoNLL test documents, untrained (speed only)"),
    }
    save_result(out, result, args.report, models=models)


if __name__ == "__main__":
    main()
