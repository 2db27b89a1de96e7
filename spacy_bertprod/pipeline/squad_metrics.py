"""The official SQuAD v1.1 exact-match / F1 metric (same answer
normalisation as the official evaluation script): bertprod_qa's scorer and
`bertprod evaluate-squad` use it."""

import collections
import re
import string
from typing import List, Tuple


# Official SQuAD v1.1 evaluation: answer normalisation, EM and token F1.
def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1_score(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: List[str], golds: List[List[str]]) -> Tuple[float, float]:
    """(exact match, F1), in 0..1, maximised over each question's gold answers.
    A question without gold answers scores 1 only for an empty prediction."""
    em = f1 = 0.0
    for pred, truths in zip(predictions, golds):
        truths = truths or [""]
        em += max(exact_match(pred, t) for t in truths)
        f1 += max(f1_score(pred, t) if t else float(pred == t) for t in truths)
    n = max(len(predictions), 1)
    return em / n, f1 / n
