"""The ONNX Runtime session of the shared encoder: what the lean runtime
needs to run an exported encoder (onnxruntime only, never torch or onnx).

Only the transformer is exported; the task heads (tagger, classifier, QA
logits) stay thinc layers and run on the hidden states as with torch. The
ONNX model lives in the encoder's attrs (`OnnxSession`), so `nlp.to_disk`
saves it in the pipeline folder and `spacy.load` restores it. Exporting,
fusing and quantizing the graph is compression/onnx_export.py.
"""

from typing import Any, Optional

import numpy as np
import srsly

from ..errors import Errors
from ..threads import intra_op_threads
from .attrs import ConfigSetting, bytes_attr

BACKENDS = ("torch", "onnx", "onnx-int8")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"


class BackendName(ConfigSetting):
    """The encoder's `backend` setting (the config decides on load, so a
    config override picks the backend)."""


def require_onnxruntime() -> Any:
    """Import onnxruntime, or say how to install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(Errors.E028) from err
    return onnxruntime


@bytes_attr
class OnnxSession:
    """The exported ONNX model of an encoder (bytes, and the backend it was
    made for) and its lazily created onnxruntime session; serializable as a
    thinc attr."""

    def __init__(self, data: Optional[bytes] = None, backend: Optional[str] = None):
        self.data = data
        self.backend = backend
        self._session: Any = None
        self._threads = 0

    def has_model(self, backend: str) -> bool:
        return self.data is not None and self.backend == backend

    def set_model(self, data: bytes, backend: str) -> None:
        self.data, self.backend = data, backend
        self._session = None

    def clear(self) -> None:
        """Forget the ONNX model (the torch weights it came from changed)."""
        self.data = self.backend = self._session = None

    def session(self) -> Any:
        """The inference session, made again when the thread count changed."""
        threads = intra_op_threads()
        if self._session is None or threads != self._threads:
            ort = require_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.data, options, providers=["CPUExecutionProvider"])
            self._threads = threads
        return self._session

    def run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(batch, seq) int64 inputs -> (batch, seq, width) float32 hidden states."""
        session = self.session()
        feed = dict(zip(INPUT_NAMES, (ids, mask, types)))
        # the exporter drops inputs the model ignores (no token types)
        wanted = {i.name for i in session.get_inputs()}
        return session.run([OUTPUT_NAME], {k: v for k, v in feed.items() if k in wanted})[0]

    def __getstate__(self) -> dict:
        # an InferenceSession cannot be copied or pickled: it is made again
        return {**self.__dict__, "_session": None}

    def to_bytes(self) -> bytes:
        return srsly.msgpack_dumps({"backend": self.backend, "model": self.data})

    @classmethod
    def from_bytes(cls, data: bytes) -> "OnnxSession":
        msg = srsly.msgpack_loads(data)
        return cls(msg["model"], msg["backend"])
