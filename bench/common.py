"""Helpers shared by the benchmark scripts: the machine, timing, the
spacy-transformers baselines."""

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, TypeVar

import spacy
from tqdm import tqdm

T = TypeVar("T")


def describe() -> str:
    """One line naming the machine a benchmark ran on."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} ({torch.get_num_threads()} threads) | {gpu} | Python {platform.python_version()}"


#: Committed result files: one small JSON per reported run, the source of
#: every figure in the README (tests/test_readme_figures.py checks the tables).
REPORTED = Path(__file__).resolve().parent / "reported"


def stat_cpu_seconds(path: str) -> float:
    """User plus system CPU seconds from a /proc stat file (a process's
    `/proc/PID/stat` or a thread's `/proc/PID/task/TID/stat`); OSError once
    it has gone."""
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def isa_flags() -> List[str]:
    """The CPU's SIMD flags that int8 and fp32 speed depend on (from lscpu)."""
    try:
        flags = open("/proc/cpuinfo", encoding="utf8").read().split("flags", 1)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
    return [f for f in wanted if f in flags]


def git_commit() -> str:
    """The commit the running benchmark started at (read when this module is
    first imported): a run lasts hours and the checkout may move on meanwhile,
    but the code it runs is what was there at its start."""
    return STARTED_AT


def checkout_commit() -> str:
    """The checkout's commit, with "+dirty" when tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


STARTED_AT = checkout_commit()

#: written by a bench script into the folder it trained or distilled a model
#: in: the command, commit and date that made it, so a report can say how to
#: make the model again
MADE_BY = "bench_made_by.json"
#: spaCy's training log (one JSON line per evaluation), asked for by the bench
#: scripts that train (`training.logger.output_file`)
TRAIN_LOG = "train_log.jsonl"


def command_line() -> str:
    return " ".join(["python"] + sys.argv)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def record_made_by(folder: Path, **facts: Any) -> None:
    """Say in `folder` (a training or distillation output folder) which
    command at which commit made the model in it, with `facts` (e.g. the
    step model-best was taken at and its dev score)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"command": command_line(), "git_commit": git_commit(), "date": utc_now(), **facts}
    (folder / MADE_BY).write_text(json.dumps(record, indent=2) + "\n", encoding="utf8")


def built_in_run(how: str) -> Dict[str, Any]:
    """The provenance of a model the bench script builds in the run itself
    (no training folder): this command and commit make it again."""
    return {"command": command_line(), "git_commit": git_commit(), "how": how}


def best_logged_step(log: Path) -> Optional[Dict[str, Any]]:
    """The evaluation of highest score in a spaCy training log (what
    model-best holds): its step and score; None without a log."""
    if not log.exists():
        return None
    lines = [json.loads(line) for line in log.read_text(encoding="utf8").splitlines() if line.strip()]
    scored = [line for line in lines if line.get("score") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda line: line["score"])
    return {"best_step": best["step"], "best_dev_score": best["score"], "evaluations": len(scored)}


def model_provenance(path: Path) -> Dict[str, Any]:
    """How the pipeline at `path` was made, from its training output folder
    (`path` or, for model-best/model-last, its parent): the bench command and
    commit that made it (MADE_BY), the step model-best was taken at and its
    dev score (the training log), and the dev scores spaCy saved in its
    meta.json. Raises SystemExit when no record says how to make it: a figure
    must not come from a model only an unrecorded folder holds."""
    path = Path(path)
    provenance: Dict[str, Any] = {"path": str(path)}
    for folder in (path, path.parent):
        if (folder / MADE_BY).exists():
            provenance.update(json.loads((folder / MADE_BY).read_text(encoding="utf8")))
        best = best_logged_step(folder / TRAIN_LOG)
        if best and "best_step" not in provenance:
            provenance.update(best)
    meta = path / "meta.json"
    if meta.exists():
        performance = json.loads(meta.read_text(encoding="utf8")).get("performance", {})
        provenance["meta_performance"] = {k: v for k, v in performance.items() if isinstance(v, (int, float))}
    if "command" not in provenance:
        raise SystemExit(
            f"{path} has no {MADE_BY} beside it, so nothing says how it was made: train it with the bench script that "
            "records it (bench/conll_ner.py, bench/sst2_textcat.py, bench/squad_qa.py, bench/production.py for students) "
            "or pass a model that has one"
        )
    return provenance


