"""The teacher's soft targets, computed once for a distillation.

A student whose inputs are the teacher's own spaCy tokens (a CNN student)
trains for many epochs over the same texts; running a transformer teacher
at every step is most of the cost. `cache_teacher` runs each teacher
component once over every training example (what the student component's
`distillation_inputs` gives it to score) and keeps the scores in memory as
float16, one array per input doc. `CachedTeacher` then stands in for the
teacher pipeline in the loop: its components' `model.predict(docs)` looks the
scores up, so the components' `distill` is unchanged.

Teacher predictions have no dropout, so a cached score is the one the
teacher would give at that step (to float16 precision). Hidden-state
matching needs the live teacher and is not cached.
"""

import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words

from ..errors import Errors
from ..pipeline.distillation import Distillable


class CachedScores:
    """A teacher component's scores by input doc (`predict` looks them up)."""

    def __init__(self, component: str, ops: Any) -> None:
        self.component = component
        self.ops = ops
        self.per_doc: Dict[int, np.ndarray] = {}
        self.rows = False  # the teacher gave one array with a row per doc, not a list
        self._docs: List[Doc] = []  # keeps the docs (and so their ids) alive

    def add(self, docs: Sequence[Any], scores: Any) -> None:
        if not all(isinstance(doc, Doc) for doc in docs):
            raise ValueError(Errors.E189.format(component=self.component, why="its inputs are not one doc per example"))
        if isinstance(scores, (list, tuple)) and len(scores) == len(docs):
            parts = list(scores)
        elif hasattr(scores, "shape") and len(scores.shape) == 2 and scores.shape[0] == len(docs):
            parts, self.rows = list(scores), True
        else:
            raise ValueError(Errors.E189.format(component=self.component, why="its scores are not one array (or row) per input doc"))
        for doc, part in zip(docs, parts):
            self.per_doc[id(doc)] = self.ops.to_numpy(part).astype("float16")
            self._docs.append(doc)

    def predict(self, docs: Sequence[Doc]) -> Any:
        try:
            parts = [self.per_doc[id(doc)].astype("float32") for doc in docs]
        except KeyError:
            raise ValueError(Errors.E189.format(component=self.component, why="a training doc was not in the cache it was built on")) from None
        if self.rows:
            return self.ops.asarray2f(np.stack(parts))
        return [self.ops.asarray(part) for part in parts]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.per_doc.values())


class CachedPipe:
    """A teacher component whose model answers from the cache."""

    def __init__(self, name: str, model: CachedScores) -> None:
        self.name = name
        self.model = model


class CachedTeacher:
    """What the distillation loop asks of the teacher pipeline, answered from
    the cache: `pipe_names`, `get_pipe`, `meta`."""

    def __init__(self, teacher: Language, pipes: Dict[str, CachedPipe]) -> None:
        self.meta = teacher.meta
        self.pipe_names = list(pipes)
        self._pipes = pipes

    def get_pipe(self, name: str) -> CachedPipe:
        return self._pipes[name]

    @property
    def nbytes(self) -> int:
        return sum(pipe.model.nbytes for pipe in self._pipes.values())


def cache_teacher(teacher: Language, student: Language, examples: List[Example], *, batch_words: int = 2000, log: Callable[[str], None] = print) -> CachedTeacher:
    """Run each teacher component once over `examples` (what the student
    component scores for them) and keep its scores; logs progress about
    every tenth of the words."""
    pipes: Dict[str, CachedPipe] = {}
    total = sum(len(eg.predicted) for eg in examples)
    for name, pipe in student.components:
        if not isinstance(pipe, Distillable) or name not in teacher.pipe_names:
            continue
        inputs_of = getattr(pipe, "distillation_inputs", None)
        if not callable(inputs_of):
            raise ValueError(Errors.E189.format(component=name, why="it does not say what it scores (distillation_inputs)"))
        model = teacher.get_pipe(name).model
        cached = CachedScores(name, model.ops)
        done, next_log, start = 0, total / 10, time.perf_counter()
        for batch in minibatch_by_words(examples, size=batch_words, discard_oversize=False, get_length=lambda eg: len(eg.predicted)):
            _, inputs = inputs_of(batch)
            if inputs:
                cached.add(inputs, model.predict(inputs))
            done += sum(len(eg.predicted) for eg in batch)
            if done >= next_log or done == total:
                seconds = time.perf_counter() - start
                log(f"teacher cache {name}: {done:,}/{total:,} words, {done / max(seconds, 1e-9):,.0f} words/s")
                next_log += total / 10
        pipes[name] = CachedPipe(name, cached)
    return CachedTeacher(teacher, pipes)
