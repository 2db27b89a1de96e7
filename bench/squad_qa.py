"""SQuAD v1.1 benchmark for bertprod_qa.

1. Trains bertprod_qa with `spacy train configs/qa.cfg` on the embedded MiniLM
   with ../shared/datasets/squad/train-subset-v1.1.json (11,877 questions).
2. Answers the full official dev set (10,570 questions) with `nlp.pipe`
   (questions in doc._.questions, one doc per context) and reports the
   official exact match / F1 and questions per second (CPU, --threads).
3. In the same run, exports the trained weights to a Hugging Face
   `BertForQuestionAnswering` and runs the `transformers` question-answering
   pipeline (transformers < 5.3) with the same settings over the same
   questions: its EM/F1, its speed, and how often both give the same answer
   (same character offsets).

    python bench/squad_qa.py [--train-limit N] [--epochs E] [--dev-limit N] [--skip-train]
"""

import argparse
import sys
import time
from pathlib import Path

import spacy
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import TRAIN_LOG, describe, model_provenance, record_made_by, save_result  # noqa: E402

from spacy_bertprod.compression.hf_export import qa_to_hf  # noqa: E402
from spacy_bertprod.pipeline.squad_metrics import squad_scores  # noqa: E402
from spacy_bertprod.training.squad import read_squad  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: contexts (with all their questions) each system answers before it is timed
WARM_UP_CONTEXTS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/squad"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/squad"))
    parser.add_argument("--config", default=str(ROOT / "configs/qa.cfg"))
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--dev-limit", type=int, default=0, help="dev questions to answer (0: all 10,570)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="questions per batch for both systems")
    parser.add_argument("--max-answer-len", type=int, default=30)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--train-only", action="store_true", help="stop after training")
    parser.add_argument("--seed", type=int, default=0, help="the config's system.seed (training shuffling and initialization)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    if args.report and args.skip_train:
        model_provenance(Path(args.out) / "model/model-best")  # before the run: a report needs the model's record
    torch.set_num_threads(args.threads)
    out, data = Path(args.out), Path(args.data)
    print("machine:", describe(), flush=True)
    train_path, dev_path = data / "train-subset-v1.1.json", data / "dev-v1.1.json"

    model_dir = out / "model"
    if not args.skip_train:
        from spacy.cli.train import train
        from spacy.training.batchers import minibatch_by_padded_size

        nlp0 = spacy.blank("en")
        rows = read_squad(train_path)[: args.train_limit or None]
        lengths = list(nlp0.tokenizer.pipe(r["context"] for r in rows))
        per_epoch = sum(1 for _ in minibatch_by_padded_size(lengths, size=2000, buffer=64, discard_oversize=False, get_length=len))
        steps = args.epochs * per_epoch
        print(f"train: {len(rows)} questions, {per_epoch} batches per epoch, {steps} steps", flush=True)
        overrides = {
            "paths.train": str(train_path),
            "paths.dev": str(dev_path),
            "paths.dev_limit": 500,
            "corpora.train.limit": args.train_limit,
            "components.bertprod_qa.max_answer_len": args.max_answer_len,
            "training.max_epochs": args.epochs,
            "training.eval_frequency": per_epoch // 2,
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
        print(f"training time: {time.perf_counter() - start:.0f} s ({args.epochs} epochs)", flush=True)
    if args.train_only:
        return

    last = model_dir / "model-last"
    nlp = spacy.load(last if last.exists() else model_dir / "model-best")
    dev = read_squad(dev_path)[: args.dev_limit or None]
    contexts = {}
    for row in dev:
        contexts.setdefault(row["context"], []).append(row)

    def docs_from(groups):
        # from the raw strings: spaCy's tokenization is timed, as the HF
        # pipeline's own tokenization is inside its timer
        for context, group in groups:
            doc = nlp.make_doc(context)
            doc._.questions = [r["question"] for r in group]
            yield doc

    groups = list(contexts.items())
    warm = groups[:WARM_UP_CONTEXTS]  # the same warm-up for both systems
    list(nlp.pipe(docs_from(warm), batch_size=max(args.batch_size // 5, 1)))
    start = time.perf_counter()
    answered = list(nlp.pipe(docs_from(groups), batch_size=max(args.batch_size // 5, 1)))
    ours_s = time.perf_counter() - start
    ours = {}
    for doc, group in zip(answered, contexts.values()):
        best = {}
        for span in doc.spans["bertprod_qa"]:
            best.setdefault(span._.bertprod_question, span)
        for r in group:
            span = best.get(r["question"])
            ours[r["id"]] = (span.text, span._.bertprod_answer_chars) if span is not None else ("", None)
    golds = [[a[2] for a in r["answers"]] for r in dev]
    em, f1 = squad_scores([ours[r["id"]][0] for r in dev], golds)
    print(f"\nDEV ({dev_path.name}, {len(dev)} questions, {len(contexts)} contexts):")
    print(f"  bertprod_qa           EM {em * 100:.2f}  F1 {f1 * 100:.2f}   {len(dev) / ours_s:7.1f} questions/s ({ours_s:.0f} s)")
    result = {"machine": describe(), "questions": len(dev), "bertprod": {"em": em, "f1": f1, "questions_per_second": len(dev) / ours_s}}

    if not args.skip_hf:
        from transformers import pipeline

        hf_dir = qa_to_hf(nlp, out / "hf-export")
        enc_cfg = nlp.get_pipe("bertprod_qa").model.get_ref("encoder").attrs
        model_cfg = nlp.get_pipe("bertprod_qa").model.attrs
        hf = pipeline("question-answering", model=str(hf_dir), tokenizer=str(hf_dir), device=-1)
        kwargs = dict(top_k=1, max_answer_len=args.max_answer_len, max_seq_len=enc_cfg["window"], doc_stride=model_cfg["doc_stride"])
        kwargs.update(max_question_len=model_cfg["max_question_len"], batch_size=args.batch_size)
        warm_rows = [r for _, group in warm for r in group]
        hf(question=[r["question"] for r in warm_rows], context=[r["context"] for r in warm_rows], **kwargs)
        start = time.perf_counter()
        hf_out = hf(question=[r["question"] for r in dev], context=[r["context"] for r in dev], **kwargs)
        hf_s = time.perf_counter() - start
        hf_out = hf_out if isinstance(hf_out, list) else [hf_out]
        hf_em, hf_f1 = squad_scores([o["answer"] for o in hf_out], golds)
        same = sum(ours[r["id"]][1] == (o["start"], o["end"]) for r, o in zip(dev, hf_out)) / len(dev)
        same_text = sum(ours[r["id"]][0].strip() == o["answer"].strip() for r, o in zip(dev, hf_out)) / len(dev)
        print(f"  HF QA pipeline        EM {hf_em * 100:.2f}  F1 {hf_f1 * 100:.2f}   {len(dev) / hf_s:7.1f} questions/s ({hf_s:.0f} s)  [same weights, batch_size {args.batch_size}]")
        print(f"  same answer offsets as HF: {same * 100:.2f}%  (same text after snapping to spaCy tokens: {same_text * 100:.2f}%)")
        print(f"  speed ratio bertprod / HF: {hf_s / ours_s:.2f}x")
        result["hf_pipeline"] = {"em": hf_em, "f1": hf_f1, "questions_per_second": len(dev) / hf_s, "same_offsets": same, "same_text": same_text}
    save_result(out, result, args.report, models={"bertprod_qa": last if last.exists() else model_dir / "model-best"})


if __name__ == "__main__":
    main()
