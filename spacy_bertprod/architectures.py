"""Registered architectures. Names are versioned: a published `vN` never
changes; a changed architecture is added beside it as `vN+1`."""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, Softmax_v2, chain, with_array
from thinc.types import Floats2d

from .encoder import build_encoder
from .errors import Errors
from .pooling import doc_pooler, is_bertprod_encoder, token_mean_pooler
from .qa_model import build_qa_model


encoder_v1 = registry.architectures("bertprod.Encoder.v1")(build_encoder)


@registry.architectures("bertprod.TokenClassifier.v1")
def token_classifier_v1(
    encoder: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    dropout: float = 0.1,
) -> Model[List[Doc], List[Floats2d]]:
    """Encoder + dropout + softmax over tags, per spaCy token."""
    output = Softmax_v2(nO=nO, normalize_outputs=True)
    model = chain(encoder, with_array(chain(Dropout(dropout), output)))
    model.set_ref("encoder", encoder)
    model.set_ref("output", output)
    return model


@registry.architectures("bertprod.TextClassifier.v1")
def text_classifier_v1(
    encoder: Model,
    pooling: str = "cls",
    nO: Optional[int] = None,
    dropout: float = 0.1,
) -> Model[List[Doc], Floats2d]:
    """Doc vector + dropout + linear layer giving one logit per label.

    encoder: a bertprod encoder (pooling "cls" or "mean" over its wordpieces)
    or any layer giving token vectors, such as a `spacy.Tok2VecListener.v1` on
    a shared encoder (pooling "mean" over tokens).
    """
    if is_bertprod_encoder(encoder):
        pooled = doc_pooler(encoder, pooling)
    elif pooling == "mean":
        pooled = chain(encoder, token_mean_pooler())
    else:
        raise ValueError(Errors.E014.format(pooling=pooling))
    output = Linear(nO=nO)
    model = chain(pooled, Dropout(dropout), output)
    model.set_ref("encoder", encoder)
    model.set_ref("output", output)
    return model


@registry.architectures("bertprod.QuestionAnswerer.v1")
def question_answerer_v1(
    encoder: Model[List[Doc], List[Floats2d]],
    max_question_len: int = 64,
    doc_stride: int = 128,
) -> Model:
    """Start/end logits over context windows for (doc, question) pairs.

    encoder: a bertprod encoder; its `window` is the maximum sequence length.
    max_question_len: question wordpieces kept.
    doc_stride: wordpieces shared by neighbouring context windows.
    """
    return build_qa_model(encoder, max_question_len, doc_stride)
