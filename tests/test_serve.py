"""The HTTP service (spacy_bertprod/serve): a real uvicorn server on
127.0.0.1 with a free port, in a thread, driven by httpx. Error paths use a
blank pipeline with a `gate` component that can block the worker, fail on a
text, and records what it processed; pairing and backends use trained tiny
BERT pipelines."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import httpx
import pytest
import spacy
import uvicorn
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from typer.testing import CliRunner

from conftest import QA_CONTEXT, TRAIN_DATA, cats_examples, ner_config, random_text, train
from spacy_bertprod.cli import bertprod_cli
from spacy_bertprod.pipeline.annotations import doc_annotations
from spacy_bertprod.serve import ServeSettings, create_app
from spacy_bertprod.serve.batcher import Closed, DynamicBatcher, Item
from spacy_bertprod.serve.server import PIPELINE_ENV, app_from_env, worker_threads
from spacy_bertprod.serve.settings import SETTINGS_ENV
from spacy_bertprod.serve.wordpieces import wordpiece_counter

WAIT = 30.0  # seconds any single wait in these tests may take at most


class Gate:
    """A test component: blocks while `closed`, raises on texts containing
    "boom", and records the texts it saw."""

    def __init__(self) -> None:
        self.seen: List[str] = []
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.opened.set()

    def close(self) -> None:
        self.entered.clear()
        self.opened.clear()

    def __call__(self, doc: Doc) -> Doc:
        self.seen.append(doc.text)
        if "boom" in doc.text:
            raise RuntimeError("boom in the pipeline")
        self.entered.set()
        assert self.opened.wait(WAIT), "the test never opened the gate"
        return doc


@Language.factory("serve_test_gate")
def make_gate(nlp: Language, name: str) -> Gate:
    return Gate()


def gate_pipeline() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("serve_test_gate")
    return nlp


@contextmanager
def serving(app) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port; stop it after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + WAIT
    while httpx.get(f"{url}/ready").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.02)


async def post_all(url: str, bodies: List[dict], timeout: float = WAIT) -> List[httpx.Response]:
    """POST each body to /v1/process at the same time."""
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=httpx.Limits(max_connections=200)) as client:
        return await asyncio.gather(*(client.post("/v1/process", json=body) for body in bodies))


def in_background(url: str, bodies: List[dict]) -> "tuple[threading.Thread, List[httpx.Response]]":
    """post_all on a thread, for requests the test answers while they wait."""
    responses: List[httpx.Response] = []
    thread = threading.Thread(target=lambda: responses.extend(asyncio.run(post_all(url, bodies))), daemon=True)
    thread.start()
    return thread, responses


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample of Prometheus text output."""
    for line in text.splitlines():
        if line.startswith(name + (f"{{{labels}}}" if labels else "") + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{labels}}} in /metrics")


