"""Registered architectures: thin wrappers over the builders in `layers/`
and `qa_head.py`. Names are versioned: a published `vN` never changes; a
changed architecture is added beside it as `vN+1`."""

from typing import List, Optional, Union

from spacy.ml.models.tok2vec import MultiHashEmbed  # spacy.MultiHashEmbed.v2
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Maxout, Model, Softmax_v2, chain, concatenate, expand_window, with_array
from thinc.types import Floats2d

from ..errors import Errors
from .attrs import TrainedInt
from .casing import case_features as _case_features
from .encoder import build_encoder, is_bertprod_encoder
from .hf_loader import DEFAULT_MODEL
from .pooling import doc_pooler, token_mean_pooler
from .qa_head import build_qa_model
from .wordpiece_vectors import wordpiece_vectors

# Registered names are frozen from the first release on: each function below
# is a thin wrapper whose name, arguments and defaults never change once
# published; a changed architecture is registered beside it as vN+1.


@registry.architectures("bertprod.Encoder.v1")
def encoder_v1(
    name: str = DEFAULT_MODEL,
    window: int = 256,
    stride: int = 192,
    pooling: str = "first",
    max_batch_wordpieces: int = 8192,
    mixed_precision: bool = False,
    backend: str = "torch",
    inference_precision: str = "fp32",
    input_casing: Union[bool, str] = False,
) -> Model[List[Doc], List[Floats2d]]:
    """A Hugging Face encoder giving one vector per spaCy token (see
    `spacy_bertprod.layers.encoder.build_encoder`); `input_casing` feeds
    each wordpiece's casing class to the transformer as its token type
    ("auto": where the model is uncased and has token types)."""
    return build_encoder(
        name=name,
        window=window,
        stride=stride,
        pooling=pooling,
        max_batch_wordpieces=max_batch_wordpieces,
        mixed_precision=mixed_precision,
        backend=backend,
        inference_precision=inference_precision,
        input_casing=input_casing,
    )


@registry.architectures("bertprod.TokenClassifier.v1")
def token_classifier_v1(
    encoder: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    dropout: float = 0.1,
    case_features: bool = True,
    case_scale: float = 10.0,
    case_window: int = 1,
) -> Model[List[Doc], List[Floats2d]]:
    """Encoder + dropout + softmax over tags, per spaCy token.

    case_features: the softmax also sees the casing of each token and of the
    `case_window` tokens on each side (`spacy_bertprod.layers.casing.CASE_FEATURES`,
    zeros past the doc's ends). Uncased encoders such as the embedded MiniLM
    lowercase their input and lose that cue, and cannot tell a token its
    neighbours are capitalised, which is what separates "Bank of England"
    (B I L) from "bank of England".
    case_scale: the value of an active feature. Adam moves each weight by
    about the learning rate per step, so at fine-tuning rates (1e-4) a 0/1
    input could shift a logit by only ~0.1 over a whole run.
    case_window: neighbours on each side (0: the token's own casing only).
    """
    features = concatenate(encoder, _casing(case_scale, case_window)) if case_features else encoder
    return _token_softmax(features, encoder, nO, dropout)


def _casing(case_scale: float, case_window: int) -> Model[List[Doc], List[Floats2d]]:
    """Casing features of each token and of `case_window` neighbours per side."""
    if case_scale <= 0:
        raise ValueError(Errors.E037.format(value=case_scale))
    if not isinstance(case_window, int) or case_window < 0:
        raise ValueError(Errors.E038.format(value=case_window))
    case = _case_features(case_scale)
    if case_window:
        neighbours = expand_window(window_size=case_window)
        # the softmax is sized for it: a saved tagger checks it on load
        neighbours.attrs["window_size"] = TrainedInt(case_window)
        case = chain(case, with_array(neighbours, pad=case_window))
    return case


def _token_softmax(features: Model, encoder: Model, nO: Optional[int], dropout: float) -> Model:
    """features + dropout + softmax over tags, with refs "encoder" and "output"."""
    output = Softmax_v2(nO=nO, normalize_outputs=True)
    dropout_layer: Model[Floats2d, Floats2d] = Dropout(dropout)
    model: Model[List[Doc], List[Floats2d]] = chain(features, with_array(chain(dropout_layer, output)))
    model.set_ref("encoder", encoder)
    model.set_ref("output", output)
    return model


@registry.architectures("bertprod.WordpieceHashEmbed.v1")
def wordpiece_hash_embed_v1(width: int, attrs: List[str], rows: List[int], wordpiece_dims: int) -> Model[List[Doc], List[Floats2d]]:
    """spaCy's `spacy.MultiHashEmbed.v2` beside static wordpiece vectors
    (`spacy_bertprod.layers.wordpiece_vectors`: a pretrained encoder's input
    embeddings, `wordpiece_dims` columns), mixed into `width` by a maxout
    layer: a CNN token encoder that knows the pieces of words its training
    text never showed."""
    hashed = MultiHashEmbed(width=width, attrs=attrs, rows=rows, include_static_vectors=False)
    mixed = Maxout(nO=width, nI=width + wordpiece_dims, nP=3, dropout=0.0, normalize=True)
    model: Model[List[Doc], List[Floats2d]] = chain(concatenate(hashed, wordpiece_vectors(wordpiece_dims)), with_array(mixed))
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
        raise ValueError(Errors.E013.format(pooling=pooling))
    output = Linear(nO=nO)
    model: Model[List[Doc], Floats2d] = chain(pooled, Dropout(dropout), output)
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
