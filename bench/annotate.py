"""Throughput of `bertprod annotate` on one machine: what the engines cost
over a plain `nlp.pipe` loop.

The corpus: the CoNLL-2003 test sentences and the SST-2 test sentences,
repeated to `--docs` documents, as one JSONL file. The trained NER pipeline
annotates it five ways, one after another in this run: a plain `nlp.pipe`
loop (the reference, nothing read or written), the local engine with 1 and 2
workers (spaCy's n_process) and the Ray engine with 1 and 2 actors (a local
Ray started by each run, its CPUs shared out over the actors). Each engine
run is end to end, as a user sees it: reading, loading the pipeline (in each
worker or actor), Ray's start-up, JSON output and shard writes. Ray's
overhead is its time over the plain loop's at 1 worker.

This VM's speed drifts by several percent between runs of a few minutes, as
much as the overhead to be measured, so the two runs that make that ratio
(the plain loop and Ray at 1 worker) run `--repeats` times each, taking
turns, and each row's seconds are the median of its runs (all are kept).

Where the time goes: every run records the CPU seconds of this process and
of each process it started (Ray's daemons, Ray Data's helper actors and task
workers, the actors; spaCy's workers), by role, sampled from /proc; the
plain loop its own CPU seconds and, apart, its pipeline load in this
process. A last Ray run over the first shard only, nearly all start-up,
gives Ray's fixed cost: its seconds less the plain loop's time for that
shard.

    python bench/annotate.py [--model bench/results/conll/model/model-best] [--docs 20000] [--repeats 3] [--report annotate]
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

import spacy

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, read_sst2_test, stat_cpu_seconds, write_report  # noqa: E402

from spacy_bertprod.annotate import Settings, annotate  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLAIN, RAY_1 = "plain nlp.pipe", "ray engine, 1 worker"
#: the engine rows, in the report's order: name -> (engine, workers)
ENGINE_ROWS = {"local engine, 1 worker": ("local", 1), "local engine, 2 workers": ("local", 2), RAY_1: ("ray", 1), "ray engine, 2 workers": ("ray", 2)}


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


def median_run(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One row: the run of median seconds (the lower middle of an even
    count), with every run's seconds and CPU seconds beside it."""
    middle = sorted(runs, key=lambda run: run["seconds"])[(len(runs) - 1) // 2]
    row = dict(middle)
    if len(runs) > 1:
        row["all_seconds"] = [run["seconds"] for run in runs]
        row["all_cpu_seconds"] = [run["cpu_seconds"] for run in runs]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/conll/model/model-best"), help="trained bertprod_ner pipeline")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets"), help="folder with conll2003/ and sst2/")
    parser.add_argument("--docs", type=int, default=20000, help="documents in the corpus")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs each of the plain loop and Ray at 1 worker, taking turns (median reported)")
    parser.add_argument("--work", default=str(ROOT / "bench/results/annotate"), help="folder for the corpus and the outputs (git-ignored)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    # the plain loop tokenizes in this process before the local engine forks
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print("machine:", describe(), flush=True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    texts = corpus_texts(Path(args.data), args.docs)
    corpus = work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf8")
    print(f"{len(texts)} documents ({sum(len(t) for t in texts)} characters), batch size {args.batch_size}, shards of {args.shard_size}", flush=True)
    # the ratio's two runs take turns first, then the other rows once each
    schedule = [PLAIN, RAY_1] * args.repeats + [name for name in ENGINE_ROWS if name != RAY_1]
    measured: Dict[str, List[Dict[str, Any]]] = {name: [] for name in (PLAIN, *ENGINE_ROWS)}
    for name in schedule:
        if name == PLAIN:
            run = plain_pipe(args.model, texts, args.batch_size)
        else:
            engine, workers = ENGINE_ROWS[name]
            run = engine_run(args.model, corpus, args.docs, work / f"out-{engine}-{workers}", engine, workers, args)
        measured[name].append(run)
        print(f"{name:<24} {run}", flush=True)
    runs = {name: median_run(row_runs) for name, row_runs in measured.items()}
    # Ray's fixed cost: a run over the first shard only is nearly all start-up
    first = work / "corpus-first-shard.jsonl"
    first.write_text("".join(corpus.read_text(encoding="utf8").splitlines(keepends=True)[: args.shard_size]), encoding="utf8")
    startup = engine_run(args.model, first, args.shard_size, work / "out-ray-1-first-shard", "ray", 1, args)
    startup["fixed_seconds"] = round(startup["seconds"] - args.shard_size / runs[PLAIN]["docs_per_s"], 1)
    print(f"ray engine, 1 worker, first shard only {startup}", flush=True)
    overhead = 100 * (runs[RAY_1]["seconds"] / runs[PLAIN]["seconds"] - 1)
    local_overhead = 100 * (runs["local engine, 1 worker"]["seconds"] / runs[PLAIN]["seconds"] - 1)
    print(f"Ray overhead over plain nlp.pipe at 1 worker: {overhead:+.1f}% (local engine: {local_overhead:+.1f}%)")
    figures = {"docs": args.docs, "batch_size": args.batch_size, "shard_size": args.shard_size, "repeats": args.repeats, "runs": runs, "ray_first_shard": startup}
    figures.update({"ray_overhead_pct_1_worker": round(overhead, 1), "local_overhead_pct_1_worker": round(local_overhead, 1)})
    if args.report:
        note = "engine runs are end to end: reading, pipeline loading in every worker/actor, Ray start-up, JSON and shard writes"
        note += f"; the plain loop and Ray at 1 worker ran {args.repeats} times each, taking turns (median)"
        write_report(args.report, figures, note=note)


if __name__ == "__main__":
    main()
