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
from typing import Any, Callable, Dict, List, Optional, Tuple

import spacy
import torch
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).parent))
from common import TRAIN_LOG, built_in_run, describe, model_provenance, record_made_by, save_result, spacy_transformers_pipeline, time_pipe, write_report  # noqa: E402

from spacy_bertprod.layers.hf_loader import embedded_model_path  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs, write_docbin  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_sets(sets: list) -> dict:
    """--set KEY=VALUE pairs as spaCy config overrides (VALUE as JSON when it parses)."""
    import json

    overrides = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def choose_on_dev(folders: List[Path], dev_score: Optional[Callable[[Path], float]] = None) -> Tuple[Path, List[Dict[str, Any]]]:
    """The candidate of highest dev F and, for the report, every candidate's
    record: the command and commit that trained it, its config overrides, the
    step of model-best and its dev F. Nothing here reads the test set.

    Without `dev_score` the dev F is the one spaCy logged for model-best; with
    it, every model-best is scored again by `dev_score` (one measure for all:
    candidates trained on different tokenizations log their dev F on
    different tokens) and the logged one is kept beside it."""
    records = []
    for folder in folders:
        made = model_provenance(folder / "model-best")
        if made.get("best_dev_score") is None:
            raise SystemExit(f"{folder}: no training log with a dev score beside model-best; retrain it with bench/conll_ner.py")
        records.append(
            {
                "name": folder.parent.name if folder.name == "model" else folder.name,
                "path": str(folder / "model-best"),
                "command": made["command"],
                "git_commit": made.get("git_commit"),
                "overrides": made.get("overrides", {}),
                "best_step": made["best_step"],
                "dev_ents_f": made["best_dev_score"],
            }
        )
        if dev_score is not None:
            records[-1]["dev_ents_f_logged"] = made["best_dev_score"]
            records[-1]["dev_ents_f"] = dev_score(folder / "model-best")
    best = choose_among(records)
    return Path(best["path"]), records


