"""`bertprod evaluate-squad`: `spacy evaluate` reads .spacy corpora only; a
bertprod_qa pipeline is scored on SQuAD-format JSON (exact match and F1)."""

from pathlib import Path
from typing import Optional

import spacy
import srsly
from spacy.cli._util import Arg, Opt, setup_gpu
from wasabi import msg

from ..errors import Errors
from ..training.squad import squad_corpus
from ._util import bertprod_cli, coded_errors_exit


@bertprod_cli.command("evaluate-squad")
def evaluate_squad_cli(
    model: str = Arg(..., help="Trained pipeline with a bertprod_qa component (folder or package name)"),
    data_path: Path = Arg(..., help="SQuAD-format JSON (v1.1)", exists=True, dir_okay=False),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write the scores to this JSON file", dir_okay=False),
    limit: int = Opt(0, "--limit", "-l", help="Questions to score (0: all)"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
) -> None:
    """SQuAD exact match and F1 of MODEL on DATA_PATH (the official
    normalization), like `spacy evaluate` for .spacy corpora."""
    setup_gpu(use_gpu)
    with coded_errors_exit():
        scores = evaluate_squad(model, data_path, limit=limit)
    msg.table({"EXACT": f"{scores['qa_exact'] * 100:.2f}", "F1": f"{scores['qa_f1'] * 100:.2f}"}, title=f"{model} on {data_path}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, scores)
        msg.good(f"Saved results to {output}")


def evaluate_squad(model: str, data_path: Path, *, limit: int = 0) -> dict:
    """qa_exact and qa_f1 (0-1) and the number of questions scored."""
    nlp = spacy.load(model)
    if not any(nlp.get_pipe_meta(name).factory == "bertprod_qa" for name in nlp.pipe_names):
        raise ValueError(Errors.E077.format(model=model, pipes=nlp.pipe_names))
    examples = list(squad_corpus(str(data_path), limit=limit)(nlp))
    scores = nlp.evaluate(examples)
    return {"qa_exact": scores["qa_exact"], "qa_f1": scores["qa_f1"], "n_questions": sum(len(eg.reference._.bertprod_qa_gold or []) for eg in examples)}
