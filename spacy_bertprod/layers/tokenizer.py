"""The fast tokenizer held by an encoder layer, with its special ids."""

from typing import Any, List, Tuple

import numpy as np
import srsly
from thinc.api import Model

from ..errors import Errors, PipelineFileError, describe
from .attrs import bytes_attr


@bytes_attr
class TokenizerHolder:
    """The fast tokenizer and its special ids, serializable as a thinc attr."""

    def __init__(self, tokenizer: Any = None, cls_id: int = 0, sep_id: int = 0, pad_id: int = 0):
        self.tokenizer = tokenizer
        self.cls_id = cls_id
        self.sep_id = sep_id
        self.pad_id = pad_id

    def to_bytes(self) -> bytes:
        data = self.tokenizer.to_str() if self.tokenizer is not None else None
        return srsly.msgpack_dumps({"tokenizer": data, "cls_id": self.cls_id, "sep_id": self.sep_id, "pad_id": self.pad_id})

    @classmethod
    def from_bytes(cls, data: bytes) -> "TokenizerHolder":
        from tokenizers import Tokenizer

        try:
            msg = srsly.msgpack_loads(data)
            tok = Tokenizer.from_str(msg["tokenizer"]) if msg["tokenizer"] else None
            return cls(tok, int(msg["cls_id"]), int(msg["sep_id"]), int(msg["pad_id"]))
        except Exception as err:  # tokenizers raises bare Exceptions ("EOF while parsing")
            raise PipelineFileError(Errors.E043, err=describe(err)) from err

    def offsets_and_ids(self, texts: List[str]) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Wordpiece ids and character offsets of each text, no special tokens."""
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [(np.asarray(e.ids, dtype="int64"), np.asarray(e.offsets, dtype="int64").reshape(-1, 2)) for e in encs]


def is_loaded(encoder: Model) -> bool:
    """Whether encoder layer `encoder` has its pretrained weights: they are
    set together with the tokenizer, so the tokenizer tells."""
    return encoder.attrs["tokenizer"].tokenizer is not None
