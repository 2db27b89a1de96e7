"""The JSON of `/v1/process`, as pydantic models: FastAPI validates requests
with them (422 on wrong types) and publishes them as the OpenAPI schema at
`/docs`. The result fields are what `annotations.doc_annotations` gives for
the bertprod components."""

from typing import Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import Errors


class ProcessRequest(BaseModel):
    """Texts to process, and for `bertprod_qa` the questions of each text."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Angela Merkel visited Munich."]}]})

    texts: List[str] = Field(..., description="The texts, each processed as one Doc.")
    questions: Optional[List[List[str]]] = Field(
        None,
        description="Per text, the questions for bertprod_qa (they become `doc._.questions`); [] for a text without questions.",
    )

    @model_validator(mode="after")
    def one_list_per_text(self) -> "ProcessRequest":
        if self.questions is not None and len(self.questions) != len(self.texts):
            raise ValueError(Errors.E124.format(n_texts=len(self.texts), n_questions=len(self.questions)))
        # an empty question fails bertprod_qa (E018), and with it every
        # request of its batch: refuse it here, before it is queued
        for i, qs in enumerate(self.questions or []):
            for j, q in enumerate(qs):
                if not q.strip():
                    raise ValueError(Errors.E132.format(question=j, text=i))
        return self


class Entity(BaseModel):
    """A scored span: character offsets index the text."""

    text: str
    label: str
    start: int = Field(..., description="Character offset of the first character")
    end: int = Field(..., description="Character offset after the last character")
    score: Optional[float] = Field(None, description="Mean probability of the span's tags (NER) or p(start) x p(end) (QA)")


class Answer(Entity):
    """An answer of bertprod_qa to one of the text's questions."""

    question: str


class DocResult(BaseModel):
    """What the pipeline's components produced on one text; a key is there
    only when a component of the pipeline writes it."""

    model_config = ConfigDict(extra="allow")

    entities: Optional[List[Entity]] = Field(None, description="bertprod_ner")
    cats: Optional[Dict[str, float]] = Field(None, description="bertprod_textcat: a score per label")
    labels: Optional[List[str]] = Field(None, description="bertprod_textcat, multi-label: the labels at or above their thresholds")
    answers: Optional[List[Answer]] = Field(None, description="bertprod_qa, for the text's questions")


class ProcessResponse(BaseModel):
    """One result per text, in the order of the request's texts."""

    results: List[DocResult]


class ErrorResponse(BaseModel):
    """A refused or failed request: the coded message says what to do."""

    detail: str