def write_report(name: str, figures: Dict[str, Any], note: str = "", models: Optional[Dict[str, Any]] = None, rows_commits: Optional[Dict[str, str]] = None) -> Path:
    """Write bench/reported/<name>.json: the command, commit, machine, date and
    figures of one run, and for each model the run used (label -> path, or a
    dict saying how the script built it in the run) how it was made.
    `rows_commits` names the commit of each row that ran at another commit
    than the report's. Commit the file together with the README rows it backs."""
    REPORTED.mkdir(parents=True, exist_ok=True)
    made = {label: model if isinstance(model, dict) else model_provenance(Path(model)) for label, model in (models or {}).items()}
    report = {
        "command": command_line(),
        "git_commit": git_commit(),
        "machine": describe(),
        "isa_flags": isa_flags(),
        "date": utc_now(),
        "note": note,
        "models": made,
        "rows_commits": rows_commits or {},
        "figures": figures,
    }
    path = REPORTED / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf8")
    print(f"result file: {path}", flush=True)
    return path


def save_result(out: Path, result: Dict[str, Any], report: str = "", models: Optional[Dict[str, Any]] = None) -> None:
    """A benchmark's figures: out/result.json (ignored), and with `report`
    the committed bench/reported/<report>.json as well."""
    (out / "result.json").write_text(json.dumps(result, indent=2))
    if report:
        write_report(report, result, models=models)


def read_sst2_test(path: Path, nlp) -> list:
    """The labelled SST-2 test split, its PTB bracket tokens written as GLUE's
    train and dev files write them."""
    from spacy_bertprod.training.converters import sst2_to_docs

    docs = sst2_to_docs(path, nlp)
    fixed = [nlp.make_doc(d.text.replace("-lrb-", "(").replace("-rrb-", ")")) for d in docs]
    for new, old in zip(fixed, docs):
        new.cats = dict(old.cats)
    return fixed


def spread(values: Sequence[float]) -> Dict[str, float]:
    """The median of repeated measurements with their min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def progress(items: Iterable[T], total: Optional[int] = None, desc: str = "") -> Iterable[T]:
    """A progress bar on stderr when it is a terminal (a long timing loop
    is otherwise minutes of silence); the items unchanged in logs, so a
    report's run pays nothing for it."""
    if not sys.stderr.isatty():
        return items
    return tqdm(items, total=total, desc=desc, unit="doc", leave=False, mininterval=0.5, dynamic_ncols=True)


def time_pipe(nlp, texts: Sequence[str], batch_size: int, repeats: int) -> float:
    """Best-of-`repeats` wall time of nlp.pipe over texts (after a warm-up)."""
    list(nlp.pipe(texts[:20], batch_size=batch_size))
    best = float("inf")
    for repeat in range(repeats):
        start = time.perf_counter()
        for _doc in progress(nlp.pipe(texts, batch_size=batch_size), total=len(texts), desc=f"nlp.pipe {repeat + 1}/{repeats}"):
            pass
        best = min(best, time.perf_counter() - start)
    return best


TRANSFORMER = """
[components.transformer]
factory = "transformer"
max_batch_items = 4096

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "{name}"
mixed_precision = false
tokenizer_config = {{"use_fast": true}}

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96
"""

LISTENER = """
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
pooling = {{"@layers":"reduce_mean.v1"}}
upstream = "*"
"""

ST_HEADS = {
    "ner": """
[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = false
nO = null

[components.ner.model.tok2vec]
"""
    + LISTENER,
    "textcat": """
[components.textcat]
factory = "textcat"

[components.textcat.model]
@architectures = "spacy.TextCatReduce.v1"
exclusive_classes = true
use_reduce_first = false
use_reduce_last = false
use_reduce_max = false
use_reduce_mean = true
nO = null

[components.textcat.model.tok2vec]
"""
    + LISTENER,
}


def spacy_transformers_pipeline(name: str, heads: List[str], examples) -> "spacy.Language":
    """`transformer` + the given heads listening to it, initialized on
    `examples` (the heads are untrained: only speed is measured with it)."""
    text = '[nlp]\nlang = "en"\npipeline = ["transformer", ' + ", ".join(f'"{h}"' for h in heads) + "]\nbatch_size = 32\n\n[components]\n"
    text += TRANSFORMER.format(name=name) + "".join(ST_HEADS[h].format() for h in heads)
    config = spacy.util.load_config_from_str(text)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize(lambda: examples(nlp))
    return nlp
