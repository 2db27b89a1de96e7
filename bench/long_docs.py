"""Memory and time of `bertprod_ner` on one long document.

For each size (characters of real text: the CoNLL-2003 test documents joined
by blank lines and repeated), a fresh subprocess builds `spacy.blank("en")` +
`bertprod_ner` with its default model (the embedded MiniLM, default window),
initializes it on a few examples (labels PER/LOC/ORG/MISC; the head is
untrained: only memory and speed are measured), warms up on a short doc, and
runs `nlp(text)` once. It reports the RSS before the call, the growth of the
peak RSS during it (the kernel's high-water mark, reset just before) and the
wall time.

`--old-commit C --old-sizes N ...` also runs those sizes with the package
as it was at commit C (its `spacy_bertprod` from `git archive`), for
comparison.

    python bench/long_docs.py [--sizes 50000 200000 1000000] [--threads 2] [--report long_docs]
        [--old-commit bf0a8fe --old-sizes 50000]
"""

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
# ../shared beside a checkout, ../../shared beside a worktree under wt/
CONLL_TEST = next(
    (p for p in (ROOT.parent / "shared/datasets/conll2003/test.txt", ROOT.parent.parent / "shared/datasets/conll2003/test.txt") if p.exists()),
    ROOT.parent / "shared/datasets/conll2003/test.txt",
)
LABELS = ("PER", "LOC", "ORG", "MISC")


def conll_text(path: Path, n_chars: int) -> str:
    """`n_chars` characters of CoNLL-2003 documents joined by blank lines,
    repeated as often as needed, cut at a space."""
    from spacy_bertprod.training.converters import conll_to_docs

    docs = [doc.text for doc in conll_to_docs(path)]
    parts, size, i = [], 0, 0
    while size < n_chars:
        parts.append(docs[i % len(docs)])
        size += len(parts[-1]) + 2
        i += 1
    text = "\n\n".join(parts)[:n_chars]
    return text[: text.rfind(" ")] if len(text) == n_chars and " " in text else text


def _status(field: str) -> int:
    """A /proc/self/status memory field in bytes."""
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(n_chars: int, data: Path, threads: int) -> Dict[str, Any]:
    """Build, initialize and warm up the pipeline, then time `nlp(text)` and
    the growth of the peak RSS it causes."""
    import spacy
    import torch
    from spacy.training import Example

    from spacy_bertprod.training.converters import conll_to_docs

    torch.set_num_threads(threads)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("bertprod_ner")
    for label in LABELS:
        ner.add_label(label)
    gold = [d for d in conll_to_docs(data) if len(d.ents)][:4]
    examples = [Example(nlp.make_doc(d.text), d) for d in gold]
    nlp.initialize(lambda: examples)
    nlp(gold[0].text)  # warm-up
    text = conll_text(data, n_chars)
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    start = time.perf_counter()
    doc = nlp(text)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    return {
        "chars": len(text),
        "tokens": len(doc),
        "entities": len(doc.ents),
        "rss_before_mib": round(before / 2**20, 1),
        "peak_growth_mib": round((peak - before) / 2**20, 1),
        "seconds": round(seconds, 2),
        "words_per_s": round(len(doc) / seconds),
    }


def run_child(n_chars: int, args: argparse.Namespace, package: Optional[Path]) -> Dict[str, Any]:
    """`measure` in a fresh interpreter (the package from `package` if given)."""
    import os

    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = str(package) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", str(n_chars), "--data", str(args.data), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"chars": n_chars, "error": (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def export_package(commit: str, into: Path) -> Path:
    """The `spacy_bertprod` package as it was at `commit`, under `into`."""
    archive = into / "old.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit, "spacy_bertprod"], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def table(rows: List[Dict[str, Any]]) -> str:
    head = f"{'code':<6} {'chars':>9} {'tokens':>8} {'growth MiB':>11} {'seconds':>8} {'words/s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['code']:<6} {r['chars']:>9} failed: {r['error']}")
        else:
            lines.append(f"{r['code']:<6} {r['chars']:>9} {r['tokens']:>8} {r['peak_growth_mib']:>11} {r['seconds']:>8} {r['words_per_s']:>8}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 1_000_000])
    parser.add_argument("--old-commit", default="", help="also run --old-sizes with the package at this commit")
    parser.add_argument("--old-sizes", type=int, nargs="*", default=[50_000])
    parser.add_argument("--data", default=str(CONLL_TEST))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="added to the report (e.g. what else ran on the machine)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, Path(args.data), args.threads)), flush=True)
        return
    from common import built_in_run, describe, write_report

    print("machine:", describe(), flush=True)
    rows = []
    for n in args.sizes:
        rows.append({"code": "new", **run_child(n, args, None)})
        print(rows[-1], flush=True)
    if args.old_commit:
        with tempfile.TemporaryDirectory() as tmp:
            package = export_package(args.old_commit, Path(tmp))
            for n in args.old_sizes:
                rows.append({"code": "old", "commit": args.old_commit, **run_child(n, args, package)})
                print(rows[-1], flush=True)
    print(table(rows))
    note = (
        "bertprod_ner default model (embedded MiniLM, window 256 / stride 192, input casing), untrained head; "
        "one nlp(text) per fresh subprocess after a warm-up; growth = peak RSS (VmHWM reset before the call) "
        f"- RSS before; torch threads {args.threads}. {args.note}"
    )
    if args.report:
        model = built_in_run("bertprod_ner's default model (the embedded MiniLM), head initialised and untrained, built in each child process")
        write_report(args.report, {"rows": rows}, note=note.strip(), models={"bertprod_ner": model})


if __name__ == "__main__":
    main()
