"""What `import spacy_bertprod` costs, and what a Ray read task imports,
for this checkout against an earlier commit (`--before`, by default the last
commit before the package import became lazy).

Each measurement is a new interpreter with the tree on PYTHONPATH: the time
of the import inside it (perf_counter around the import statement), the
process's wall time from start to exit, and which heavy packages the import
added to sys.modules. The read task is timed as Ray's worker runs it: ray is
imported first (a worker has it loaded), then the module that holds
`read_rows`, which the worker imports to deserialize the task. The two trees
take turns, `--runs` times each; rows are medians with their min-max.

    python bench/import_time.py --report import_time
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, spread, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: the last commit whose `import spacy_bertprod` imported torch and spaCy
BEFORE = "e13853d"
HEAVY = ("torch", "transformers", "onnxruntime", "spacy", "thinc", "ray")
#: where `read_rows` lived: the function a Ray read task deserializes
READ_MODULE = {"before": "spacy_bertprod.annotate.ray_engine", "after": "spacy_bertprod.annotate.inputs"}

PROBE = """
import sys, time, json
{pre}
already = set(sys.modules)
t = time.perf_counter()
import {module}
seconds = time.perf_counter() - t
print(json.dumps({{"seconds": seconds, "loaded": sorted(m for m in {heavy!r} if m in sys.modules and m not in already)}}))
"""


def export_tree(rev: str, dest: Path) -> Path:
    """The package as it was at `rev` (git archive: no worktree to clean up)."""
    data = subprocess.run(["git", "archive", rev, "spacy_bertprod"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def probe(tree: Path, module: str, pre: str = "") -> Dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre, module=module, heavy=HEAVY)], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"importing {module} from {tree} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.splitlines()[-1])
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BEFORE, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--report", default="", help="write bench/reported/REPORT.json")
    args = parser.parse_args()
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": export_tree(args.before, Path(tmp) / "before"), "after": ROOT}
        cases = {
            "import spacy_bertprod": lambda which: ("spacy_bertprod", ""),
            "Ray read task": lambda which: (READ_MODULE[which], "import ray"),
        }
        runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {case: {"before": [], "after": []} for case in cases}
        for i in range(args.runs):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for case, spec in cases.items():
                for which in order:
                    module, pre = spec(which)
                    runs[case][which].append(probe(trees[which], module, pre))
    rows = []
    for case, by_tree in runs.items():
        for which in ("before", "after"):
            got = by_tree[which]
            row = {
                "case": case,
                "tree": which,
                "commit": args.before if which == "before" else "this checkout",
                "module": READ_MODULE[which] if case == "Ray read task" else "spacy_bertprod",
                "import_s": spread([r["seconds"] for r in got]),
                "process_wall_s": spread([r["wall"] for r in got]),
                "loaded": got[0]["loaded"],
                "runs": [round(r["seconds"], 4) for r in got],
            }
            rows.append(row)
            imp, wall = row["import_s"], row["process_wall_s"]
            print(f"{case:24} {which:6} import {imp['median']:.3f} s ({imp['min']:.3f}-{imp['max']:.3f}), process {wall['median']:.2f} s, loaded {row['loaded']}", flush=True)
    if args.report:
        write_report(args.report, {"runs_each": args.runs, "before": args.before, "rows": rows}, models={})


if __name__ == "__main__":
    main()