def same_annotations(got: dict, want: dict) -> None:
    """Equal JSON, scores within float noise (batches pad differently)."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key in ("entities", "answers"):
            assert [{k: v for k, v in e.items() if k != "score"} for e in got[key]] == [{k: v for k, v in e.items() if k != "score"} for e in value]
            assert [e["score"] for e in got[key]] == pytest.approx([e["score"] for e in value], abs=1e-4)
        elif key == "cats":
            assert got[key] == pytest.approx(value, abs=1e-4)
        else:
            assert got[key] == value


def distinct_texts(n: int) -> List[str]:
    return [f"{TRAIN_DATA[i % len(TRAIN_DATA)][0]} {random_text(2 + i % 5, seed=i)}" for i in range(n)]


# --- settings -----------------------------------------------------------------


@pytest.mark.parametrize("field,value", [("max_batch_texts", 0), ("max_wait_ms", -1.0), ("max_queue", "10"), ("request_timeout_s", 0), ("threads", True)])
def test_bad_settings_are_refused_with_a_code(field, value):
    with pytest.raises(ValueError, match=rf"\[E120\] .*{field}"):
        ServeSettings(**{field: value})


def test_settings_from_env_round_trip_and_refusals(monkeypatch):
    settings = ServeSettings(max_batch_texts=4, max_wait_ms=1.5)
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    assert ServeSettings.from_env() == settings
    monkeypatch.setenv(SETTINGS_ENV, "{not json")
    with pytest.raises(ValueError, match=r"\[E131\]"):
        ServeSettings.from_env()
    with pytest.raises(ValueError, match=r"\[E120\] .*max_batch"):
        ServeSettings.from_dict({"max_batch": 3})


def test_threads_share_the_cores_between_workers():
    from spacy_bertprod.serve.server import cores

    assert worker_threads(0, 1) == cores()
    assert worker_threads(1, 1) == 1
    with pytest.warns(UserWarning, match=r"\[W020\]"):
        assert worker_threads(cores(), 2) == cores()  # what the user asked for, with a warning
    with pytest.warns(UserWarning, match=r"\[W020\]"):
        assert worker_threads(0, cores() * 2) == 1  # more workers than cores


# --- batching and pairing ------------------------------------------------------


def test_concurrent_requests_keep_their_answers_and_batch(trained_ner_path):
    nlp = spacy.load(trained_ner_path)
    texts = distinct_texts(50)
    want = [doc_annotations(nlp, nlp(text)) for text in texts]
    assert sum(len(w["entities"]) for w in want) > 0
    app = create_app(spacy.load(trained_ner_path), ServeSettings(max_batch_texts=16, max_wait_ms=20))
    with serving(app) as url:
        wait_ready(url)
        responses = asyncio.run(post_all(url, [{"texts": [text]} for text in texts]))
        assert [r.status_code for r in responses] == [200] * len(texts)
        for response, expected in zip(responses, want):
            [got] = response.json()["results"]
            same_annotations(got, expected)
        # a request of several texts answers them in order
        many = httpx.post(f"{url}/v1/process", json={"texts": texts[:5]}, timeout=WAIT).json()["results"]
        for got, expected in zip(many, want[:5]):
            same_annotations(got, expected)
        scraped = httpx.get(f"{url}/metrics").text
    batches = metric(scraped, "bertprod_batch_texts_count")
    texts_done = metric(scraped, "bertprod_batch_texts_sum")
    assert texts_done == len(texts) + 5  # every text once (the warm-up is not a batch)
    assert texts_done / batches > 1.5, f"no batches formed: {texts_done} texts in {batches} calls"
    assert metric(scraped, "bertprod_requests_total", 'status="200"') == len(texts) + 1


def test_wordpiece_limit_splits_batches(trained_ner_path):
    """max_batch_wordpieces bounds a batch by the pipeline tokenizer's count;
    a text beyond it still runs, alone."""
    nlp = spacy.load(trained_ner_path)
    count = wordpiece_counter(nlp)
    texts = distinct_texts(6)
    sizes = [count(t, ()) for t in texts]
    holder = next(node for node in nlp.get_pipe("bertprod_ner").model.walk() if "tokenizer" in node.attrs)
    assert sizes == [len(holder.attrs["tokenizer"].tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]
    limit = max(sizes) + min(sizes) - 1  # no two of the largest fit together
    batches: List[int] = []

    async def run() -> List[list]:
        batcher = DynamicBatcher(lambda items: [i.text for i in items], ServeSettings(max_batch_wordpieces=limit, max_wait_ms=50), on_batch=lambda n, wp, s, ok: batches.append(wp))
        batcher.start()
        try:
            tickets = [batcher.submit([Item(t, (), n)]) for t, n in zip(texts, sizes)]
            return [await asyncio.wait_for(t.future, WAIT) for t in tickets]
        finally:
            batcher.close()

    assert asyncio.run(run()) == [[t] for t in texts]
    assert sum(batches) == sum(sizes) and len(batches) > 1
    assert all(wp <= limit for wp in batches)


@pytest.mark.parametrize("regroup_ms,sizes", [(2000.0, [4, 6]), (0.0, [4, 2, 4])])
def test_after_a_batch_the_worker_waits_for_the_answered_texts_to_return(regroup_ms, sizes):
    """Closed-loop clients: 2 texts arrive while a batch of 4 runs; the 4
    answered clients come back 0.1 s later. Regrouping waits for them (one
    batch of 6); without it the 2 go alone and the 4 after them."""
    seen: List[int] = []
    running, release = threading.Event(), threading.Event()

    def process(items):
        seen.append(len(items))
        if len(seen) == 1:
            running.set()
            release.wait(WAIT)
        return [item.text for item in items]

    async def run() -> None:
        batcher = DynamicBatcher(process, ServeSettings(max_batch_texts=8, max_wait_ms=0, max_regroup_ms=regroup_ms))
        first = [batcher.submit([Item(f"a{i}")]) for i in range(4)]  # queued before the worker starts: one batch
        batcher.start()
        try:
            await asyncio.get_running_loop().run_in_executor(None, running.wait, WAIT)
            during = [batcher.submit([Item(f"b{i}")]) for i in range(2)]
            release.set()
            await asyncio.wait_for(asyncio.gather(*(t.future for t in first)), WAIT)
            await asyncio.sleep(0.1)
            back = [batcher.submit([Item(f"c{i}")]) for i in range(4)]
            results = await asyncio.wait_for(asyncio.gather(*(t.future for t in during + back)), WAIT)
            assert results == [["b0"], ["b1"], ["c0"], ["c1"], ["c2"], ["c3"]]
        finally:
            batcher.close()

    asyncio.run(run())
    assert seen == sizes


def test_questions_go_to_bertprod_qa(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_textcat", config=ner_config(tiny_bert))
    nlp.add_pipe("bertprod_qa", config={"model": {"encoder": {"name": tiny_bert, "window": 48, "stride": 24}, "doc_stride": 16, "max_question_len": 12}})
    nlp.initialize(lambda: cats_examples(nlp))
    questions = [["where was marie curie born?", "where did she move?"], []]
    body = {"texts": [QA_CONTEXT, "the film was a delight"], "questions": questions}
    want = []
    for text, qs in zip(body["texts"], questions):
        doc = nlp.make_doc(text)
        doc._.questions = qs
        want.append(doc_annotations(nlp, nlp(doc)))
    assert [a["question"] for a in want[0]["answers"]] == questions[0] and want[1]["answers"] == []
    with serving(create_app(nlp)) as url:
        got = httpx.post(f"{url}/v1/process", json=body, timeout=WAIT)
        assert got.status_code == 200
        for result, expected in zip(got.json()["results"], want):
            same_annotations(result, expected)
        bad = httpx.post(f"{url}/v1/process", json={"texts": ["a"], "questions": [["  "]]})
        assert bad.status_code == 422 and "[E132]" in bad.text


@pytest.mark.parametrize("backend", ["onnx", "int8"])
def test_converted_pipelines_serve(trained_ner_path, tmp_path, backend):
    from spacy_bertprod.compression.pipelines import onnx_path, quantize_path

    (onnx_path if backend == "onnx" else quantize_path)(trained_ner_path, tmp_path / backend)
    nlp = spacy.load(tmp_path / backend)
    texts = distinct_texts(8)
    # int8 scales activations per call: compare with the same batch offline
    want = [doc_annotations(nlp, doc) for doc in nlp.pipe(texts, batch_size=len(texts))]
    with serving(create_app(nlp, ServeSettings(max_wait_ms=200))) as url:
        wait_ready(url)
        got = httpx.post(f"{url}/v1/process", json={"texts": texts}, timeout=WAIT)
    assert got.status_code == 200
    for result, expected in zip(got.json()["results"], want):
        same_annotations(result, expected)
    assert any(r["entities"] for r in got.json()["results"])


# --- readiness, errors, shutdown -----------------------------------------------


def test_ready_only_after_the_warm_up():
    nlp = gate_pipeline()
    gate = nlp.get_pipe("serve_test_gate")
    gate.close()  # the warm-up blocks in the pipeline
    with serving(create_app(nlp)) as url:
        assert gate.entered.wait(WAIT)
        assert httpx.get(f"{url}/health").status_code == 200
        not_ready = httpx.get(f"{url}/ready")
        assert not_ready.status_code == 503 and "[E134]" in not_ready.json()["detail"]
        assert metric(httpx.get(f"{url}/metrics").text, "bertprod_ready") == 0
        gate.opened.set()
        wait_ready(url)
        assert metric(httpx.get(f"{url}/metrics").text, "bertprod_ready") == 1


def test_full_queue_answers_503_with_retry_after():
    nlp = gate_pipeline()
    gate = nlp.get_pipe("serve_test_gate")
    with serving(create_app(nlp, ServeSettings(max_queue=2, max_batch_texts=1, retry_after_s=3))) as url:
        wait_ready(url)
        gate.close()
        first, first_answers = in_background(url, [{"texts": ["first"]}])
        assert gate.entered.wait(WAIT)  # the worker holds "first"; the queue is empty
        queued, queued_answers = in_background(url, [{"texts": ["second", "third"]}])
        deadline = time.monotonic() + WAIT
        while metric(httpx.get(f"{url}/metrics").text, "bertprod_queue_texts") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = httpx.post(f"{url}/v1/process", json={"texts": ["fourth"]})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
        assert "[E126]" in refused.json()["detail"]
        too_many = httpx.post(f"{url}/v1/process", json={"texts": ["a", "b", "c"]})
        assert too_many.status_code == 413 and "[E129]" in too_many.text
        gate.opened.set()
        first.join(WAIT)
        queued.join(WAIT)
        assert [r.status_code for r in first_answers + queued_answers] == [200, 200]
        assert len(queued_answers[0].json()["results"]) == 2
        scraped = httpx.get(f"{url}/metrics").text
    assert "fourth" not in gate.seen
    assert metric(scraped, "bertprod_requests_total", 'status="503"') == 1
    assert metric(scraped, "bertprod_requests_total", 'status="413"') == 1


def test_size_limits_answer_413():
    settings = ServeSettings(max_body_bytes=300, max_text_chars=20)
    with serving(create_app(gate_pipeline(), settings)) as url:
        big = httpx.post(f"{url}/v1/process", json={"texts": ["word " * 100]})
        assert big.status_code == 413 and "[E133]" in big.json()["detail"]
        # without a Content-Length (chunked), the body is stopped as it arrives
        chunked = httpx.post(f"{url}/v1/process", content=iter([b'{"texts": ["', b"word " * 100, b'"]}']))
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert chunked.status_code == 413 and "[E133]" in chunked.json()["detail"]
        small_chunks = httpx.post(f"{url}/v1/process", content=iter([b'{"texts": ["', b"word", b'"]}']))
        assert small_chunks.status_code == 200 and small_chunks.json() == {"results": [{}]}
        long_text = httpx.post(f"{url}/v1/process", json={"texts": ["short", "x" * 21]})
        assert long_text.status_code == 413 and "[E125] Text 1 has 21 characters" in long_text.json()["detail"]
        assert httpx.post(f"{url}/v1/process", json={"texts": ["x" * 20]}).status_code == 200
        scraped = httpx.get(f"{url}/metrics").text
    assert metric(scraped, "bertprod_requests_total", 'status="413"') == 3


@pytest.mark.parametrize(
    "body,says",
    [
        (b'{"texts": ["unclosed"', "JSON decode error"),
        (b'{"texts": "not a list"}', "valid list"),
        (b'{"texts": [1, 2]}', "valid string"),
        (b'{"text": ["typo"]}', "texts"),
        (b'{"texts": ["a", "b"], "questions": [["q?"]]}', "[E124]"),
        (b'{"texts": ["a"], "questions": [["who?"]]}', "[E123]"),
    ],
)
def test_bad_input_answers_422_with_a_message(body, says):
    with serving(create_app(gate_pipeline())) as url:
        response = httpx.post(f"{url}/v1/process", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert says in json.dumps(response.json())


def test_a_body_sent_as_a_form_is_read_as_json():
    """The README's `curl -d '{"texts": [...]}'` sends a form content type."""
    with serving(create_app(gate_pipeline())) as url:
        response = httpx.post(f"{url}/v1/process", content=b'{"texts": ["a", "b"]}', headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json() == {"results": [{}, {}]}


def test_timed_out_request_answers_504_and_its_texts_are_dropped():
    nlp = gate_pipeline()
    gate = nlp.get_pipe("serve_test_gate")
    with serving(create_app(nlp, ServeSettings(request_timeout_s=0.5, max_batch_texts=1))) as url:
        wait_ready(url)
        gate.close()
        first, first_answers = in_background(url, [{"texts": ["running"]}])
        assert gate.entered.wait(WAIT)
        waiting = httpx.post(f"{url}/v1/process", json={"texts": ["waiting"]}, timeout=WAIT)
        assert waiting.status_code == 504 and "[E127]" in waiting.json()["detail"]
        first.join(WAIT)
        assert first_answers[0].status_code == 504  # its text had started: it finishes, unanswered
        gate.opened.set()
        after = httpx.post(f"{url}/v1/process", json={"texts": ["after"]}, timeout=WAIT)
        assert after.status_code == 200
        assert metric(httpx.get(f"{url}/metrics").text, "bertprod_queue_texts") == 0
    assert "running" in gate.seen and "after" in gate.seen
    assert "waiting" not in gate.seen


def test_pipeline_exception_fails_its_batch_with_500_and_the_server_goes_on():
    nlp = gate_pipeline()
    gate = nlp.get_pipe("serve_test_gate")
    with serving(create_app(nlp, ServeSettings(max_wait_ms=200))) as url:
        wait_ready(url)
        failed = asyncio.run(post_all(url, [{"texts": ["boom here"]}, {"texts": ["same batch"]}]))
        assert [r.status_code for r in failed] == [500, 500]
        assert "[E128]" in failed[0].json()["detail"] and "boom in the pipeline" in failed[0].json()["detail"]
        ok = httpx.post(f"{url}/v1/process", json={"texts": ["fine"]}, timeout=WAIT)
        assert ok.status_code == 200 and ok.json() == {"results": [{}]}
        scraped = httpx.get(f"{url}/metrics").text
    assert metric(scraped, "bertprod_failed_batches_total") == 1
    assert metric(scraped, "bertprod_requests_total", 'status="500"') == 2
    assert "fine" in gate.seen


def test_metrics_and_openapi_page():
    with serving(create_app(gate_pipeline())) as url:
        wait_ready(url)
        httpx.post(f"{url}/v1/process", json={"texts": ["one", "two"]})
        scraped = httpx.get(f"{url}/metrics")
        schema = httpx.get(f"{url}/openapi.json").json()
        assert httpx.get(f"{url}/docs").status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    for name in ("requests_total", "request_seconds_bucket", "batch_texts_bucket", "batch_wordpieces_bucket", "batch_seconds_bucket", "queue_texts", "ready"):
        assert f"bertprod_{name}" in scraped.text, name
    assert metric(scraped.text, "bertprod_queue_texts") == 0
    process = schema["paths"]["/v1/process"]["post"]
    assert {"200", "413", "422", "500", "503", "504"} <= set(process["responses"])
    assert {"ProcessRequest", "ProcessResponse", "DocResult", "Entity", "Answer"} <= set(schema["components"]["schemas"])


def test_shutdown_finishes_queued_requests():
    nlp = gate_pipeline()
    gate = nlp.get_pipe("serve_test_gate")
    app = create_app(nlp, ServeSettings(max_batch_texts=1))
    texts = [f"text {i}" for i in range(5)]
    with serving(app) as url:
        wait_ready(url)
        gate.close()
        clients, answers = in_background(url, [{"texts": [t]} for t in texts])
        assert gate.entered.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while app.state.batcher.queued_texts < len(texts) - 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        threading.Timer(0.3, gate.opened.set).start()
    # leaving `serving` asked uvicorn to exit while 4 texts were queued
    clients.join(WAIT)
    assert [r.status_code for r in answers] == [200] * len(texts)
    assert all(t in gate.seen for t in texts)


@pytest.mark.parametrize("threshold,pins", [(ServeSettings().mmap_threshold, [128 * 1024]), (1 << 20, [1 << 20]), (0, [])])
def test_the_server_pins_the_mmap_threshold_and_releases_memory_every_n_batches(monkeypatch, threshold, pins):
    """The soak benchmark's two calls for long-running processes (memory.py):
    the pinned threshold is the setting's, and 0 pins nothing."""
    import spacy_bertprod.serve.app as app_module
    import spacy_bertprod.serve.batcher as batcher_module

    pinned: List[int] = []
    released = []
    monkeypatch.setattr(app_module, "pin_mmap_threshold", pinned.append)
    monkeypatch.setattr(batcher_module, "release_memory", lambda: released.append(1))
    with serving(create_app(gate_pipeline(), ServeSettings(release_every=2, mmap_threshold=threshold))) as url:
        wait_ready(url)
        for i in range(5):
            assert httpx.post(f"{url}/v1/process", json={"texts": [f"text {i}"]}).status_code == 200
    assert pinned == pins and len(released) == 2


def test_a_closed_batcher_refuses_new_texts():
    async def run() -> Optional[Exception]:
        batcher = DynamicBatcher(lambda items: items, ServeSettings())
        batcher.start()
        batcher.close()
        try:
            batcher.submit([Item("late")])
        except Closed as err:
            return err
        return None

    assert "[E130]" in str(asyncio.run(run()))


# --- command line and worker processes ----------------------------------------


def test_cli_serve_help_and_a_bad_setting(trained_ner_path):
    runner = CliRunner()
    result = runner.invoke(bertprod_cli, ["serve", "--help"])
    assert result.exit_code == 0
    options = ("--workers", "--max-batch-texts", "--max-batch-wordpieces", "--max-wait-ms", "--max-queue", "--max-body-bytes", "--max-text-chars", "--request-timeout", "--threads")
    for option in (*options, "--mmap-threshold"):
        assert option in result.output
    bad = runner.invoke(bertprod_cli, ["serve", str(trained_ner_path), "--max-batch-texts", "0"])
    assert bad.exit_code == 1 and "[E120]" in bad.output
    missing = runner.invoke(bertprod_cli, ["serve", "no_such_pipeline_package"])
    assert missing.exit_code == 1 and "[E121]" in missing.output


def worker_pids(pid: int) -> List[int]:
    """The worker processes uvicorn spawned under `pid` (not multiprocessing's
    resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def gone(pid: int) -> bool:
    """No such process, or one that has exited and waits to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the worker processes from Linux's /proc")
def test_cli_serve_runs_two_workers_as_a_process(tiny_bert, tmp_path):
    """`python -m spacy bertprod serve PIPELINE --workers 2`, as a user starts
    it: ready, answering with the entities and categories the pipeline
    gives in this process, its two workers alive, and gone after SIGTERM.
    The app names no worker in its answers, so which worker answered is not
    checked; the two are read from the process tree."""
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    nlp.add_pipe("bertprod_textcat", config=ner_config(tiny_bert))
    cats = [{"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)} for i in range(len(TRAIN_DATA))]
    train(nlp, [Example.from_dict(nlp.make_doc(t), {"entities": e, "cats": c}) for (t, e), c in zip(TRAIN_DATA, cats)], steps=30)
    nlp.to_disk(tmp_path / "pipeline")
    texts = distinct_texts(6)
    want = [doc_annotations(nlp, doc) for doc in nlp.pipe(texts)]
    assert all(w["entities"] for w in want), "the trained head finds no entity: the comparison would be of empties"
    assert len({round(w["cats"]["POS"], 3) for w in want}) > 1, "the same categories for every text: the head ignores its input"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "spacy", "bertprod", "serve", str(tmp_path / "pipeline"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--threads", "1", "--log-level", "warning"]
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # two processes load torch and the pipeline on a shared machine
        for _ in range(2400):
            assert server.poll() is None, f"the server exited with {server.returncode}:\n{(tmp_path / 'serve.log').read_text()}"
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:  # not listening yet
                pass
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        else:
            raise AssertionError("never ready")
        responses = asyncio.run(post_all(url, [{"texts": [text]} for text in texts] + [{"texts": texts}]))
        assert [r.status_code for r in responses] == [200] * (len(texts) + 1)
        for response, expected in zip(responses, want):
            same_annotations(response.json()["results"][0], expected)
        for got, expected in zip(responses[-1].json()["results"], want):
            same_annotations(got, expected)
        workers = worker_pids(server.pid)
        assert len(workers) == 2, f"worker processes: {workers}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(WAIT)
            raise AssertionError(f"the server did not stop on SIGTERM:\n{(tmp_path / 'serve.log').read_text()}") from None
    assert server.returncode is not None
    deadline = time.monotonic() + WAIT
    while not all(gone(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived the server"
        time.sleep(0.1)


def test_worker_factory_reads_pipeline_and_settings_from_env(trained_ner_path, monkeypatch):
    settings = ServeSettings(max_batch_texts=7, threads=1)
    monkeypatch.setenv(PIPELINE_ENV, str(trained_ner_path))
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    app = app_from_env()
    assert app.state.settings == settings
    assert app.state.nlp.pipe_names == ["bertprod_ner"]
    with serving(app) as url:
        wait_ready(url)
        assert httpx.post(f"{url}/v1/process", json={"texts": [TRAIN_DATA[0][0]]}, timeout=WAIT).status_code == 200


def test_the_package_and_its_cli_import_without_the_serve_extra():
    """fastapi, uvicorn and prometheus-client are the `[serve]` extra: the
    CLI (with `serve --help`) works without them, and `serve` says what to
    install."""
    code = (
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'prometheus_client', 'starlette'):\n"
        "    sys.modules[name] = None\n"
        "import spacy_bertprod, spacy_bertprod.cli\n"
        "from typer.testing import CliRunner\n"
        "runner = CliRunner()\n"
        "assert runner.invoke(spacy_bertprod.cli.bertprod_cli, ['serve', '--help']).exit_code == 0\n"
        "result = runner.invoke(spacy_bertprod.cli.bertprod_cli, ['serve', 'x'])\n"
        "assert result.exit_code == 1 and '[E122]' in result.output, result.output\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_ray_serve_deployment_of_the_same_app(trained_ner_path):
    """`spacy_bertprod.serve.ray_serve.deployment`: the app built on a Ray
    Serve replica through `serve.ingress`, answering through Ray's proxy
    with the same pairing and batching (a local one-node Ray cluster)."""
    import ray
    from ray import serve

    from spacy_bertprod.serve.ray_serve import deployment

    nlp = spacy.load(trained_ner_path)
    texts = distinct_texts(16)
    want = [doc_annotations(nlp, nlp(text)) for text in texts]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = deployment(str(trained_ner_path), ServeSettings(max_wait_ms=50), ray_actor_options={"num_cpus": 1})
        serve.run(app, name="bertprod", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        responses = asyncio.run(post_all(url, [{"texts": [text]} for text in texts]))
        assert [r.status_code for r in responses] == [200] * len(texts)
        for response, expected in zip(responses, want):
            same_annotations(response.json()["results"][0], expected)
        scraped = httpx.get(f"{url}/metrics").text
        assert metric(scraped, "bertprod_batch_texts_sum") / metric(scraped, "bertprod_batch_texts_count") > 1
    finally:
        serve.shutdown()
        ray.shutdown()
