"""What a server may take on, in one typed, checked object.

Every limit that protects the process (queue, body, text length, time) and
every knob of the dynamic batcher is a field here, so the CLI, `create_app`
and the worker processes of `--workers N` (which receive it as JSON in an
environment variable) share one definition and one validation.
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Dict

from ..errors import Errors

#: the environment variable that passes the settings to uvicorn's worker processes
SETTINGS_ENV = "BERTPROD_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of one server process.

    max_batch_texts: texts in one `nlp.pipe` call.
    max_batch_wordpieces: wordpieces (counted with the pipeline's own
        tokenizer, questions included) in one call; a longer single text
        still runs, alone.
    max_wait_ms: how long the first queued text waits for others to join
        its batch while the worker is idle.
    max_regroup_ms: after a batch, how long the worker waits for the texts
        it just answered to come back (their clients' next requests) before
        it takes the next batch; it stops once that many have come or a
        batch is full. Closed-loop clients then fill one batch instead of
        alternating in two half-full ones (a smaller batch tags fewer words
        a second). 0: take the next batch at once.
    max_queue: texts waiting at most; beyond that, 503 with Retry-After.
    max_body_bytes: request body size; beyond that, 413.
    max_text_chars: characters in one text; beyond that, 413.
    request_timeout_s: a request not answered by then gets 504 and its
        texts that have not started are dropped.
    threads: torch (and ONNX Runtime) threads of the process; 0 leaves
        torch's default (the CLI sets cores // workers).
    release_every: hand freed heap pages back to the OS every N batches
        (`memory.release_memory`); 0 never.
    mmap_threshold: bytes from which glibc serves a block from its own
        mapping, pinned for the process (`memory.pin_mmap_threshold`); 0
        leaves glibc's moving threshold. The default keeps RSS flat under
        changing text lengths but costs throughput (every large activation
        buffer is mapped and faulted in afresh); a larger value is faster
        and lets RSS climb (docs: design/mmap-pin.md).
    retry_after_s: the Retry-After seconds of a 503.
    """

    max_batch_texts: int = 32
    max_batch_wordpieces: int = 16384
    max_wait_ms: float = 5.0
    max_regroup_ms: float = 25.0
    max_queue: int = 1024
    max_body_bytes: int = 1024 * 1024
    max_text_chars: int = 100_000
    request_timeout_s: float = 30.0
    threads: int = 0
    release_every: int = 100
    mmap_threshold: int = 128 * 1024
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        positive = ("max_batch_texts", "max_batch_wordpieces", "max_queue", "max_body_bytes", "max_text_chars", "retry_after_s")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if field.type in (int, "int") and not is_int:
                raise ValueError(Errors.E120.format(name=field.name, value=value, expected="an integer"))
            if field.type in (float, "float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(Errors.E120.format(name=field.name, value=value, expected="a number"))
            if field.name in positive and value < 1:
                raise ValueError(Errors.E120.format(name=field.name, value=value, expected="at least 1"))
            if value < 0:
                raise ValueError(Errors.E120.format(name=field.name, value=value, expected="0 or more"))
        if self.request_timeout_s == 0:
            raise ValueError(Errors.E120.format(name="request_timeout_s", value=self.request_timeout_s, expected="more than 0 seconds"))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ServeSettings":
        """Settings from plain data; unknown names are refused (E120)."""
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise ValueError(Errors.E120.format(name=name, value=value, expected=f"one of the known settings ({', '.join(sorted(known))})"))
        return cls(**data)

    @classmethod
    def from_env(cls) -> "ServeSettings":
        """The settings a worker process got from its parent (E131 if damaged)."""
        raw = os.environ.get(SETTINGS_ENV, "{}")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(Errors.E131.format(var=SETTINGS_ENV, err=err)) from None
        if not isinstance(data, dict):
            raise ValueError(Errors.E131.format(var=SETTINGS_ENV, err=f"a JSON object is needed, not {type(data).__name__}"))
        return cls.from_dict(data)
