"""A race of bertprod NER pipelines against spaCy's own CNN NER pipeline
(tok2vec + ner, what a spaCy user picks when CPU cost matters) on CoNLL-2003.

1. Trains the CNN (skip with --skip-cnn-train): `spacy init config --pipeline
   ner --optimize efficiency --lang en` (CPU, no static vectors), its training
   logger set to `bertprod.ConsoleLogger.v1` writing the training log, then
   `spacy train` on CoNLL-2003 train as DocBins, model-best chosen on dev.
2. Rows: the CNN in the full environment and in the lean virtualenv; each
   --bertprod pipeline as torch fp32 (full environment) and fused ONNX int8
   inference-only in the lean virtualenv, or, when its encoder is not a
   bertprod transformer (nothing to export), as it is in both environments.
   Every lean row is a `spacy package --build wheel` installed into one
   virtualenv holding only `spacy-bertprod[runtime]` and loaded by name.
3. Each row at --threads and at 1 thread, every figure in a new process
   (bench/lean.py's workers): words/s of `nlp.pipe(batch_size=32)` over the
   CoNLL-2003 test documents, interleaved (each repeat runs every row once),
   median (min-max); test entity F1 (overall and per type); cold start
   (median of --cold-starts); RSS after --rss-docs test sentences; the
   package wheel's size.

    python bench/cnn_race.py --bertprod teacher=bench/results/conll/model/model-best --bertprod student=PATH --report cnn_race
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).parent))
from lean import ROOT, ROWS, SKIP_ENTRY_POINTS, cold_start, export_variants, install_package, make_lean_venv, package_wheel, run_worker  # noqa: E402

CNN = "spacy-cnn"
FULL, LEAN = "full", "lean"
TORCH, ONNX, THINC = "torch fp32", "onnx int8 fused", "thinc"
BATCH_SIZE = 32  # bench/lean.py's accuracy worker
#: the threads settings a worker's numerical libraries read at start-up
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Contender:
    """One row before it is measured: what to load, in which environment."""

    system: str
    runtime: str
    variant: str
    target: str  # a pipeline folder (full) or an installed package's name (lean)
    python: str
    env: Dict[str, str]
    package_mb: float

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.system, self.runtime, self.variant)


# -- pure helpers ------------------------------------------------------------
def parse_bertprod(items: Sequence[str]) -> Dict[str, Path]:
    """--bertprod NAME=PATH pairs, names unique (and not the CNN's), each
    naming a package slug of its own."""
    found: Dict[str, Path] = {}
    slugs: Dict[str, str] = {slug(CNN): CNN}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--bertprod {item!r}: expected NAME=PATH")
        if name in found or name == CNN:
            raise SystemExit(f"--bertprod {item!r}: the name {name!r} is taken; give each pipeline its own name")
        if slug(name) in slugs:
            raise SystemExit(f"--bertprod {item!r}: {name!r} and {slugs[slug(name)]!r} make the same package name; rename one")
        slugs[slug(name)] = name
        found[name] = Path(path)
    return found


def slug(name: str) -> str:
    """A system name as a package name part: lower-case letters, digits, _."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "pipeline"


def thread_settings(threads: int) -> List[int]:
    """--threads, then 1 (once when --threads is 1)."""
    return [threads] if threads == 1 else [threads, 1]


def worker_env(env: Dict[str, str], threads: int) -> Dict[str, str]:
    """`env` with the numerical libraries' thread variables at `threads`."""
    return {**env, **{name: str(threads) for name in THREAD_VARIABLES}}


def build_row(system: str, runtime: str, variant: str, threads: int, runs: Sequence[Dict[str, Any]], cold: Dict[str, Any], rss: Dict[str, Any], package_mb: float) -> Dict[str, Any]:
    """A report row from its measurements: words/s of every repeat (accuracy
    worker results, in repeat order), cold start, RSS and package size."""
    speeds = [run["words_per_s"] for run in runs]
    first = runs[0]
    return {
        "system": system,
        "runtime": runtime,
        "variant": variant,
        "threads": threads,
        "words_per_s": statistics.median(speeds),
        "words_per_s_range": [min(speeds), max(speeds)],
        "words_per_s_runs": speeds,
        "f1": first["f1"],
        "f1_per_type": first.get("f1_per_type", {}),
        "cold_start_s": cold["cold_start_s"],
        "rss_mb": rss["rss_mb"],
        "package_mb": package_mb,
        "docs": first["docs"],
        "words": first["words"],
    }


def build_ratios(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each bertprod row against the CNN row of the same runtime and threads:
    words/s ratio of the medians, its range over the paired repeats (the
    interleaved runs of one repeat), and the F1 difference in points."""
    cnn = {(row["runtime"], row["threads"]): row for row in rows if row["system"] == CNN}
    ratios = []
    for row in rows:
        base = cnn.get((row["runtime"], row["threads"]))
        if row["system"] == CNN or base is None:
            continue
        paired = [ours / theirs for ours, theirs in zip(row["words_per_s_runs"], base["words_per_s_runs"])]
        ratios.append(
            {
                "system": row["system"],
                "runtime": row["runtime"],
                "variant": row["variant"],
                "threads": row["threads"],
                "against": f"{CNN} {base['variant']} ({base['runtime']})",
                "words_per_s_ratio": row["words_per_s"] / base["words_per_s"],
                "words_per_s_ratio_range": [min(paired), max(paired)],
                "f1_diff": row["f1"] - base["f1"],
            }
        )
    return ratios


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bertprod", action="append", default=[], metavar="NAME=PATH", help="a trained bertprod NER pipeline folder, bench_made_by.json beside it or in its parent (repeatable)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/conll2003", help="folder with train.txt, dev.txt, test.txt (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cnn_race", help="exports, wheels and the lean virtualenv (default: %(default)s)")
    parser.add_argument("--cnn-out", type=Path, default=None, help="the CNN's training folder (default: OUT/cnn)")
    parser.add_argument("--skip-cnn-train", action="store_true", help="reuse the CNN trained in --cnn-out")
    parser.add_argument("--cnn-max-steps", type=int, default=0, help="the CNN's training.max_steps, for smoke runs (default: 0, the config's own)")
    parser.add_argument("--train-limit", type=int, default=0, help="CoNLL train documents the CNN trains on, for smoke runs (0: all)")
    parser.add_argument("--test-limit", type=int, default=0, help="CoNLL test documents timed and scored, for smoke runs (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the main figures and of the CNN's training; every row is also measured at 1 (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved words/s measurements of every row (default: %(default)s)")
    parser.add_argument("--cold-starts", type=int, default=3, help="new processes per cold-start median (default: %(default)s)")
    parser.add_argument("--rss-docs", type=int, default=1000, help="CoNLL test sentences before RSS is read (default: %(default)s)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (default: off)")
    parser.add_argument("--note", default="", help="what the report should say about the run (e.g. what else ran)")
    args = parser.parse_args(argv)
    for name in ("threads", "repeats", "cold_starts", "rss_docs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.cnn_out = args.cnn_out or args.out / "cnn"
    return args


# -- the CNN -----------------------------------------------------------------
def train_cnn(args: argparse.Namespace) -> Path:
    """spaCy's CNN NER pipeline trained on CoNLL-2003, its making recorded."""
    import spacy
    from common import TRAIN_LOG, record_made_by

    from spacy_bertprod.training.converters import conll_to_docs, write_docbin

    out = args.cnn_out.resolve()
    corpus = out / "corpus"
    counts = {}
    for split in ("train", "dev"):
        docs = conll_to_docs(args.data / f"{split}.txt")
        docs = docs[: args.train_limit] if split == "train" and args.train_limit else docs
        write_docbin(docs, corpus / f"{split}.spacy")
        counts[f"{split}_docs"] = len(docs)
    config_path = out / "config.cfg"
    init = [sys.executable, "-m", "spacy", "init", "config", str(config_path), "--pipeline", "ner", "--optimize", "efficiency", "--lang", "en", "--force"]
    subprocess.run(init, check=True)
    log = out / TRAIN_LOG
    config = spacy.util.load_config(config_path, interpolate=False)
    # the project's logger: spaCy's console logger writing every evaluation (its step and dev score) to the log
    config["training"]["logger"] = {"@loggers": "bertprod.ConsoleLogger.v1", "output_file": str(log)}
    config.to_disk(config_path)
    overrides = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy")}
    if args.cnn_max_steps:
        overrides["training.max_steps"] = args.cnn_max_steps
        # evaluated more than once after step 0, or the logger rightly discards model-best
        overrides["training.eval_frequency"] = min(int(config["training"]["eval_frequency"]), max(1, args.cnn_max_steps // 4))
    train = [sys.executable, "-m", "spacy", "train", str(config_path), "--output", str(out)]
    for key, value in overrides.items():
        train += [f"--{key}", str(value)]
    log.unlink(missing_ok=True)  # spaCy appends to it
    print(f"training the CNN ({args.threads} threads): {' '.join(train)}", flush=True)
    start = time.perf_counter()
    subprocess.run(train, check=True, env=worker_env(dict(os.environ), args.threads))
    seconds = time.perf_counter() - start
    commands = [" ".join(["python", "-m", "spacy", *init[3:]]), " ".join(["python", "-m", "spacy", *train[3:]])]
    how = "spaCy's CNN NER pipeline: `spacy init config` as below (training.logger set to bertprod.ConsoleLogger.v1), then `spacy train`"
    record_made_by(out, how=how, spacy_commands=commands, overrides=overrides, threads=args.threads, training_seconds=round(seconds), **counts)
    return cnn_best(out)


def cnn_best(out: Path) -> Path:
    best = out.resolve() / "model-best"
    if not best.exists():
        raise SystemExit(f"{best} does not exist: train the CNN (leave out --skip-cnn-train) or pass --cnn-out with a trained one")
    return best


# -- rows ----------------------------------------------------------------------
def source_stamp() -> str:
    """A digest of what the lean virtualenv's spacy-bertprod wheel is built from."""
    digest = hashlib.sha256()
    files = sorted((ROOT / "spacy_bertprod").rglob("*.py")) + sorted((ROOT / "spacy_bertprod").rglob("*.cfg")) + [ROOT / "pyproject.toml", ROOT / "requirements.txt"]
    for file in files:
        digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def lean_venv(out: Path) -> str:
    """The lean virtualenv under `out`, made again when this checkout's
    package sources differ from those it was made from."""
    venv = out / "lean-venv"
    stamp = venv / "bertprod_source.sha256"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == source_stamp():
        print(f"lean virtualenv: reusing {venv}", flush=True)
        return str(python)
    print(f"lean virtualenv: making {venv} ...", flush=True)
    made = make_lean_venv(venv, out)
    stamp.write_text(source_stamp() + "\n")
    return made


def has_transformer_encoder(path: Path) -> bool:
    """Whether the pipeline has a bertprod transformer encoder (what the ONNX
    export converts, and refuses a pipeline without: E076)."""
    import spacy

    from spacy_bertprod.layers.encoder import bertprod_encoders

    return bool(bertprod_encoders(spacy.load(path)))


def contenders_for(system: str, path: Path, out: Path, envs: Dict[str, Dict[str, Any]]) -> List[Contender]:
    """A pipeline's rows: torch fp32 (full) and fused ONNX int8 inference-only
    (lean) for a transformer encoder; the pipeline as it is in both
    environments otherwise."""
    packages = out / "packages"
    name = slug(system)
    full, lean = envs[FULL], envs[LEAN]

    def mb(wheel: Path) -> float:
        return wheel.stat().st_size / 2**20

    if system != CNN and has_transformer_encoder(path):
        torch_wheel = package_wheel(path, f"race_{name}_torch", packages)
        folder = export_variants(path, out / "exports" / name, rows=(ROWS[3],))[ROWS[3]]
        onnx_wheel = package_wheel(folder, f"race_{name}_onnx", packages)
        return [
            Contender(system, FULL, TORCH, str(path), full["python"], full["vars"], mb(torch_wheel)),
            Contender(system, LEAN, ONNX, install_package(lean["python"], onnx_wheel), lean["python"], lean["vars"], mb(onnx_wheel)),
        ]
    if system != CNN:
        print(f"{system}: no bertprod transformer encoder, measured as it is (thinc)", flush=True)
    wheel = package_wheel(path, f"race_{name}", packages)
    return [
        Contender(system, FULL, THINC, str(path), full["python"], full["vars"], mb(wheel)),
        Contender(system, LEAN, THINC, install_package(lean["python"], wheel), lean["python"], lean["vars"], mb(wheel)),
    ]


def label(c: Contender, threads: int) -> str:
    return f"{c.system} | {c.variant} | {c.runtime} | {threads} thread(s)"


def measure(contenders: Sequence[Contender], args: argparse.Namespace, conll: str) -> List[Dict[str, Any]]:
    """Every row at every thread setting, each figure in a new process: cold
    starts and RSS first (a pipeline that cannot load fails early), then
    words/s and F1 interleaved over the repeats."""
    settings = thread_settings(args.threads)
    colds: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    rsss: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for c in contenders:
        for threads in settings:
            env = worker_env(c.env, threads)
            colds[c.key + (threads,)] = cold_start(c.python, env, c.target, args.cold_starts, threads)
            rsss[c.key + (threads,)] = run_worker(c.python, env, "rss", c.target, conll, args.rss_docs, threads)
            print(f"{label(c, threads)}: cold start {colds[c.key + (threads,)]['cold_start_s']:.2f} s, RSS {rsss[c.key + (threads,)]['rss_mb']:.0f} MB", flush=True)
    runs: Dict[Tuple[Any, ...], List[Dict[str, Any]]] = {c.key + (t,): [] for c in contenders for t in settings}
    for repeat in range(args.repeats):
        for c in contenders:
            for threads in settings:
                result = run_worker(c.python, worker_env(c.env, threads), "accuracy", c.target, conll, args.test_limit, threads)
                runs[c.key + (threads,)].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} | {label(c, threads)}: {result['words_per_s']:,.0f} words/s, F1 {result['f1']:.2f}", flush=True)
    return [build_row(*c.key, t, runs[c.key + (t,)], colds[c.key + (t,)], rsss[c.key + (t,)], c.package_mb) for c in contenders for t in settings]


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from common import describe, model_provenance, write_report
    from tables import cnn_race_table

    bertprod = {name: path.resolve() for name, path in parse_bertprod(args.bertprod).items()}
    for path in bertprod.values() if args.report else ():
        model_provenance(path)  # before the run: a report needs each model's record
    start = time.time()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    best = cnn_best(args.cnn_out) if args.skip_cnn_train else train_cnn(args)
    if args.report:
        model_provenance(best)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    envs = {FULL: {"python": sys.executable, "vars": dict(os.environ)}, LEAN: {"python": lean_venv(out), "vars": clean}}
    contenders = contenders_for(CNN, best, out, envs)
    for name, path in bertprod.items():
        contenders += contenders_for(name, path, out, envs)
    conll = str((args.data / "test.txt").resolve())
    rows = measure(contenders, args, conll)
    figures = {
        "machine": describe(),
        "settings": {
            "threads": args.threads,
            "thread_settings": thread_settings(args.threads),
            "repeats": args.repeats,
            "cold_starts": args.cold_starts,
            "rss_docs": args.rss_docs,
            "test_limit": args.test_limit,
            "batch_size": BATCH_SIZE,
            "test_docs": rows[0]["docs"],
            "test_words": rows[0]["words"],
            "skipped_entry_points": list(SKIP_ENTRY_POINTS),
        },
        "rows": rows,
        "ratios": build_ratios(rows),
        "seconds": time.time() - start,
    }
    print("\n" + cnn_race_table(figures))
    (out / "result.json").write_text(json.dumps(figures, indent=2))
    if args.report:
        write_report(args.report, figures, note=args.note, models={CNN: best, **bertprod})


if __name__ == "__main__":
    main()
