"""Distil a CoNLL-2003 NER student with a record of how it was made.

Runs `python -m spacy bertprod distill TEACHER OUT ARGS...` (every argument
after the teacher and output folders goes to it unchanged), shows its output,
and writes beside the student what the benchmarks' provenance check reads:
bench_made_by.json (this command, commit, the distill command, the teacher's
own record) and train_log.jsonl (each dev evaluation: step and score, so
model-best's step is on record).

    python bench/distill_ner.py bench/results/conll/model/model-best bench/results/students/cnn96 \\
        --student cnn --corpus bench/results/conll/corpus --unlabelled bench/results/unlabelled.txt --steps 4000
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).parent))
from common import TRAIN_LOG, model_provenance, record_made_by  # noqa: E402

#: the distill loop's evaluation line: step, soft, gold, hidden, score, seconds
EVALUATION = re.compile(r"^\s*(\d+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+(\d+)\s*$")


def evaluations(lines: List[str]) -> List[Dict[str, Any]]:
    """The dev evaluations in the distill command's output, as spaCy's training log writes them."""
    found = []
    for line in lines:
        match = EVALUATION.match(line)
        if match:
            step, soft, gold, hidden, score, seconds = match.groups()
            losses = {"soft": float(soft), "gold": float(gold), "hidden": float(hidden)}
            found.append({"step": int(step), "losses": losses, "score": float(score), "seconds": int(seconds)})
    return found


#: the distill command's last word on model-best: its dev score and step
BEST = re.compile(r"best dev score ([-\d.]+) at step (\d+)")


def best_of_run(lines: List[str]) -> Dict[str, Any]:
    """The step model-best was saved at and its dev score, as the distill
    command reports them: the evaluation lines round the scores (to 3
    decimals before, 4 now), so a tie among them does not say which step
    model-best holds."""
    for line in reversed(lines):
        match = BEST.search(line)
        if match:
            return {"best_step": int(match.group(2)), "best_dev_score": float(match.group(1))}
    return {}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) > 1 else 2)
    teacher, out, rest = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    teacher_made = model_provenance(teacher)  # before the run: a student's record needs its teacher's
    command = [sys.executable, "-m", "spacy", "bertprod", "distill", str(teacher), str(out), *rest]
    began = time.perf_counter()
    lines: List[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    if proc.returncode:
        raise SystemExit(proc.returncode)
    logged = evaluations(lines)
    (out / TRAIN_LOG).write_text("".join(json.dumps(e) + "\n" for e in logged), encoding="utf8")
    distill_command = " ".join(["python", "-m", "spacy", "bertprod", "distill", str(teacher), str(out), *rest])
    record_made_by(out, distill_command=distill_command, teacher=teacher_made, seconds=round(time.perf_counter() - began), **best_of_run(lines))


if __name__ == "__main__":
    main()
