"""SQuAD-format data: a corpus reader for `spacy train` (the official
exact-match / F1 metric is pipeline/squad_metrics.py, which bertprod_qa's
scorer uses)."""

import collections
import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Union

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

from ..errors import Errors
from ..pipeline import extensions  # noqa: F401


def read_squad(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """Flatten a SQuAD v1.1 / v2.0 file into one dict per question:
    id, question, context, answers [(start_char, end_char, text)], impossible."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf8"))["data"]
        rows = []
        for article in data:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    answers = [(a["answer_start"], a["answer_start"] + len(a["text"]), a["text"]) for a in qa.get("answers", [])]
                    rows.append(
                        {
                            "id": qa["id"],
                            "question": qa["question"],
                            "context": para["context"],
                            "answers": answers,
                            "impossible": bool(qa.get("is_impossible", False)) or not answers,
                        }
                    )
        return rows
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(Errors.E022.format(path=path, err=err)) from err


def make_examples(nlp: Language, rows: Iterable[Dict[str, Any]], per_context: bool = False) -> Iterator[Example]:
    """One Example per question (or per context with all its questions).
    The predicted doc carries `doc._.questions`; the reference doc carries the
    gold answers in `doc._.bertprod_qa_gold` (a list of [(start, end, text)]
    per question) and the question ids in `doc._.bertprod_qa_ids`."""
    groups: Dict[str, List[Dict[str, Any]]] = collections.OrderedDict()
    for i, row in enumerate(rows):
        groups.setdefault(row["context"] if per_context else str(i), []).append(row)
    for group in groups.values():
        context = group[0]["context"]
        predicted = nlp.make_doc(context)
        reference = nlp.make_doc(context)
        questions = [r["question"] for r in group]
        predicted._.questions = list(questions)
        reference._.questions = list(questions)
        reference._.bertprod_qa_gold = [[list(a) for a in r["answers"]] for r in group]
        reference._.bertprod_qa_ids = [r["id"] for r in group]
        yield Example(predicted, reference)


@registry.readers("bertprod.SquadCorpus.v1")
def squad_corpus(path: str, limit: int = 0, per_context: bool = False) -> Callable[[Language], Iterator[Example]]:
    """Read SQuAD-format JSON (v1.1 or v2.0) for `spacy train` / evaluation.
    limit: the first N questions (0: all)."""

    def read(nlp: Language) -> Iterator[Example]:
        rows = read_squad(path)
        if limit:
            rows = rows[:limit]
        yield from make_examples(nlp, rows, per_context=per_context)

    return read
