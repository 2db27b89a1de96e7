"""The lean runtime: what a deployed NER pipeline costs with and
without the training stack.

For the trained NER teacher and (with --student) its distilled student, four
rows each:

  torch fp32                         the pipeline as trained, full environment
  ONNX int8                          `bertprod onnx --int8 --no-fuse` (the export before fusion), full environment
  ONNX int8 fused                    `bertprod onnx --int8`, full environment
  ONNX int8 fused inference-only     `bertprod onnx --int8 --inference-only`, installed
                                     as a `spacy package` wheel in a lean virtualenv
                                     (`spacy-bertprod[runtime]`, no torch) and loaded by name

and for each: the environment's size on disk (the files of the installed
distributions `spacy-bertprod[train]` resp. `[runtime]` needs, from their
RECORDs; the lean virtualenv's whole folder too), the pipeline folder and
its `spacy package --build wheel` size, cold start (a new process: import
spacy + spacy.load + the first doc, from spawn to the first doc's end;
median of --cold-starts), RSS after --rss-docs CoNLL test sentences in a new
process, words/s (`nlp.pipe`, batch 32, over the CoNLL-2003 test documents)
and CoNLL-2003 test entity F1.

The full environment is the interpreter running this script (spaCy's
entry points of spacy-transformers, which `[train]` does not install, are
skipped in its processes: SKIP_ENTRY_POINTS); the lean
virtualenv is made under --out from the package registry (pip's network or
cache): `pip install -c requirements.txt "spacy_bertprod-*.whl[runtime]"`.

    python bench/lean.py --student bench/results/students_final/ner/model-best --report lean
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench/results"
FIRST_TEXT = "Angela Merkel visited the Siemens plant in Munich."
ROWS = ("torch fp32", "ONNX int8", "ONNX int8 fused", "ONNX int8 fused inference-only (lean env)")


# -- measured in a new process (also in the lean env: no torch, stdlib at module level)
#: Entry points the workers skip: spacy-transformers (installed here for the
#: other benchmarks, not by `spacy-bertprod[train]`) registers spaCy factories
#: whose import brings transformers into every `spacy.load`.
SKIP_ENTRY_POINTS = ("spacy_transformers",)


def skip_entry_points() -> None:
    """Leave out SKIP_ENTRY_POINTS when spaCy collects its entry points, so the
    full environment's rows measure what a `[train]` install loads."""
    import catalogue

    found = catalogue.Registry._get_entry_points
    catalogue.Registry._get_entry_points = lambda self: [e for e in found(self) if not e.value.startswith(SKIP_ENTRY_POINTS)]


def apply_threads(threads: int) -> None:
    """The encoders' threads through the project's policy (torch's intra-op
    threads, else the ONNX sessions'); 0 leaves the defaults. Called before
    spacy.load, in a new process whose OMP_NUM_THREADS the parent set."""
    if threads:
        from spacy_bertprod.threads import set_threads

        set_threads(threads)


def worker_cold(target: str, threads: int = 0) -> Dict[str, Any]:
    """import spacy, spacy.load, the first doc; wall-clock times (`end` is
    compared with the parent's spawn time)."""
    start = time.time()
    import spacy

    skip_entry_points()
    imported = time.time()
    apply_threads(threads)
    nlp = spacy.load(target)
    loaded = time.time()
    nlp(FIRST_TEXT)
    end = time.time()
    return {"import_s": imported - start, "load_s": loaded - imported, "first_doc_s": end - loaded, "end": end, "torch_loaded": "torch" in sys.modules}


def _rss_mb() -> Dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(status[field].split()[0]) / 1024 for key, field in (("rss_mb", "VmRSS"), ("peak_rss_mb", "VmHWM"))}


def worker_rss(target: str, conll: str, n_docs: int, threads: int = 0) -> Dict[str, Any]:
    """RSS after `n_docs` CoNLL test sentences (one doc each), batch 32."""
    import spacy

    from spacy_bertprod.training.converters import conll_to_docs

    texts = [d.text for d in conll_to_docs(conll, n_sents=1)][:n_docs]
    apply_threads(threads)
    nlp = spacy.load(target)
    for _ in nlp.pipe(texts, batch_size=32):
        pass
    return {"docs": len(texts), **_rss_mb()}


def worker_accuracy(target: str, conll: str, limit: int, threads: int = 0) -> Dict[str, Any]:
    """words/s over the CoNLL test documents (after a warm-up) and entity F1,
    overall and per type."""
    import spacy
    from spacy.scorer import get_ner_prf
    from spacy.training import Example

    from spacy_bertprod.training.converters import conll_to_docs

    gold = conll_to_docs(conll)
    gold = gold[:limit] if limit else gold
    texts = [d.text for d in gold]
    apply_threads(threads)
    nlp = spacy.load(target)
    list(nlp.pipe(texts[:20], batch_size=32))
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=32))
    seconds = time.perf_counter() - start
    scores = get_ner_prf([Example(p, g) for p, g in zip(docs, gold)])
    words = sum(len(d) for d in gold)
    per_type = {label: prf["f"] * 100 for label, prf in sorted(scores["ents_per_type"].items())}
    return {"docs": len(gold), "words": words, "words_per_s": words / seconds, "f1": scores["ents_f"] * 100, "f1_per_type": per_type}