def earlier_candidates(report: Path, names: List[str]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The candidate records of an earlier report (its `figures.candidates`)
    that are not trained again here (by name), each marked with the report
    it was scored in: a candidate tried once stays in the list of every
    later report although its folder may be gone (the test set is never
    scored for it again). Also the report itself."""
    earlier = json.loads(report.read_text(encoding="utf8"))
    scored_in = {"file": str(report), "command": earlier["command"], "git_commit": earlier["git_commit"], "date": earlier["date"]}
    records = []
    for record in earlier["figures"].get("candidates", []):
        if record["name"] in names:
            continue
        record = {key: value for key, value in record.items() if key != "chosen"}
        records.append({**record, "scored_in": record.get("scored_in", scored_in)})
    return records, earlier


def choose_among(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The record of highest dev F; marks every record `chosen` or not."""
    best = max(records, key=lambda r: r["dev_ents_f"])
    for record in records:
        record["chosen"] = record is best
        print(f"candidate {record['name']:<24} dev F {record['dev_ents_f'] * 100:.2f} (step {record['best_step']}){'  <- chosen on dev' if record['chosen'] else ''}", flush=True)
    return best


#: the figures of the chosen candidate's own run: carried with it when the
#: choice stays on a candidate an earlier report scored
CHOSEN_FIGURES = ("machine", "seed", "test_scores", "test_scores_gold_tokens", "dev_f", "dev_f_gold_tokens", "words_per_second", "ratio")


def text_examples(nlp, docs: List[Any]) -> List[Example]:
    """Examples whose input is the pipeline's own tokenization of the text, as
    a user runs it (the test figure's kind)."""
    return [Example(nlp.make_doc(d.text), d) for d in docs]


def gold_token_examples(nlp, docs: List[Any]) -> List[Example]:
    """Examples whose input is the gold tokens, not spaCy's tokenization of the
    text: how CoNLL-2003 figures are published (and what `spacy train` scores
    on dev for this corpus, whose docs do not record spaces)."""
    from spacy.tokens import Doc

    return [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in docs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/conll"))
    parser.add_argument("--config", default=str(ROOT / "configs/ner.cfg"))
    parser.add_argument("--train-limit", type=int, default=0, help="train documents to use (0: all)")
    parser.add_argument("--epochs", type=int, default=8, help="training length in epochs (run as epochs x batches-per-epoch steps)")
    parser.add_argument("--batch-words", type=int, default=1000, help="padded words per training batch")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--skip-train", action="store_true", help="reuse the model in --out")
    parser.add_argument("--skip-speed", action="store_true", help="scores only, no throughput comparison")
    parser.add_argument("--seed", type=int, default=0, help="the config's system.seed (training shuffling and initialization)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a spaCy config override for this candidate (repeatable), (VALUE as JSON, else a string)")
    parser.add_argument(
        "--tokenization",
        choices=("gold", "spacy"),
        default="gold",
        help="tokens the model trains (and spacy train scores dev) on: the file's own, or spaCy's tokenization of the text, as at inference (entities aligned by character offsets)",
    )
    parser.add_argument("--dev-only", action="store_true", help="train and score dev only (a candidate): the test set is not scored")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=[],
        metavar="DIR",
        help=(
            "training folders of candidates (each with model-best and its record): each model-best is scored on dev with spaCy's tokenizer "
            "(one measure for all), the highest is scored on test, the report lists them all (implies --skip-train)"
        ),
    )
    parser.add_argument(
        "--earlier-report",
        default="",
        metavar="FILE",
        help=(
            "with --candidates: an earlier report (bench/reported/conll_ner.json) whose candidates, but those trained again here, join the choice "
            "with the dev F it scored them at; if one of them stays chosen, the new report carries its test figures from that report, "
            "which scored the test set for it"
        ),
    )
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    if args.earlier_report and not args.candidates:
        parser.error("--earlier-report needs --candidates: it adds an earlier report's candidates to theirs")
    args.skip_train = args.skip_train or bool(args.candidates)
    if args.report and args.skip_train and not args.candidates:
        model_provenance(Path(args.out) / "model/model-best")  # before the run: a report needs the model's record
    torch.set_num_threads(args.threads)
    if args.gpu_id >= 0:
        from thinc.api import require_gpu

        require_gpu(args.gpu_id)
    out = Path(args.out)
    data = Path(args.data)
    print("machine:", describe(), flush=True)

    corpus = out / "corpus"
    splits = {}
    for split, fname in (("train", "train.txt"), ("dev", "dev.txt"), ("test", "test.txt")):
        docs = conll_to_docs(data / fname, known_spaces=args.tokenization == "spacy")
        if split == "train" and args.train_limit:
            docs = docs[: args.train_limit]
        splits[split] = docs
        write_docbin(docs, corpus / f"{split}.spacy")
        print(f"{split}: {len(docs)} documents, {sum(len(d) for d in docs)} tokens", flush=True)

    def dev_f_on_spacy_tokens(path: Path) -> float:
        """The dev F of the test figure's kind: the pipeline on its tokenization of the text."""
        candidate = spacy.load(path)
        scored = candidate.evaluate(text_examples(candidate, splits["dev"]), batch_size=args.batch_size)["ents_f"]
        print(f"  {path}: dev F on spaCy's tokens {scored * 100:.2f}", flush=True)
        return scored

    chosen, candidates = choose_on_dev([Path(c) for c in args.candidates], dev_score=dev_f_on_spacy_tokens) if args.candidates else (None, [])
    if args.earlier_report:
        earlier, report = earlier_candidates(Path(args.earlier_report), [c["name"] for c in candidates])
        candidates = earlier + candidates
        best = choose_among(candidates)
        if "scored_in" in best:
            # chosen before and still chosen: its test set was scored once, in that run
            result = {key: report["figures"][key] for key in CHOSEN_FIGURES if key in report["figures"]}
            result.update(candidates=candidates, chosen_figures_from=best["scored_in"])
            where = f"{args.earlier_report} (commit {best['scored_in']['git_commit'][:12]})"
            print(f"the chosen candidate {best['name']} was scored in {where}: its figures are carried, the test set is not scored again", flush=True)
            if args.report:
                write_report(args.report, result, models=report["models"])
            return
        chosen = Path(best["path"])
    model_dir = out / "model"
    if not args.skip_train:
        from spacy.cli.train import train
        from spacy.training.batchers import minibatch_by_padded_size

        # size the learning-rate schedule to the batches the batcher really makes
        per_epoch = sum(1 for _ in minibatch_by_padded_size(splits["train"], size=args.batch_words, buffer=64, discard_oversize=False, get_length=len))
        steps = args.epochs * per_epoch
        print(f"{per_epoch} batches per epoch, {steps} steps", flush=True)
        overrides = {
            "training.batcher.size": args.batch_words,
            "training.optimizer.learn_rate.initial_rate": args.lr,
            "training.eval_frequency": per_epoch,
            "paths.train": str(corpus / "train.spacy"),
            "paths.dev": str(corpus / "dev.spacy"),
            # a step count, not an epoch count: spaCy's shuffled epochs come out a few
            # batches off the count above, and the last evaluation must still happen
            "training.max_epochs": 0,
            "training.max_steps": steps,
            "training.optimizer.learn_rate.total_steps": steps,
            "system.seed": args.seed,
            "training.logger.output_file": str(model_dir / TRAIN_LOG),
        }
        overrides.update(parse_sets(args.set))
        (model_dir / TRAIN_LOG).unlink(missing_ok=True)  # spaCy appends to it
        start = time.perf_counter()
        train(args.config, model_dir, overrides=overrides, use_gpu=args.gpu_id)
        print(f"training time: {time.perf_counter() - start:.0f} s ({args.epochs} epochs)", flush=True)
        record_made_by(model_dir, config=args.config, overrides=overrides)

    best = model_dir / "model-best"
    best = best if best.exists() else model_dir / "model-last"
    if chosen is not None:
        best = chosen
    nlp = spacy.load(best)
    if args.dev_only:
        dev_scores = nlp.evaluate(text_examples(nlp, splits["dev"]), batch_size=args.batch_size)
        print(f"DEV (CoNLL-2003 testa, model selection only; test not scored): F {dev_scores['ents_f'] * 100:.2f}")
        return
    test_docs = splits["test"]
    examples = text_examples(nlp, test_docs)
    scores = nlp.evaluate(examples, batch_size=args.batch_size)
    print(f"\nTEST (CoNLL-2003 testb, {len(test_docs)} documents) entity scores, spaCy scorer:")
    print(f"  overall  P {scores['ents_p'] * 100:.2f}  R {scores['ents_r'] * 100:.2f}  F {scores['ents_f'] * 100:.2f}")
    for label, prf in sorted(scores["ents_per_type"].items()):
        print(f"  {label:<8} P {prf['p'] * 100:.2f}  R {prf['r'] * 100:.2f}  F {prf['f'] * 100:.2f}")

    # the published CoNLL figures tag the gold tokens; spaCy's tokenizer splits
    # some of them ("1996-08-30", "all-rounder"), and a boundary it moves is an error above
    gold_scores = nlp.evaluate(gold_token_examples(nlp, test_docs), batch_size=args.batch_size)
    print(f"  on the gold tokens (as published CoNLL figures): P {gold_scores['ents_p'] * 100:.2f}  R {gold_scores['ents_r'] * 100:.2f}  F {gold_scores['ents_f'] * 100:.2f}")
    dev_scores = nlp.evaluate(text_examples(nlp, splits["dev"]), batch_size=args.batch_size)
    dev_gold = nlp.evaluate(gold_token_examples(nlp, splits["dev"]), batch_size=args.batch_size)
    print(f"DEV (CoNLL-2003 testa, used for model selection): F {dev_scores['ents_f'] * 100:.2f}, on the gold tokens {dev_gold['ents_f'] * 100:.2f}")
    kept = ("ents_p", "ents_r", "ents_f", "ents_per_type")
    result = {
        "machine": describe(),
        "seed": args.seed,
        "test_scores": {k: scores[k] for k in kept},
        "test_scores_gold_tokens": {k: gold_scores[k] for k in kept},
        "dev_f": dev_scores["ents_f"],
        "dev_f_gold_tokens": dev_gold["ents_f"],
    }
    if candidates:
        result["candidates"] = candidates
    if args.skip_speed:
        save_result(out, result, args.report, models={"bertprod_ner": best})
        return
    device = "GPU" if args.gpu_id >= 0 else "CPU"
    texts = [d.text for d in test_docs]
    n_words = sum(len(d) for d in test_docs)
    ours = time_pipe(nlp, texts, args.batch_size, args.repeats)

    st_nlp = spacy_transformers_pipeline(
        str(embedded_model_path()),
        ["ner"],
        lambda nlp: text_examples(nlp, splits["train"][:50]),
    )
    theirs = time_pipe(st_nlp, texts, args.batch_size, args.repeats)

    print(f"\nTHROUGHPUT on the test set ({n_words} words, nlp.pipe batch {args.batch_size}, {device}, {torch.get_num_threads()} threads, best of {args.repeats}):")
    print(f"  bertprod_ner                      {n_words / ours:10.0f} words/s  ({ours:.1f} s)")
    print(f"  spacy-transformers transformer+ner {n_words / theirs:9.0f} words/s  ({theirs:.1f} s)")
    print(f"  ratio bertprod / spacy-transformers: {theirs / ours:.2f}x")
    result["words_per_second"] = {"bertprod_ner": n_words / ours, "spacy_transformers": n_words / theirs}
    result["ratio"] = theirs / ours
    baseline = built_in_run("spacy-transformers transformer + ner on the embedded MiniLM, initialised on 50 train documents, untrained (speed only)")
    save_result(out, result, args.report, models={"bertprod_ner": best, "spacy-transformers baseline": baseline})


if __name__ == "__main__":
    main()
