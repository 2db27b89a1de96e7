"""Throughput of `bertprod annotate` on one machine: what the engines cost
over a plain `nlp.pipe` loop, split into a fixed start-up and a cost per
document.

The corpus: the CoNLL-2003 test sentences and the SST-2 test sentences,
repeated to each of `--sizes` documents, as one JSONL file per size. The
trained NER pipeline annotates it with a plain `nlp.pipe` loop (the
reference, nothing read or written, the pipeline loaded before the clock
starts), with the local engine at 1 worker (the same command without Ray:
in this process, end to end: loading, reading, JSON output, shard writes)
and with the Ray engine at 1 worker (a local Ray started by the run; end to
end, as a user sees it: reading, Ray's start-up, loading the pipeline in
the actor, JSON output and shard writes). The local engine splits Ray's
overhead in two: what the annotate command costs over a bare loop whatever
the engine (local less plain), and what Ray adds to that (Ray less local).

This VM's speed drifts by several percent between runs of a few minutes, so
the three run interleaved: `--repeats` rounds, each running the three at
every size, their order rotating from round to round. Each round's
overheads (an engine's seconds less the plain loop's, per size) are fitted
with a line over the sizes: its intercept is the engine's fixed start-up,
its slope its extra seconds per document, reported as a share of the plain
loop's seconds per document (the slope of its own times). All are reported
as the median over the rounds with their spread (min-max); Ray's against
the targets: per-document overhead at most 10% of the plain loop, fixed
start-up at most 15 s. Then, unless --skip-other-rows, the local engine and
Ray at 2 workers (spaCy's n_process; two actors) run once each at the
largest size.

Where the time goes: every engine run records the CPU seconds of this
process and of each process it started (Ray's daemons, Ray Data's helper
actors and task workers, the actors; spaCy's workers), by role, sampled
from /proc; the plain loop its own CPU seconds and, apart, its pipeline
load in this process.

    python bench/annotate.py [--model bench/results/conll/model/model-best] [--sizes 5000,40000] [--repeats 3] [--report annotate]
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import spacy

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, read_sst2_test, stat_cpu_seconds, write_report  # noqa: E402

from spacy_bertprod.annotate import Settings, annotate  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLAIN, LOCAL_1, RAY_1 = "plain nlp.pipe", "local engine, 1 worker", "ray engine, 1 worker"
#: each round's runs, by the key a round's record keeps them under
ROUND_RUNS = {PLAIN: "plain", LOCAL_1: "local", RAY_1: "ray"}
#: the engine rows, in the report's order: name -> (engine, workers)
ENGINE_ROWS = {LOCAL_1: ("local", 1), "local engine, 2 workers": ("local", 2), RAY_1: ("ray", 1), "ray engine, 2 workers": ("ray", 2)}
#: Ray at 1 worker against the plain loop: extra seconds per document as a
#: share of the plain loop's, and the fixed start-up in seconds, at most
TARGET_PER_DOC_SHARE, TARGET_FIXED_S = 0.10, 15.0


def corpus_texts(data: Path, n_docs: int) -> List[str]:
    """CoNLL-2003 test sentences and SST-2 test sentences, repeated to n_docs."""
    conll = [doc.text for doc in conll_to_docs(data / "conll2003/test.txt", n_sents=1)]
    sst2 = [doc.text for doc in read_sst2_test(data / "sst2/test.tsv", spacy.blank("en"))]
    texts = [t for t in conll + sst2 if t.strip()]
    return [texts[i % len(texts)] for i in range(n_docs)]


class CPUByProcess:
    """CPU seconds of this process and of every process started while it
    watches (Ray's daemons, workers and actors; spaCy's workers), by role,
    from /proc once a second. A process's last sample counts: up to a second
    of a process that exits during the run (Ray's, at shutdown) is missed."""

    ROLES = (
        ("Ray actors (the pipeline)", lambda cmd: cmd.startswith("ray::MapWorker")),
        ("Ray's daemons", lambda cmd: "/ray/" in cmd or cmd.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))),
        ("Ray Data's helper actors", lambda cmd: cmd.startswith(("ray::_StatsActor", "ray::ActorLocationTracker", "ray::_Autoscaling"))),
        ("Ray's task workers (the reads)", lambda cmd: cmd.startswith("ray::")),
    )

    def __init__(self) -> None:
        self.seen: Dict[str, Tuple[float, str]] = {}
        self.before = set(self.pids())
        self.me = str(os.getpid())
        self.start = self.cpu(self.me)[0]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    @staticmethod
    def pids() -> List[str]:
        return [pid for pid in os.listdir("/proc") if pid.isdigit()]

    def cpu(self, pid: str) -> Tuple[float, str]:
        seconds = stat_cpu_seconds(f"/proc/{pid}/stat")
        with open(f"/proc/{pid}/cmdline") as cmdline:
            cmd = cmdline.read().replace("\0", " ")
        # an exited process (a zombie) has no command line: keep the last one
        return seconds, cmd or self.seen.get(pid, (0.0, ""))[1]

    def sample(self) -> None:
        for pid in self.pids():
            if pid not in self.before or pid == self.me:
                try:
                    self.seen[pid] = self.cpu(pid)
                except OSError:  # it exited
                    pass

    def watch(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()

    def __enter__(self) -> "CPUByProcess":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.sample()

    def by_role(self) -> Dict[str, float]:
        roles = {"this process (driver)": self.seen.get(self.me, (self.start, ""))[0] - self.start}
        for pid, (seconds, cmd) in self.seen.items():
            if pid == self.me:
                continue
            role = next((name for name, match in self.ROLES if match(cmd)), "other processes started by the run")
            roles[role] = roles.get(role, 0.0) + seconds
        return {role: round(seconds, 1) for role, seconds in roles.items() if seconds}


def plain_pipe(model: str, texts: List[str], batch_size: int) -> Dict[str, Any]:
    """The reference: nlp.pipe over the texts in this process (pipeline
    loaded and warmed up before the clock starts; the load is timed apart,
    as each engine run includes one in every worker or actor)."""
    start = time.perf_counter()
    nlp = spacy.load(model)
    load_seconds = time.perf_counter() - start
    list(nlp.pipe(texts[:64], batch_size=batch_size))
    start, cpu = time.perf_counter(), time.process_time()
    words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    run = {"docs": len(texts), "words": words, "seconds": round(seconds, 2), "docs_per_s": round(len(texts) / seconds, 1)}
    return {**run, "cpu_seconds": {"this process": round(cpu, 1)}, "load_seconds": round(load_seconds, 2)}


def engine_run(model: str, corpus: Path, docs: int, out: Path, engine: str, workers: int, args: argparse.Namespace) -> Dict[str, Any]:
    """One end-to-end `annotate` run into an empty folder, with the CPU time
    of every process it started."""
    shutil.rmtree(out, ignore_errors=True)
    settings = Settings(pipeline=model, input_path=str(corpus), output_dir=str(out), engine=engine, workers=workers, batch_size=args.batch_size, shard_size=args.shard_size)
    with CPUByProcess() as cpu:
        start = time.perf_counter()
        summary = annotate(settings)
        seconds = time.perf_counter() - start
    assert summary.docs == docs and summary.rejected == 0, summary
    run = {"docs": summary.docs, "words": summary.words, "seconds": round(seconds, 2), "docs_per_s": round(summary.docs / seconds, 1), "shards": summary.shards_written}
    return {**run, "cpu_seconds": cpu.by_role()}


def spread(values: List[float], digits: int = 3) -> Dict[str, Any]:
    """Median and min-max over the rounds, with every value."""
    return {"median": round(float(np.median(values)), digits), "min": round(min(values), digits), "max": round(max(values), digits), "all": [round(v, digits) for v in values]}


def fit_overhead(pairs: List[Dict[str, Any]], engine: str = "ray", reference: str = "plain") -> Dict[str, float]:
    """One round's runs (one set per size) fitted with lines over the corpus
    size: the engine's overhead (its seconds less the reference's) = fixed
    start-up + per-document overhead x documents; the reference's seconds
    per document is the slope of its own times, and the share is always of
    the plain loop's (the targets' measure)."""
    docs = np.array([pair["docs"] for pair in pairs], dtype=float)
    plain = np.array([pair["plain"]["seconds"] for pair in pairs])
    ref = np.array([pair[reference]["seconds"] for pair in pairs])
    run = np.array([pair[engine]["seconds"] for pair in pairs])
    slope, intercept = np.polyfit(docs, run - ref, 1)
    plain_per_doc = np.polyfit(docs, plain, 1)[0]
    return {"fixed_seconds": float(intercept), "overhead_ms_per_doc": float(1000 * slope), "plain_ms_per_doc": float(1000 * plain_per_doc), "per_doc_share": float(slope / plain_per_doc)}


def rotated(names: List[str], repeat: int) -> List[str]:
    """The round's run order: each run goes first once every len(names) rounds."""
    k = repeat % len(names)
    return names[k:] + names[:k]


#: the fits a round records: name -> (engine, reference)
FITS = {"ray_vs_plain": ("ray", "plain"), "local_vs_plain": ("local", "plain"), "ray_vs_local": ("ray", "local")}


def summarise_fits(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Median and spread over the rounds of every fit; Ray against the
    plain loop also against the targets."""
    out: Dict[str, Any] = {}
    for name in FITS:
        fits = [r["fits"][name] for r in rounds]
        out[name] = {
            "fixed_seconds": spread([f["fixed_seconds"] for f in fits], 1),
            "per_doc_share": spread([f["per_doc_share"] for f in fits]),
            "overhead_ms_per_doc": spread([f["overhead_ms_per_doc"] for f in fits], 2),
            "plain_ms_per_doc": spread([f["plain_ms_per_doc"] for f in fits], 2),
        }
    ray = out["ray_vs_plain"]
    ray["fixed_seconds"].update(target_at_most=TARGET_FIXED_S, met=ray["fixed_seconds"]["median"] <= TARGET_FIXED_S)
    ray["per_doc_share"].update(target_at_most=TARGET_PER_DOC_SHARE, met=ray["per_doc_share"]["median"] <= TARGET_PER_DOC_SHARE)
    return out


def write_corpus(work: Path, data: Path, docs: int) -> Tuple[Path, List[str]]:
    texts = corpus_texts(data, docs)
    corpus = work / f"corpus-{docs}.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf8")
    print(f"{len(texts)} documents ({sum(len(t) for t in texts)} characters) in {corpus}", flush=True)
    return corpus, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/conll/model/model-best"), help="trained bertprod_ner pipeline")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets"), help="folder with conll2003/ and sst2/")
    parser.add_argument("--sizes", default="5000,40000", help="corpus sizes in documents (at least two) for the paired runs; the other rows run at the largest")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of paired runs (plain loop, Ray at 1 worker) at every size")
    parser.add_argument("--skip-other-rows", action="store_true", help="no local engine or Ray at 2 workers runs")
    parser.add_argument("--work", default=str(ROOT / "bench/results/annotate"), help="folder for the corpora and the outputs (git-ignored)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    if args.report:
        model_provenance(Path(args.model))  # before the run, not after it: a report needs the model's record
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if len(set(sizes)) < 2:
        parser.error("--sizes: at least two different corpus sizes, to separate the fixed start-up from the cost per document")
    # the plain loop tokenizes in this process before the local engine forks
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print("machine:", describe(), flush=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpora = {size: write_corpus(work, Path(args.data), size) for size in sizes}
    print(f"batch size {args.batch_size}, shards of {args.shard_size}; {args.repeats} rounds of pairs at {sizes} documents", flush=True)
    rounds = []
    for repeat in range(args.repeats):
        pairs = []
        for size in sizes:
            corpus, texts = corpora[size]
            pair: Dict[str, Any] = {"docs": size, "order": rotated(list(ROUND_RUNS), repeat)}
            for name in pair["order"]:
                if name == PLAIN:
                    pair["plain"] = plain_pipe(args.model, texts, args.batch_size)
                else:
                    engine, workers = ENGINE_ROWS[name]
                    pair[ROUND_RUNS[name]] = engine_run(args.model, corpus, size, work / f"out-{engine}-{workers}", engine, workers, args)
            pair["overhead_seconds"] = round(pair["ray"]["seconds"] - pair["plain"]["seconds"], 2)
            pair["local_overhead_seconds"] = round(pair["local"]["seconds"] - pair["plain"]["seconds"], 2)
            seconds = ", ".join(f"{name} {pair[key]['seconds']:.1f} s" for name, key in ROUND_RUNS.items())
            print(f"round {repeat + 1}, {size} docs: {seconds}; Ray's overhead {pair['overhead_seconds']:+.1f} s, the local engine's {pair['local_overhead_seconds']:+.1f} s", flush=True)
            pairs.append(pair)
        fits = {name: fit_overhead(pairs, engine, reference) for name, (engine, reference) in FITS.items()}
        rounds.append({"round": repeat + 1, "pairs": pairs, "fit": fits["ray_vs_plain"], "fits": fits})
        for name, fit in fits.items():
            per_doc = f"{fit['overhead_ms_per_doc']:.2f} ms = {fit['per_doc_share']:.1%} of the plain loop's {fit['plain_ms_per_doc']:.2f} ms"
            print(f"round {repeat + 1} fit {name}: fixed {fit['fixed_seconds']:.1f} s, per document {per_doc}", flush=True)
    summary = summarise_fits(rounds)
    results = summary["ray_vs_plain"]
    fixed, share = results["fixed_seconds"], results["per_doc_share"]
    print(
        f"Ray at 1 worker over the plain loop, median (min-max) of {args.repeats} rounds: fixed start-up {fixed['median']:.1f} s ({fixed['min']:.1f}-{fixed['max']:.1f}), "
        f"target <= {TARGET_FIXED_S:.0f} s: {'met' if fixed['met'] else 'MISSED'}; "
        f"per document {share['median']:.1%} of the plain loop ({share['min']:.1%}-{share['max']:.1%}), target <= {TARGET_PER_DOC_SHARE:.0%}: {'met' if share['met'] else 'MISSED'}",
        flush=True,
    )
    for name in ("local_vs_plain", "ray_vs_local"):
        fixed_part, share_part = summary[name]["fixed_seconds"], summary[name]["per_doc_share"]
        print(f"  {name}: fixed {fixed_part['median']:.1f} s, per document {share_part['median']:.1%} ({share_part['min']:.1%}-{share_part['max']:.1%})", flush=True)
    figures: Dict[str, Any] = {
        "sizes": sizes,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
        "repeats": args.repeats,
        "rounds": rounds,
        "ray_1_worker_vs_plain": results,
        "local_1_worker_vs_plain": summary["local_vs_plain"],
        "ray_vs_local_1_worker": summary["ray_vs_local"],
    }
    if not args.skip_other_rows:
        corpus, _texts = corpora[sizes[-1]]
        others = {}
        for name, (engine, workers) in ENGINE_ROWS.items():
            if name in ROUND_RUNS:
                continue
            others[name] = engine_run(args.model, corpus, sizes[-1], work / f"out-{engine}-{workers}", engine, workers, args)
            print(f"{name:<24} {others[name]}", flush=True)
        figures["other_rows"] = others
    if args.report:
        note = "engine runs are end to end: reading, pipeline loading in every worker/actor, Ray start-up, JSON and shard writes; "
        note += f"the plain loop, the local engine and Ray at 1 worker ran in {args.repeats} rounds, interleaved (order rotating), at {sizes} documents, fitted per round"
        write_report(args.report, figures, note=note, models={"bertprod_ner": args.model})


if __name__ == "__main__":
    main()
