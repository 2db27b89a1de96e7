"""Counting a text's wordpieces before it is queued, for the batcher's
`max_batch_wordpieces`: the transformer's cost follows wordpieces, not texts.

With a bertprod encoder in the pipeline, its own fast tokenizer counts them
(exactly what the encoder will see, questions included; a Rust call of a
few microseconds per sentence). A pipeline without one is counted by
characters, one wordpiece per `CHARS_PER_WORDPIECE` characters, about what
BERT's English vocabularies give.
"""

from typing import Any, Callable, Optional, Sequence

from spacy.language import Language

from ..layers.encoder import bertprod_encoders

CHARS_PER_WORDPIECE = 4

#: text, questions -> wordpieces
Counter = Callable[[str, Sequence[str]], int]


def pipeline_tokenizer(nlp: Language) -> Optional[Any]:
    """The fast tokenizer of the pipeline's first bertprod encoder, if any."""
    for encoder in bertprod_encoders(nlp).values():
        tokenizer = encoder.attrs["tokenizer"].tokenizer
        if tokenizer is not None:
            return tokenizer
    return None


def wordpiece_counter(nlp: Language) -> Counter:
    tokenizer = pipeline_tokenizer(nlp)
    if tokenizer is None:
        return lambda text, questions: -(-(len(text) + sum(len(q) for q in questions)) // CHARS_PER_WORDPIECE)

    def count(text: str, questions: Sequence[str]) -> int:
        encodings = tokenizer.encode_batch([text, *questions], add_special_tokens=False)
        return sum(len(e.ids) for e in encodings)

    return count