WORKERS = {"cold": worker_cold, "rss": worker_rss, "accuracy": worker_accuracy}


# -- the parent ----------------------------------------------------------------
def run_worker(python: str, env: Dict[str, str], mode: str, *args: Any) -> Dict[str, Any]:
    out = subprocess.run([python, str(Path(__file__).resolve()), "--worker", mode, *map(str, args)], capture_output=True, text=True, env=env, cwd="/tmp")
    if out.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(python: str, env: Dict[str, str], target: str, repeats: int, threads: int = 0) -> Dict[str, Any]:
    runs = []
    for _ in range(repeats):
        spawned = time.time()
        result = run_worker(python, env, "cold", target, threads)
        runs.append({**result, "total_s": result["end"] - spawned})
    return {
        "cold_start_s": statistics.median(r["total_s"] for r in runs),
        **{f"cold_{k}": statistics.median(r[k] for r in runs) for k in ("import_s", "load_s", "first_doc_s")},
        "torch_loaded": any(r["torch_loaded"] for r in runs),
    }


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


#: Sizes of the installed distributions a requirement needs (its closure,
#: with extras), from each distribution's RECORD, run by the env's python.
CLOSURE = r"""
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
todo, seen, sizes = [(sys.argv[1], tuple(sys.argv[2:]))], set(), {}
while todo:
    name, extras = todo.pop()
    if (canonicalize_name(name), extras) in seen:
        continue
    seen.add((canonicalize_name(name), extras))
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    paths = (dist.locate_file(f) for f in dist.files or [])
    sizes[canonicalize_name(name)] = sum(p.stat().st_size for p in paths if p.is_file())
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("",) + extras):
            todo.append((req.name, tuple(sorted(req.extras))))
print(json.dumps(sizes))
"""


def environment_mb(python: str, env: Dict[str, str], extra: str) -> Dict[str, Any]:
    out = subprocess.run([python, "-c", CLOSURE, "spacy-bertprod", extra], capture_output=True, text=True, env=env, check=True, cwd="/tmp")
    sizes = json.loads(out.stdout)
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
    return {"env_mb": sum(sizes.values()) / 2**20, "distributions": len(sizes), "largest_mb": {k: round(v / 2**20, 1) for k, v in largest}}


def make_lean_venv(path: Path, work: Path) -> str:
    """A virtualenv with `spacy-bertprod[runtime]` from a wheel of this
    checkout, its dependencies at requirements.txt's versions."""
    source = work / "source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(ROOT / "spacy_bertprod", source / "spacy_bertprod", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = work / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("spacy_bertprod-*.whl")
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = str(path / "bin" / "python")
    # pip takes no extras in a constraints file (requirements.txt pins ray[serve]): the pins without them
    constraints = work / "constraints.txt"
    pins = [re.sub(r"\[[^\]]*\]", "", line) for line in (ROOT / "requirements.txt").read_text(encoding="utf8").splitlines() if "==" in line and not line.startswith("#")]
    constraints.write_text("\n".join(pins) + "\n", encoding="utf8")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(constraints), f"{wheel}[runtime]"], check=True)
    return python


def package_wheel(pipeline: Path, name: str, packages: Path) -> Path:
    """`spacy package --build wheel` of a pipeline folder; the wheel file."""
    shutil.rmtree(packages / f"en_{name}-0.0.0", ignore_errors=True)
    packages.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "spacy", "package", str(pipeline), str(packages), "--name", name, "--version", "0.0.0", "--build", "wheel", "--force"]
    subprocess.run(command, check=True, capture_output=True)
    (wheel,) = (packages / f"en_{name}-0.0.0" / "dist").glob("*.whl")
    return wheel


def install_package(python: str, wheel: Path) -> str:
    """Install a `package_wheel` wheel into the virtualenv of `python`, as
    users would; the name spacy.load takes."""
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    return wheel.name.split("-")[0]


