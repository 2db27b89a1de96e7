"""Static (calibrated QDQ) against dynamic int8 for the fused ONNX encoder.

`bertprod onnx --int8` quantizes dynamically: int8 weights, and each
activation's scale computed while it runs. Static quantization fixes the
activations' scales ahead of time from calibration data and stores
Quantize/DequantizeLinear pairs (QDQ) that ONNX Runtime folds into integer
kernels, saving the run-time scale computation. This script measures
whether that pays here, in speed and in accuracy, for one trained pipeline.

How: the pipeline is exported fused, fp32, inference-only (as the lean rows
are, but unquantized). Calibration: the encoder inputs of the first
`--calibration-docs` CoNLL-2003 dev documents (recorded through
`nlp.pipe`). Before static quantization the graph goes through ONNX
Runtime's symbolic shape inference (`quant_pre_process`, no optimisation):
without it the quantizer cannot type the fused operators' outputs and
quantizes weights only. Variants: fp32, dynamic int8 exactly as shipped
(`quantize_onnx`), and static QDQ (per-channel int8 weights, uint8
activations, the calibration method of `--calibrate-method`) of the
operators the dynamic path quantizes (MatMul and the fused Attention) and
of MatMul only.

Speed: the test documents' recorded encoder calls replayed per variant in a
new process (bench/onnx_session.py's worker, default session settings),
variants taking turns over the repeats; medians with min-max. Accuracy: CoNLL
dev and test entity F1 of the pipeline with each variant's graph in its
session (the pipeline's own tokenization, as bench/conll_ner.py scores),
and the largest hidden-state difference from fp32 on the recorded calls.

    python bench/static_int8.py --model bench/results/cand/epochs12/model/model-best [--report static_int8]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, spread, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FP32 = "fp32 (fused)"
DYNAMIC = "dynamic int8 (shipped)"
STATIC_ALL = "static QDQ int8: MatMul + Attention"
STATIC_MATMUL = "static QDQ int8: MatMul only"
STATIC_OPS = {STATIC_ALL: ["MatMul", "Attention"], STATIC_MATMUL: ["MatMul"]}


def quantize_static_graph(data: bytes, calls: Sequence[Dict[str, np.ndarray]], ops: List[str], method: str) -> bytes:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from spacy_bertprod.layers.onnx_session import INPUT_NAMES

    class Reader(CalibrationDataReader):
        """The recorded calls as ONNX Runtime's calibration reader, fed by the graph's input names."""

        def __init__(self, wanted: Sequence[str]) -> None:
            keys = dict(zip(INPUT_NAMES, ("ids", "mask", "types")))
            self._items = iter([{name: call[keys[name]] for name in INPUT_NAMES if name in wanted} for call in calls])

        def get_next(self) -> Any:
            return next(self._items, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, typed, output = Path(tmp) / "fp32.onnx", Path(tmp) / "typed.onnx", Path(tmp) / "static.onnx"
        source.write_bytes(data)
        quant_pre_process(str(source), str(typed), skip_optimization=True)
        wanted = [i.name for i in onnx.load(str(typed)).graph.input]
        quantize_static(
            str(typed),
            str(output),
            Reader(wanted),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=ops,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, method),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        counts = Counter(node.op_type for node in onnx.load(str(output)).graph.node)
        if not counts.get("QuantizeLinear"):
            raise SystemExit(f"static quantization quantized no activation (ops {counts}): the shape inference did not type the graph")
        return output.read_bytes()


def hidden_states(graph: bytes, calls: Sequence[Dict[str, np.ndarray]]) -> List[np.ndarray]:
    """The graph's hidden states at the real (unpadded) positions of every call."""
    from spacy_bertprod.layers.onnx_session import OnnxSession

    session = OnnxSession(graph, "onnx")
    return [session.run(call["ids"], call["mask"], call["types"])[call["mask"].astype(bool)] for call in calls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/cand/epochs12/model/model-best"), help="trained bertprod_ner pipeline (torch)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003"), help="folder with dev.txt and test.txt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calibration-docs", type=int, default=100, help="dev documents whose encoder inputs calibrate the static scales")
    parser.add_argument("--calibrate-method", default="MinMax", choices=["MinMax", "Entropy", "Percentile"])
    parser.add_argument("--limit", type=int, default=0, help="dev and test documents scored and replayed, for smoke runs (0: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", default=str(ROOT / "bench/results/static_int8"), help="the export (git-ignored)")
    parser.add_argument("--report", default="")
    parser.add_argument("--note", default="", help="conditions of the run, for the report")
    args = parser.parse_args()
    if args.report:
        model_provenance(Path(args.model))
    import spacy
    from conll_ner import text_examples
    from onnx_session import DEFAULT, record_calls, replay, save_calls

    from spacy_bertprod.compression.onnx_export import quantize_onnx
    from spacy_bertprod.compression.pipelines import onnx_path
    from spacy_bertprod.layers.backends import onnx_session
    from spacy_bertprod.layers.encoder import bertprod_encoders
    from spacy_bertprod.threads import set_threads
    from spacy_bertprod.training.converters import conll_to_docs

    print("machine:", describe(), flush=True)
    set_threads(args.threads)
    work = Path(args.work)
    export = work / "onnx-fp32-fused-inference-only"
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(export, ignore_errors=True)
    onnx_path(Path(args.model), export, int8=False, fuse=True, inference_only=True)
    data = Path(args.data)
    dev = conll_to_docs(str(data / "dev.txt"))
    test = conll_to_docs(str(data / "test.txt"))[: args.limit or None]
    calibration_texts = [d.text for d in dev[: args.calibration_docs]]
    calibration = record_calls(export, calibration_texts, args.threads, args.batch_size, timed=False)
    fp32 = calibration["model_bytes"]
    dev = dev[: args.limit or None]
    graphs = {FP32: fp32, DYNAMIC: quantize_onnx(fp32)}
    for name, ops in STATIC_OPS.items():
        graphs[name] = quantize_static_graph(fp32, calibration["calls"], ops, args.calibrate_method)
        print(f"{name}: quantized", flush=True)
    test_calls = record_calls(export, [d.text for d in test], args.threads, args.batch_size, timed=False)["calls"]
    reference = hidden_states(fp32, test_calls)

    nlp = spacy.load(export)
    (encoder,) = bertprod_encoders(nlp).values()
    holder = onnx_session(encoder)
    accuracy: Dict[str, Dict[str, float]] = {}
    for name, graph in graphs.items():
        holder.set_model(graph, "onnx")
        dev_f = nlp.evaluate(text_examples(nlp, dev), batch_size=args.batch_size)["ents_f"]
        test_f = nlp.evaluate(text_examples(nlp, test), batch_size=args.batch_size)["ents_f"]
        states = reference if name == FP32 else hidden_states(graph, test_calls)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(states, reference))
        accuracy[name] = {"dev_f": dev_f, "test_f": test_f, "max_hidden_diff": diff, "model_mb": len(graph) / 2**20}
        print(f"{name}: dev F {dev_f:.4f}, test F {test_f:.4f}, max hidden-state difference from fp32 {diff:.3f}, {len(graph) / 2**20:.1f} MB", flush=True)

    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in graphs}
    with tempfile.TemporaryDirectory() as tmp:
        calls_file = Path(tmp) / "calls.npz"
        save_calls(test_calls, calls_file)
        files = {}
        for i, (name, graph) in enumerate(graphs.items()):
            files[name] = Path(tmp) / f"variant{i}.onnx"
            files[name].write_bytes(graph)
        for repeat in range(args.repeats):
            for name in graphs:
                result = replay(DEFAULT, files[name], calls_file, len(test_calls), args.threads)
                runs[name].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} | {name}: run {result['run_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    base = statistics.median(r["run_s"] for r in runs[DYNAMIC])
    rows = []
    for name, results in runs.items():
        run_s = spread([r["run_s"] for r in results])
        rows.append({"variant": name, "run_s": run_s, "vs_dynamic": base / run_s["median"], "peak_rss_mb": spread([r["peak_rss_mb"] for r in results]), **accuracy[name]})
        print(f"{name:<40} run {run_s['median']:.2f} s ({run_s['min']:.2f}-{run_s['max']:.2f}), {base / run_s['median']:.2f}x dynamic", flush=True)
    figures = {
        "dev_documents": len(dev),
        "test_documents": len(test),
        "test_words": sum(len(d) for d in test),
        "encoder_calls": len(test_calls),
        "calibration_documents": len(calibration_texts),
        "calibration_calls": len(calibration["calls"]),
        "calibrate_method": args.calibrate_method,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "rows": rows,
    }
    if args.report:
        write_report(args.report, figures, note=args.note, models={"bertprod_ner": args.model})


if __name__ == "__main__":
    main()
