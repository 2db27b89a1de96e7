"""Production-speed table: teacher, int8, distilled student, ONNX Runtime,
spacy-transformers and the Hugging Face pipeline, side by side.

For each task (NER on CoNLL-2003 test, textcat on the SST-2 test split, QA
on the first --qa-dev-limit SQuAD dev-v1.1 questions) and each row, in one run on one machine:
accuracy (entity F1 / accuracy / EM and F1), words/s (questions/s for QA)
with `nlp.pipe` at batch 32, single-doc latency p50 and p95 (`nlp(text)`),
and the size of the saved pipeline (or model) folder.

Rows: teacher fp32 . teacher int8 (torch dynamic) . student fp32 . student
int8 . teacher on ONNX Runtime fp32 and int8 . student on ONNX Runtime int8 .
spacy-transformers `transformer` + head with the teacher's fine-tuned encoder
weights (its heads are untrained: speed only) . the Hugging Face pipeline with
the teacher's weights (QA: the exported span head, scored; NER and textcat:
`*ForTokenClassification` / `*ForSequenceClassification` on the teacher's
encoder, speed only, since bertprod's BILUO tags and CLS head do not map onto
those pipelines' decoding exactly).

Teachers are the pipelines the other benchmarks train (bench/results/...).
Students are distilled here when their folder does not exist yet, with
`spacy_bertprod.training.distiller` (settings per task in `Task.distill`; train data as
below). Their model-best is selected on data that is never scored: CoNLL dev
(NER), GLUE SST-2 dev (textcat), and the last QA_SELECT SQuAD dev questions,
whole contexts, which the scored questions never reach (QA).

    python bench/production.py [--tasks ner,textcat,qa] [--qa-dev-limit 1000]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import spacy
import torch
from spacy.scorer import get_ner_prf
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, progress, read_sst2_test, record_made_by, spacy_transformers_pipeline, write_report  # noqa: E402

from spacy_bertprod.compression.hf_export import qa_to_hf, save_hf_tokenizer  # noqa: E402
from spacy_bertprod.compression.pipelines import onnx_pipeline, quantize_pipeline  # noqa: E402
from spacy_bertprod.layers.transformer import hf_module  # noqa: E402
from spacy_bertprod.pipeline.squad_metrics import squad_scores  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs, sst2_to_docs  # noqa: E402
from spacy_bertprod.training.distiller import copy_pipeline, distill, make_student  # noqa: E402
from spacy_bertprod.training.squad import make_examples, read_squad  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench/results"


def folder_size(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def saved_size(nlp) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        nlp.to_disk(tmp)
        return folder_size(Path(tmp))


def latency(run: Callable[[Any], Any], inputs: List[Any]) -> Dict[str, float]:
    for x in inputs[:3]:
        run(x)
    times = []
    for x in inputs:
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return {"p50_ms": float(np.percentile(times, 50) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000)}


def timed(run: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def teacher_encoder_dir(nlp, component: str, path: Path) -> Path:
    """The teacher's fine-tuned encoder as a plain HF model folder."""
    encoder = nlp.get_pipe(component).model.get_ref("encoder")
    hf_module(encoder).save_pretrained(str(path))
    save_hf_tokenizer(encoder, path)
    return path


# -- tasks -------------------------------------------------------------------
class Task:
    name = ""
    component = ""
    unit = "words"
    #: how this task's student is distilled (the command line may override)
    distill = {"layers": "0,2,3,5", "steps": 1000, "batch_words": 1000, "lr": 1e-4}

    def __init__(self, args: argparse.Namespace, data: Path):
        self.args = args
        self.data = data

    def accuracy_and_speed(self, nlp) -> Dict[str, Any]:
        raise NotImplementedError

    # tasks on plain texts (NER, textcat) set `texts` and `n_words`
    def warm_up(self, nlp) -> None:
        list(nlp.pipe(self.texts[:64], batch_size=32))

    def speed_only(self, nlp) -> Dict[str, Any]:
        """Words per second of a pipeline whose head is untrained (spacy-transformers)."""
        self.warm_up(nlp)
        _, seconds = timed(lambda: list(progress(nlp.pipe(self.texts, batch_size=32), total=len(self.texts))))
        return {"accuracy": "n/a (untrained head)", "score": None, "per_s": self.n_words / seconds}

    def latency(self, nlp) -> Dict[str, float]:
        """One text at a time: p50 and p95 milliseconds."""
        return latency(nlp, self.texts[: self.args.latency_docs])