def export_variants(model: Path, out: Path, rows: Sequence[str] = ROWS[1:]) -> Dict[str, Path]:
    """The pipeline folders of the four rows, or of torch fp32 and the ONNX
    `rows` asked for (ONNX exports made now)."""
    import warnings

    from spacy_bertprod.compression.pipelines import onnx_path

    folders = {"torch fp32": model}
    out.mkdir(parents=True, exist_ok=True)
    settings = {"ONNX int8": {"fuse": False}, "ONNX int8 fused": {"fuse": True}, ROWS[3]: {"fuse": True, "inference_only": True}}
    for row, kwargs in settings.items():
        if row not in rows:
            continue
        folder = out / row.split(" (")[0].replace(" ", "-")
        shutil.rmtree(folder, ignore_errors=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            onnx_path(model, folder, int8=True, **kwargs)
        for warning in caught:
            print(f"  {row}: {warning.message}", flush=True)
        folders[row] = folder
    return folders


def measure(name: str, model: Path, args: argparse.Namespace, envs: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    out = args.out / name
    folders = export_variants(model, out)
    rows: Dict[str, Dict[str, Any]] = {}
    for row, folder in folders.items():
        lean = row == ROWS[3]
        env = envs["lean" if lean else "full"]
        package = f"lean_{name}_{ROWS.index(row)}"
        wheel = package_wheel(folder, package, out / "packages")
        target = str(folder)
        if lean:  # installed as users would: the wheel, loaded by name
            target = install_package(env["python"], wheel)
        print(f"{name} | {row}: measuring", flush=True)
        figures: Dict[str, Any] = {"folder_mb": folder_mb(folder), "wheel_mb": wheel.stat().st_size / 2**20, "env_mb": env["env_mb"]}
        figures.update(cold_start(env["python"], env["vars"], target, args.cold_starts))
        figures.update({f"rss_{k}": v for k, v in run_worker(env["python"], env["vars"], "rss", target, args.conll, args.rss_docs).items()})
        figures.update(run_worker(env["python"], env["vars"], "accuracy", target, args.conll, args.test_limit))
        rows[row] = figures
        print(f"  {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()})}", flush=True)
    return rows


def print_table(results: Dict[str, Dict[str, Dict[str, Any]]]) -> None:
    head = ("model", "row", "env MB", "wheel MB", "cold s", "RSS MB", "words/s", "F1")
    print("\n| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
    for model, rows in results.items():
        for row, f in rows.items():
            cells = (model, row, f"{f['env_mb']:.0f}", f"{f['wheel_mb']:.1f}", f"{f['cold_start_s']:.2f}", f"{f['rss_rss_mb']:.0f}", f"{f['words_per_s']:.0f}", f"{f['f1']:.2f}")
            print("| " + " | ".join(cells) + " |")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, default=RESULTS / "conll/model/model-best", help="trained NER pipeline (default: %(default)s)")
    parser.add_argument("--student", type=Path, default=None, help="its distilled student, e.g. bench/results/students_final/ner/model-best (default: none)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets", help="folder with conll2003/test.txt (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "lean", help="exports, wheels and the lean virtualenv (default: %(default)s)")
    parser.add_argument("--lean-python", default=None, help="python of an existing lean virtualenv to reuse (default: make one under --out)")
    parser.add_argument("--cold-starts", type=int, default=5, help="new processes per cold-start median (default: %(default)s)")
    parser.add_argument("--rss-docs", type=int, default=1000, help="CoNLL test sentences before RSS is read (default: %(default)s)")
    parser.add_argument("--test-limit", type=int, default=0, help="CoNLL test documents scored and timed, 0: all (default: %(default)s)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (default: off)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, *rest = args.worker
        if mode != "cold":  # the cold start times `import spacy` itself
            skip_entry_points()
        typed = [int(x) if x.isdigit() else x for x in rest]
        print(json.dumps(WORKERS[mode](*typed)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from common import describe, model_provenance, write_report

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.conll = str((args.data / "conll2003/test.txt").resolve())
    models = {"teacher": args.teacher.resolve()}
    if args.student is not None:
        models["student"] = args.student.resolve()
    for path in models.values() if args.report else ():
        model_provenance(path)  # before the run: a report needs each model's record
    start = time.time()
    print("lean virtualenv ...", flush=True)
    lean_python = args.lean_python or make_lean_venv(args.out / "lean-venv", args.out)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    envs = {
        "full": {"python": sys.executable, "vars": dict(os.environ), **environment_mb(sys.executable, dict(os.environ), "train")},
        "lean": {"python": lean_python, "vars": clean, **environment_mb(lean_python, clean, "runtime")},
    }
    envs["lean"]["venv_folder_mb"] = folder_mb(Path(lean_python).parent.parent)
    results = {name: measure(name, path, args, envs) for name, path in models.items()}
    print_table(results)
    figures = {
        "machine": describe(),
        "environments": {k: {key: v for key, v in e.items() if key != "vars"} for k, e in envs.items()},
        "models": {k: str(v) for k, v in models.items()},
        "settings": {"cold_starts": args.cold_starts, "rss_docs": args.rss_docs, "test_limit": args.test_limit, "skipped_entry_points": list(SKIP_ENTRY_POINTS)},
        "results": results,
        "seconds": time.time() - start,
    }
    (args.out / "result.json").write_text(json.dumps(figures, indent=2))
    if args.report:
        write_report(args.report, figures, models=models)


if __name__ == "__main__":
    main()
