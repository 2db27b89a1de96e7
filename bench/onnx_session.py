"""ONNX Runtime session settings, chosen by measurement.

The exported encoder is fused offline (portable across hosts), and ONNX
Runtime may optimise the graph again when it creates the session. This
script asks which session settings pay on this host for the fused int8
encoder the lean runtime ships: the graph optimisation level at session
creation, the CPU memory arena, the memory pattern planner and the intra-op
threads' spinning.

How: the trained pipeline is exported as the lean rows are (`onnx_path(...,
int8=True, fuse=True, inference_only=True)`); `nlp.pipe(batch_size=32)` tags
the CoNLL-2003 test documents once to record every encoder call's inputs
(and the share of their positions that are padding), then once more, timed,
to give the session's share of the end-to-end time.
Each setting then runs in a new process (so arenas and caches do not carry
over) that creates a session from the same model bytes and runs the
recorded calls in order: session creation seconds, run seconds, peak RSS (VmHWM).
The settings take turns over the repeats; medians with min-max.

    python bench/onnx_session.py [--model bench/results/cand/spacytok/model/model-best] [--threads 2] [--repeats 5] [--report onnx_session]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, spread, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = "default (all, arena, pattern, spinning)"
# each setting changes one thing from ONNX Runtime's defaults (what the
# project's sessions use today)
SETTINGS: Dict[str, Dict[str, Any]] = {
    DEFAULT: {},
    "graph level: disabled": {"graph_optimization_level": "ORT_DISABLE_ALL"},
    "graph level: basic": {"graph_optimization_level": "ORT_ENABLE_BASIC"},
    "graph level: extended": {"graph_optimization_level": "ORT_ENABLE_EXTENDED"},
    "no memory arena": {"enable_cpu_mem_arena": False},
    "no memory pattern": {"enable_mem_pattern": False},
    "no spinning": {"config": {"session.intra_op.allow_spinning": "0"}},
}


def record_calls(model: Path, texts: List[str], threads: int, batch_size: int, *, timed: bool = True) -> Dict[str, Any]:
    """The encoder's inputs for every call tagging `texts`, and (`timed`) a
    second, timed end-to-end run's seconds with the session's share of them."""
    import spacy

    from spacy_bertprod.layers.backends import onnx_session
    from spacy_bertprod.layers.encoder import bertprod_encoders
    from spacy_bertprod.threads import set_threads

    set_threads(threads)
    nlp = spacy.load(model)
    (encoder,) = bertprod_encoders(nlp).values()
    holder = onnx_session(encoder)
    calls: List[Dict[str, np.ndarray]] = []
    in_session = [0.0]
    run = holder.run

    def recording(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = run(ids, mask, types)
        in_session[0] += time.perf_counter() - start
        calls.append({"ids": ids.copy(), "mask": mask.copy(), "types": types.copy()})
        return out

    holder.run = recording  # type: ignore[method-assign]
    list(nlp.pipe(texts, batch_size=batch_size))  # records, and warms up
    recorded = list(calls)
    if not timed:
        return {"calls": recorded, "model_bytes": holder.data}
    in_session[0] = 0.0
    start = time.perf_counter()
    list(nlp.pipe(texts, batch_size=batch_size))
    total = time.perf_counter() - start
    return {"calls": recorded, "model_bytes": holder.data, "end_to_end_s": total, "session_s": in_session[0]}


def worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """One setting in this (new) process: create the session, run the calls."""
    import onnxruntime as ort

    from spacy_bertprod.layers.onnx_session import INPUT_NAMES, OUTPUT_NAME

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    setting = SETTINGS[spec["setting"]]
    if "graph_optimization_level" in setting:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, setting["graph_optimization_level"])
    for name in ("enable_cpu_mem_arena", "enable_mem_pattern"):
        if name in setting:
            setattr(options, name, setting[name])
    for key, value in setting.get("config", {}).items():
        options.add_session_config_entry(key, value)
    data = Path(spec["model"]).read_bytes()
    arrays = np.load(spec["calls"])
    calls = [(arrays[f"ids{i}"], arrays[f"mask{i}"], arrays[f"types{i}"]) for i in range(spec["n_calls"])]
    start = time.perf_counter()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    created = time.perf_counter() - start
    wanted = {i.name for i in session.get_inputs()}
    start = time.perf_counter()
    for call in calls:
        session.run([OUTPUT_NAME], {k: v for k, v in zip(INPUT_NAMES, call) if k in wanted})
    ran = time.perf_counter() - start
    # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    return {"create_s": created, "run_s": ran, "peak_rss_mb": peak}


def save_calls(calls: List[Dict[str, np.ndarray]], path: Path) -> None:
    np.savez(path, **{f"{k}{i}": call[k] for i, call in enumerate(calls) for k in ("ids", "mask", "types")})


def replay(setting: str, model: Path, calls_file: Path, n_calls: int, threads: int) -> Dict[str, float]:
    """`worker` for one setting and model, in a new process (so arenas and
    caches do not carry over between runs)."""
    spec = {"setting": setting, "threads": threads, "model": str(model), "calls": str(calls_file), "n_calls": n_calls}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/cand/spacytok/model/model-best"), help="trained bertprod_ner pipeline (torch), exported here")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003/test.txt"))
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every session")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=0, help="test documents tagged, for smoke runs (0: all)")
    parser.add_argument("--repeats", type=int, default=5, help="turns of every setting")
    parser.add_argument("--work", default=str(ROOT / "bench/results/onnx_session"), help="the export and the recorded calls (git-ignored)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json")
    parser.add_argument("--note", default="", help="conditions of the run, for the report")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)  # internal: one setting's JSON spec
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.report:
        model_provenance(Path(args.model))  # a report needs the model's record: fail before the run
    from spacy_bertprod.compression.pipelines import onnx_path
    from spacy_bertprod.training.converters import conll_to_docs

    print("machine:", describe(), flush=True)
    work = Path(args.work)
    export = work / "onnx-int8-fused-inference-only"
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(export, ignore_errors=True)
    onnx_path(Path(args.model), export, int8=True, fuse=True, inference_only=True)
    gold = conll_to_docs(args.data)[: args.limit or None]
    texts = [doc.text for doc in gold]
    recorded = record_calls(export, texts, args.threads, args.batch_size)
    calls = recorded["calls"]
    words = sum(len(doc) for doc in gold)
    share = recorded["session_s"] / recorded["end_to_end_s"]
    # the length buckets' padding: positions the encoder computes that hold no wordpiece
    positions = sum(int(call["mask"].size) for call in calls)
    padding = 1 - sum(int(call["mask"].sum()) for call in calls) / positions
    print(f"padding: {padding:.1%} of {positions:,} positions", flush=True)
    print(f"{len(texts)} documents, {len(calls)} encoder calls; end to end {recorded['end_to_end_s']:.2f} s, in the session {recorded['session_s']:.2f} s ({share:.0%})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_file, calls_file = Path(tmp) / "encoder.onnx", Path(tmp) / "calls.npz"
        model_file.write_bytes(recorded["model_bytes"])
        save_calls(calls, calls_file)
        runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in SETTINGS}
        for repeat in range(args.repeats):
            for name in SETTINGS:
                result = replay(name, model_file, calls_file, len(calls), args.threads)
                runs[name].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} | {name}: create {result['create_s']:.2f} s, run {result['run_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    base = statistics.median(r["run_s"] for r in runs[DEFAULT])
    rows = []
    for name, results in runs.items():
        run_s = spread([r["run_s"] for r in results])
        rows.append(
            {
                "setting": name,
                "options": SETTINGS[name],
                "run_s": run_s,
                "vs_default": base / run_s["median"],
                "create_s": spread([r["create_s"] for r in results]),
                "peak_rss_mb": spread([r["peak_rss_mb"] for r in results]),
            }
        )
        print(f"{name:<42} run {run_s['median']:.2f} s ({run_s['min']:.2f}-{run_s['max']:.2f}), {base / run_s['median']:.2f}x the default", flush=True)
    figures = {
        "documents": len(texts),
        "words": words,
        "encoder_calls": len(calls),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "end_to_end_s": recorded["end_to_end_s"],
        "session_s": recorded["session_s"],
        "session_share": share,
        "positions": positions,
        "padding_share": padding,
        "rows": rows,
    }
    if args.report:
        write_report(args.report, figures, note=args.note, models={"bertprod_ner": args.model})


if __name__ == "__main__":
    main()