class NERTask(Task):
    name, component = "ner", "bertprod_ner"
    teacher = RESULTS / "conll/model/model-best"

    def __init__(self, args, data):
        super().__init__(args, data)
        self.gold = conll_to_docs(data / "conll2003/test.txt")
        self.texts = [d.text for d in self.gold]
        self.n_words = sum(len(d) for d in self.gold)

    def train_examples(self, nlp) -> List[Example]:
        docs = conll_to_docs(self.data / "conll2003/train.txt")
        return [Example(nlp.make_doc(d.text), d) for d in docs]

    def dev_examples(self, nlp) -> List[Example]:
        docs = conll_to_docs(self.data / "conll2003/dev.txt")
        return [Example(nlp.make_doc(d.text), d) for d in docs]

    def accuracy_and_speed(self, nlp):
        docs, seconds = timed(lambda: list(progress(nlp.pipe(self.texts, batch_size=32), total=len(self.texts))))
        f = get_ner_prf([Example(p, g) for p, g in zip(docs, self.gold)])["ents_f"]
        return {"accuracy": f"F1 {f * 100:.2f}", "score": f * 100, "per_s": self.n_words / seconds}

    def hf(self, teacher, tmp: Path):
        from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

        path = teacher_encoder_dir(teacher, self.component, tmp / "hf-ner")
        n_tags = teacher.get_pipe(self.component).model.get_ref("output").get_dim("nO")
        model = AutoModelForTokenClassification.from_pretrained(str(path), num_labels=n_tags)
        tok = AutoTokenizer.from_pretrained(str(path))
        window = teacher.get_pipe(self.component).model.get_ref("encoder").attrs["window"]
        tok.model_max_length = window
        pipe = pipeline("token-classification", model=model, tokenizer=tok, device=-1, stride=window // 4, aggregation_strategy="first")
        list(pipe(self.texts[:4], batch_size=32))
        _, seconds = timed(lambda: pipe(self.texts, batch_size=32))
        lat = latency(lambda t: pipe(t), self.texts[: self.args.latency_docs])
        return {"accuracy": "n/a (speed only)", "score": None, "per_s": self.n_words / seconds, **lat, "size_mb": folder_size(path)}

    def spacy_transformers(self, teacher, tmp: Path):
        path = teacher_encoder_dir(teacher, self.component, tmp / "st-ner")
        nlp = spacy_transformers_pipeline(str(path), ["ner"], lambda n: [Example(n.make_doc(g.text), g) for g in self.gold[:20]])
        return {**self.speed_only(nlp), **self.latency(nlp), "size_mb": saved_size(nlp)}


class TextcatTask(Task):
    name, component = "textcat", "bertprod_textcat"
    teacher = RESULTS / "sst2/model/model-best"

    def __init__(self, args, data):
        super().__init__(args, data)
        self.gold = read_sst2_test(data / "sst2/test.tsv", spacy.blank("en"))
        self.texts = [d.text for d in self.gold]
        self.n_words = sum(len(d) for d in self.gold)

    def train_examples(self, nlp):
        docs = sst2_to_docs(self.data / "sst2/glue/train.tsv", nlp, limit=self.args.textcat_train_limit)
        return [Example(nlp.make_doc(d.text), d) for d in docs]

    def dev_examples(self, nlp):
        docs = sst2_to_docs(self.data / "sst2/glue/dev.tsv", nlp)
        return [Example(nlp.make_doc(d.text), d) for d in docs]

    def accuracy_and_speed(self, nlp):
        docs, seconds = timed(lambda: list(progress(nlp.pipe(self.texts, batch_size=32), total=len(self.texts))))
        acc = np.mean([max(p.cats, key=p.cats.get) == max(g.cats, key=g.cats.get) for p, g in zip(docs, self.gold)])
        return {"accuracy": f"acc {acc * 100:.2f}", "score": acc * 100, "per_s": self.n_words / seconds}

    def hf(self, teacher, tmp: Path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        path = teacher_encoder_dir(teacher, self.component, tmp / "hf-textcat")
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
        tok = AutoTokenizer.from_pretrained(str(path))
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1, truncation=True)
        list(pipe(self.texts[:4], batch_size=32))
        _, seconds = timed(lambda: pipe(self.texts, batch_size=32))
        lat = latency(lambda t: pipe(t), self.texts[: self.args.latency_docs])
        return {"accuracy": "n/a (speed only)", "score": None, "per_s": self.n_words / seconds, **lat, "size_mb": folder_size(path)}

    def spacy_transformers(self, teacher, tmp: Path):
        path = teacher_encoder_dir(teacher, self.component, tmp / "st-textcat")
        nlp = spacy_transformers_pipeline(str(path), ["textcat"], lambda n: [Example(n.make_doc(g.text), g) for g in self.gold[:50]])
        return {**self.speed_only(nlp), **self.latency(nlp), "size_mb": saved_size(nlp)}


#: SQuAD dev questions (from the end, whole contexts) that select the QA
#: student and are never scored.
QA_SELECT = 300


def split_squad_dev(rows: List[dict], limit: int, n_select: int = QA_SELECT):
    """(scored, selection): the selection is the last `n_select` questions,
    widened to whole contexts; the scored questions are the first `limit`
    (0: all) of the rest."""
    cut = len(rows) - n_select
    while 0 < cut < len(rows) and rows[cut]["context"] == rows[cut - 1]["context"]:
        cut -= 1
    rest = rows[:cut]
    return rest[: limit or None], rows[cut:]


class QATask(Task):
    name, component, unit = "qa", "bertprod_qa", "questions"
    teacher = RESULTS / "squad/model/model-last"
    # a 4-layer student lost 4.8 F1 after 1,500 steps: QA keeps 5 layers
    distill = {"layers": "0,1,2,4,5", "steps": 1500, "batch_words": 2000, "lr": 1.5e-4}

    def __init__(self, args, data):
        super().__init__(args, data)
        self.rows, self.select_rows = split_squad_dev(read_squad(data / "squad/dev-v1.1.json"), args.qa_dev_limit)
        self.golds = [[a[2] for a in r["answers"]] for r in self.rows]
        self.contexts: Dict[str, List[dict]] = {}
        for r in self.rows:
            self.contexts.setdefault(r["context"], []).append(r)

    def train_examples(self, nlp):
        rows = read_squad(self.data / "squad/train-subset-v1.1.json")
        return list(make_examples(nlp, rows))

    def dev_examples(self, nlp):
        return list(make_examples(nlp, self.select_rows))

    def warm_up(self, nlp) -> None:
        list(nlp.pipe(self._docs(nlp, list(self.contexts.items())[:10]), batch_size=6))

    @staticmethod
    def _docs(nlp, groups):
        """Docs made from the raw context strings (spaCy's tokenization is
        part of what is timed, as it is inside the HF pipeline's timer)."""
        for context, group in groups:
            doc = nlp.make_doc(context)
            doc._.questions = [r["question"] for r in group]
            yield doc

    def accuracy_and_speed(self, nlp):
        groups = list(self.contexts.items())
        answered, seconds = timed(lambda: list(progress(nlp.pipe(self._docs(nlp, groups), batch_size=max(32 // 5, 1)), total=len(groups))))
        best: Dict[str, str] = {}
        for doc, group in zip(answered, self.contexts.values()):
            found = {}
            for span in doc.spans["bertprod_qa"]:
                found.setdefault(span._.bertprod_question, span.text)
            for r in group:
                best[r["id"]] = found.get(r["question"], "")
        em, f1 = squad_scores([best[r["id"]] for r in self.rows], self.golds)
        return {"accuracy": f"EM {em * 100:.2f} F1 {f1 * 100:.2f}", "score": f1 * 100, "per_s": len(self.rows) / seconds}

    def latency(self, nlp):
        qa = nlp.get_pipe(self.component)
        pairs = [(nlp.make_doc(r["context"]), r["question"]) for r in self.rows[: self.args.latency_docs]]
        return latency(lambda p: qa.answer(p[0], p[1]), pairs)

    def hf(self, teacher, tmp: Path):
        from transformers import pipeline

        path = qa_to_hf(teacher, tmp / "hf-qa")
        enc = teacher.get_pipe(self.component).model.get_ref("encoder").attrs
        cfg = teacher.get_pipe(self.component).model.attrs
        pipe = pipeline("question-answering", model=str(path), tokenizer=str(path), device=-1)
        kwargs = dict(top_k=1, max_answer_len=30, max_seq_len=enc["window"], doc_stride=cfg["doc_stride"], max_question_len=cfg["max_question_len"])
        # the same warm-up as bertprod_qa's rows get (Task.warm_up: 10 contexts)
        warm = [r for _, group in list(self.contexts.items())[:10] for r in group]
        pipe(question=[r["question"] for r in warm], context=[r["context"] for r in warm], batch_size=32, **kwargs)
        out, seconds = timed(lambda: pipe(question=[r["question"] for r in self.rows], context=[r["context"] for r in self.rows], batch_size=32, **kwargs))
        out = out if isinstance(out, list) else [out]
        em, f1 = squad_scores([o["answer"] for o in out], self.golds)
        lat = latency(lambda r: pipe(question=r["question"], context=r["context"], **kwargs), self.rows[: self.args.latency_docs])
        return {"accuracy": f"EM {em * 100:.2f} F1 {f1 * 100:.2f}", "score": f1 * 100, "per_s": len(self.rows) / seconds, **lat, "size_mb": folder_size(path)}

    def spacy_transformers(self, teacher, tmp: Path):
        return None  # spacy-transformers has no question-answering component


TASKS = {"ner": NERTask, "textcat": TextcatTask, "qa": QATask}


# -- rows ----------------------------------------------------------------------
def student_for(task: Task, teacher, args) -> Path:
    path = Path(args.students) / task.name
    best = path / "model-best"
    if best.exists():
        return best
    settings = {key: getattr(args, f"distill_{key}") or value for key, value in task.distill.items()}
    student = make_student(teacher, layers=[int(x) for x in settings["layers"].split(",")])
    train = task.train_examples(student)
    dev = task.dev_examples(student)
    print(f"  distilling {task.name}: {len(train)} train / {len(dev)} dev examples, {settings}", flush=True)
    start = time.perf_counter()
    best_scores = distill(
        teacher,
        student,
        train,
        dev,
        output=path,
        steps=settings["steps"],
        batch_words=settings["batch_words"],
        learn_rate=settings["lr"],
        eval_every=max(settings["steps"] // 4, 1),
        log=lambda line: print("   ", line, flush=True),
    )
    print(f"  distilled in {time.perf_counter() - start:.0f} s", flush=True)
    teacher_path = str(getattr(args, f"{task.name}_teacher") or task.teacher)
    record_made_by(path, teacher=teacher_path, distill_settings=settings, best_step=best_scores.get("step"), best_dev_score=best_scores.get("score"))
    return best


def measure(task: Task, nlp) -> Dict[str, Any]:
    task.warm_up(nlp)
    row = task.accuracy_and_speed(nlp)
    row.update(task.latency(nlp))
    row["size_mb"] = saved_size(nlp)
    return row


def run_task(task: Task, args, tmp: Path, models: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The task's rows; `models` gets the teacher's and the student's paths."""
    teacher_path = getattr(args, f"{task.name}_teacher") or task.teacher
    teacher = spacy.load(teacher_path)
    student_path = student_for(task, teacher, args)
    models.update({f"{task.name} teacher": teacher_path, f"{task.name} student": student_path})
    student = spacy.load(student_path)
    student_encoder = student.get_pipe(task.component).model.get_ref("encoder")
    n_layers = f"{hf_module(student_encoder).config.num_hidden_layers}L"
    variants: List[tuple] = [("teacher fp32", lambda: teacher)]
    variants.append(("teacher int8 (torch)", lambda: _converted(teacher, quantize_pipeline)))
    variants.append((f"student {n_layers} fp32", lambda: student))
    variants.append((f"student {n_layers} int8 (torch)", lambda: _converted(student, quantize_pipeline)))
    variants.append(("teacher ONNX fp32", lambda: _converted(teacher, lambda n: onnx_pipeline(n, int8=False))))
    variants.append(("teacher ONNX int8", lambda: _converted(teacher, lambda n: onnx_pipeline(n, int8=True))))
    variants.append((f"student {n_layers} ONNX int8", lambda: _converted(student, lambda n: onnx_pipeline(n, int8=True))))
    rows = []
    for label, make in variants:
        nlp = make()
        row = {"task": task.name, "row": label, **measure(task, nlp)}
        print(format_row(row, task.unit), flush=True)
        rows.append(row)
    for label, fn in (("spacy-transformers (teacher encoder)", task.spacy_transformers), ("HF pipeline (teacher weights)", task.hf)):
        row = fn(teacher, tmp)
        if row is None:
            print(f"  {label:<38} n/a (no such component)", flush=True)
            continue
        row = {"task": task.name, "row": label, **row}
        print(format_row(row, task.unit), flush=True)
        rows.append(row)
    return rows


def _converted(nlp, convert: Callable) -> Any:
    copy = copy_pipeline(nlp)
    convert(copy)
    return copy


def format_row(row: Dict[str, Any], unit: str) -> str:
    return f"  {row['row']:<38} {row['accuracy']:<22} {row['per_s']:9.1f} {unit}/s  p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  {row['size_mb']:7.1f} MB"


def markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| task | row | accuracy | throughput | p50 ms | p95 ms | size MB | vs teacher | vs spacy-transformers |", "|---|---|---|---|---|---|---|---|---|"]
    for task in dict.fromkeys(r["task"] for r in rows):
        group = [r for r in rows if r["task"] == task]
        unit = "q/s" if task == "qa" else "words/s"
        base = next(r for r in group if r["row"] == "teacher fp32")
        st = next((r for r in group if r["row"].startswith("spacy-transformers")), None)
        for r in group:
            delta = f"{r['score'] - base['score']:+.2f} pts, {r['per_s'] / base['per_s']:.2f}x" if r["score"] is not None else f"{r['per_s'] / base['per_s']:.2f}x"
            vs_st = f"{r['per_s'] / st['per_s']:.2f}x" if st else "n/a"
            lines.append(f"| {task} | {r['row']} | {r['accuracy']} | {r['per_s']:.1f} {unit} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['size_mb']:.1f} | {delta} | {vs_st} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets"))
    parser.add_argument("--tasks", default="ner,textcat,qa")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-docs", type=int, default=100, help="docs (questions) timed one at a time")
    parser.add_argument("--qa-dev-limit", type=int, default=1000, help="SQuAD dev questions (0: all 10,570)")
    for name, cls in TASKS.items():
        parser.add_argument(f"--{name}-teacher", default=None, help=f"trained pipeline (default {cls.teacher.relative_to(ROOT)})")
    parser.add_argument("--students", default=str(RESULTS / "students_final"), help="distilled students, one folder per task (made when missing)")
    settings = "; ".join(f"{cls.name}: {cls.distill}" for cls in TASKS.values())
    parser.add_argument("--distill-layers", default=None, help=f"teacher layers the students keep, e.g. 0,2,3,5 (default per task: {settings})")
    parser.add_argument("--distill-steps", type=int, default=None)
    parser.add_argument("--distill-batch-words", type=int, default=None)
    parser.add_argument("--distill-lr", type=float, default=None)
    parser.add_argument("--textcat-train-limit", type=int, default=20000)
    parser.add_argument("--students-only", action="store_true", help="distil the missing students, then stop (nothing timed)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    for name in args.tasks.split(",") if args.report else ():
        # before the run: a report needs each teacher's and existing student's record (a new student is recorded when distilled)
        model_provenance(Path(getattr(args, f"{name}_teacher") or TASKS[name].teacher))
        if (Path(args.students) / name / "model-best").exists():
            model_provenance(Path(args.students) / name / "model-best")
    torch.set_num_threads(args.threads)
    print("machine:", describe(), flush=True)
    rows: List[Dict[str, Any]] = []
    models: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = TASKS[name](args, Path(args.data))
            if args.students_only:
                print(f"{name} student:", student_for(task, spacy.load(getattr(args, f"{name}_teacher") or task.teacher), args), flush=True)
                continue
            unit = "questions" if name == "qa" else "words"
            dataset = "CoNLL-2003 test" if name == "ner" else "SST-2 test" if name == "textcat" else f"SQuAD dev-v1.1, first {len(task.rows)} questions"
            print(f"\n{name.upper()} ({dataset}; {unit}/s with nlp.pipe batch 32; latency over {args.latency_docs} single docs)", flush=True)
            rows.extend(run_task(task, args, Path(tmp), models))
    if args.students_only:
        return
    table = markdown(rows)
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "production.json").write_text(json.dumps({"machine": describe(), "args": vars(args), "rows": rows}, indent=2))
    (out / "production.md").write_text(table + "\n")
    if args.report:
        write_report(args.report, {"rows": rows}, models=models)


if __name__ == "__main__":
    main()
