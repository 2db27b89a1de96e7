"""The HTTP service under load: dynamic batching against offline
`nlp.pipe` and against the same server without batching.

Starts `python -m spacy bertprod serve MODEL` twice on 127.0.0.1 (one server
with dynamic batching, one with --max-batch-texts 1: no batching), waits for
/ready, and drives them with a closed-loop load generator: N clients
(default 1, 8, 32, 128), each sending one CoNLL-2003 test sentence per
request and the next as soon as the answer arrives. Every level sends the
same fixed list of --sentences sentences (the first of the file), each
exactly once, so every level and the offline reference tag the same words;
a level that takes longer than --level-budget seconds fails the run (choose
fewer sentences). The offline reference is `nlp.pipe(batch_size=32)` in this
process over those sentences, on the server's cores.

This VM's speed drifts by 10-30% over tens of minutes, so the work runs in
--repeats rounds (at least 3), each round the offline run, the batched
server's levels and the unbatched server's levels, in an order rotated from
round to round. Every ratio is words/s over words/s of the same round; the
report gives each figure's median and spread (min-max) over the rounds, and
the batched-vs-offline ratio at 32 clients against its target (0.85x, on one
server core with the default settings), the unbatched ratio without one.
Per level: words/s, sentences/s, p50/p95/p99 latency, the mean batch size
(texts per `nlp.pipe` call, from the server's /metrics), and where the
server's CPU goes (milliseconds a request in its main thread, the event
loop, and in its other threads, the batcher), against offline's CPU
milliseconds a sentence.

Where the clients run: by default (`--client-cpus 1`) the load generator is
pinned to the last CPU core and the servers and the offline run to the
others, with as many torch threads as they have cores, so that server and
offline run get the same compute and the clients' own CPU time (which on a
real deployment is spent on other machines) is not taken from the server.
`--client-cpus 0` runs everything on all cores, the clients competing with
the server.

    python bench/serve.py [--model bench/results/conll/model/model-best] [--sentences 800] [--repeats 3] [--report serve]
"""

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import aiohttp
import httpx
import numpy as np
import spacy
import torch
from spacy.language import Language

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, stat_cpu_seconds, write_report  # noqa: E402

from spacy_bertprod.serve.settings import ServeSettings  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# this process tokenizes (the offline runs) before it starts the servers:
# with Rust tokenizers' thread pool in use, each fork would warn and turn it
# off in the server; off from the start, on the one core each has
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
READY_TIMEOUT_S = 600
#: batched words/s over offline words/s at 32 clients, on one server core with the default settings
TARGET_VS_OFFLINE = 0.85


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str) -> Dict[str, float]:
    """The server's batch counters (the sum and count of its batch-size histogram)."""
    figures = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        for name in ("bertprod_batch_texts_sum", "bertprod_batch_texts_count"):
            if line.startswith(name + " "):
                figures[name] = float(line.split()[1])
    return figures


def split_cores(client_cpus: int) -> Tuple[Set[int], Set[int]]:
    """(the server's cores, the clients' cores) of this process's cores:
    the clients get the last `client_cpus`, or all cores when 0."""
    cpus = sorted(os.sched_getaffinity(0))
    if not client_cpus:
        return set(cpus), set(cpus)
    if client_cpus >= len(cpus):
        raise SystemExit(f"--client-cpus {client_cpus} leaves the server no core of {len(cpus)}")
    return set(cpus[:-client_cpus]), set(cpus[-client_cpus:])


class Server:
    """`bertprod serve` in a subprocess on a free loopback port, on `cpus`."""

    def __init__(self, model: str, threads: int, max_batch_texts: int, max_wait_ms: float, max_regroup_ms: float, mmap_threshold: int, cpus: Set[int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "spacy", "bertprod", "serve", model, "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--threads", str(threads), "--max-batch-texts", str(max_batch_texts), "--max-wait-ms", str(max_wait_ms), "--max-regroup-ms", str(max_regroup_ms)]
        command += ["--max-queue", "4096", "--log-level", "warning"]
        command += ["--mmap-threshold", str(mmap_threshold)]
        self.process = subprocess.Popen(command, preexec_fn=lambda: os.sched_setaffinity(0, cpus))

    def __enter__(self) -> "Server":
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S} s")
            time.sleep(0.5)

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def closed_loop(url: str, texts: Sequence[str], words: Sequence[int], clients: int) -> Dict[str, Any]:
    """`clients` clients, each sending the next sentence of `texts` when its
    answer is back, until every sentence was sent once. The clients are
    aiohttp's: httpx's connection pool spent about 20 ms of CPU a request
    at 128 connections, so the load generator, not the server, set the pace."""
    latencies: List[float] = []
    done_words = 0
    errors = 0
    sent = 0
    endpoint = f"{url}/v1/process"

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal done_words, errors, sent
        while sent < len(texts):
            index = sent
            sent += 1
            start = time.perf_counter()
            try:
                async with http.post(endpoint, json={"texts": [texts[index]]}) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:  # a dropped connection: counted, not fatal to the run
                errors += 1
                continue
            if status == 200:
                latencies.append(time.perf_counter() - start)
                done_words += words[index]
            else:
                errors += 1

    async def connect(http: aiohttp.ClientSession, i: int) -> None:
        async with http.post(endpoint, json={"texts": [texts[i % len(texts)]]}) as response:
            await response.read()

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(connect(http, i) for i in range(clients)))  # open the connections
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies or [float("nan")]) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 2),
        "sentences_per_s": round(len(latencies) / wall, 1),
        "words_per_s": round(done_words / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def thread_cpu(pid: int) -> Dict[int, float]:
    """CPU seconds of each thread of process `pid` so far (Linux /proc; empty
    elsewhere)."""
    seconds = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            seconds[int(tid)] = stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread ended
            continue
    return seconds


def cpu_per_request(pid: int, before: Dict[int, float], after: Dict[int, float], requests: int) -> Optional[Dict[str, float]]:
    """The server's CPU milliseconds per answered request: its main thread
    (uvicorn's event loop: HTTP, validation, the wordpiece count, JSON of the
    answer, metrics) and its other threads (the batcher's nlp.pipe and
    torch's)."""
    if not after or not requests:
        return None
    delta = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = delta.get(pid, 0.0)
    return {"event_loop": round(1000 * loop / requests, 2), "other_threads": round(1000 * (sum(delta.values()) - loop) / requests, 2)}


def offline_rate(nlp: Language, texts: Sequence[str], words: Sequence[int], cores: Set[int]) -> Dict[str, Any]:
    """`nlp.pipe(batch_size=32)` over these sentences in this process, on the
    servers' cores (the server beside it idle): the reference of one level."""
    client_cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for _doc in nlp.pipe(texts, batch_size=32):
            pass
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        os.sched_setaffinity(0, client_cores)
    rates = {"sentences_per_s": round(len(texts) / seconds, 1), "words_per_s": round(sum(words) / seconds, 1)}
    return {"sentences": len(texts), "seconds": round(seconds, 2), **rates, "cpu_ms_per_sentence": round(1000 * cpu / len(texts), 2)}


def run_level(args: argparse.Namespace, server: Server, texts: Sequence[str], words: Sequence[int], clients: int) -> Dict[str, Any]:
    """One level of clients against one server over all the sentences."""
    before, cpu_before = scrape(server.url), thread_cpu(server.process.pid)
    row = asyncio.run(closed_loop(server.url, texts, words, clients))
    after, cpu_after = scrape(server.url), thread_cpu(server.process.pid)
    row["cpu_ms_per_request"] = cpu_per_request(server.process.pid, cpu_before, cpu_after, row["requests"])
    batches = after["bertprod_batch_texts_count"] - before["bertprod_batch_texts_count"]
    row["mean_batch_texts"] = round((after["bertprod_batch_texts_sum"] - before["bertprod_batch_texts_sum"]) / max(batches, 1), 2)
    print(
        f"    {clients:>4} clients: {row['words_per_s']:>8.1f} words/s {row['sentences_per_s']:>7.1f} sentences/s"
        f"  p50 {row['p50_ms']:>7.1f} ms  p95 {row['p95_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms"
        f"  mean batch {row['mean_batch_texts']:>5.2f}  ({row['seconds']:.1f} s, {row['errors']} errors); CPU ms a request {row['cpu_ms_per_request']}",
        flush=True,
    )
    if row["errors"]:
        raise SystemExit(f"{row['errors']} of {len(texts)} requests failed at {clients} clients: the level did not tag the same sentences as the others")
    if row["seconds"] > args.level_budget:
        raise SystemExit(f"{clients} clients took {row['seconds']:.0f} s, over --level-budget {args.level_budget:.0f} s: run with fewer --sentences")
    return row


def spread(values: Sequence[float]) -> Dict[str, Any]:
    """Median and min-max of one figure over the rounds, with every value."""
    return {"median": round(float(np.median(values)), 3), "min": min(values), "max": max(values), "all": list(values)}


def summarise(rounds: List[Dict[str, Any]], clients: Sequence[int]) -> Dict[str, Any]:
    """Per server and level, the median and spread over the rounds of its
    words/s, latencies and batch size, and of its words/s over the same
    round's offline words/s (and, batched, over the unbatched level's)."""
    summary: Dict[str, Any] = {"offline_words_per_s": spread([r["offline"]["words_per_s"] for r in rounds])}
    for server in ("batched", "unbatched"):
        levels = {}
        for i, n in enumerate(clients):
            rows = [(r[server][i], r) for r in rounds]
            level = {key: spread([row[key] for row, _ in rows]) for key in ("words_per_s", "sentences_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_batch_texts")}
            level["vs_offline"] = spread([round(row["words_per_s"] / r["offline"]["words_per_s"], 3) for row, r in rows])
            if server == "batched":
                level["vs_unbatched"] = spread([round(row["words_per_s"] / r["unbatched"][i]["words_per_s"], 3) for row, r in rows])
            levels[str(n)] = level
        summary[server] = levels
    return summary


def main() -> None:
    defaults = ServeSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/conll/model/model-best"), help="trained pipeline to serve")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003/test.txt"), help="CoNLL-2003 file whose sentences are sent")
    parser.add_argument("--sentences", type=int, default=800, help="the fixed list every level and the offline run tag: the file's first N sentences")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128], help="concurrent clients, one level each")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of offline + batched levels + unbatched levels, in rotated order (at least 3)")
    parser.add_argument("--level-budget", type=float, default=60.0, help="seconds a level may take; a slower one fails the run (choose fewer --sentences)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the server and of the offline run (0: one per core they run on)")
    parser.add_argument("--client-cpus", type=int, default=1, help="cores kept for the load generator, the server and the offline run on the others (0: all share all cores)")
    parser.add_argument("--max-batch-texts", type=int, default=defaults.max_batch_texts, help="the batched server's --max-batch-texts")
    parser.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms, help="the servers' --max-wait-ms")
    parser.add_argument("--max-regroup-ms", type=float, default=defaults.max_regroup_ms, help="the servers' --max-regroup-ms")
    parser.add_argument("--mmap-threshold", type=int, default=defaults.mmap_threshold, help="the servers' --mmap-threshold (the offline run pins nothing, as a plain script does not)")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    parser.add_argument("--note", default="", help="a remark on the run's conditions, kept in the report")
    args = parser.parse_args()
    if args.report:
        model_provenance(Path(args.model))  # before the run, not after it: a report needs the model's record
    if args.repeats < 3 and args.report:
        parser.error("--repeats: a report needs at least 3 rounds (median and spread)")
    args.server_cores, client_cores = split_cores(args.client_cpus)
    args.threads = args.threads or len(args.server_cores)
    torch.set_num_threads(args.threads)
    print("machine:", describe(), flush=True)
    print(f"server and offline run on cores {sorted(args.server_cores)} with {args.threads} threads; load generator on cores {sorted(client_cores)}", flush=True)
    os.sched_setaffinity(0, client_cores)
    docs = [d for d in conll_to_docs(args.data, n_sents=1) if d.text.strip()]
    if len(docs) < args.sentences:
        parser.error(f"--sentences {args.sentences}: {args.data} has {len(docs)}")
    docs = docs[: args.sentences]
    texts = [d.text for d in docs]
    words = [sum(not t.is_space for t in d) for d in docs]
    print(f"{len(texts)} sentences from {args.data}, {sum(words)} words, sent by every level of {args.clients} clients; {args.repeats} rounds", flush=True)

    nlp = spacy.load(args.model)
    list(nlp.pipe(texts[:64], batch_size=32))  # warm-up
    rounds: List[Dict[str, Any]] = []
    with (
        Server(args.model, args.threads, args.max_batch_texts, args.max_wait_ms, args.max_regroup_ms, args.mmap_threshold, args.server_cores) as batched_server,
        Server(args.model, args.threads, 1, args.max_wait_ms, args.max_regroup_ms, args.mmap_threshold, args.server_cores) as unbatched_server,
    ):
        servers = {"batched": batched_server, "unbatched": unbatched_server}
        parts = ["offline", "batched", "unbatched"]
        for repeat in range(args.repeats):
            order = parts[repeat % 3 :] + parts[: repeat % 3]
            result: Dict[str, Any] = {"round": repeat + 1, "order": order}
            print(f"round {repeat + 1}/{args.repeats} ({', '.join(order)}):", flush=True)
            for part in order:
                if part == "offline":
                    result["offline"] = offline_rate(nlp, texts, words, args.server_cores)
                    o = result["offline"]
                    print(f"  offline nlp.pipe(batch_size=32): {o['words_per_s']:.1f} words/s, CPU ms a sentence {o['cpu_ms_per_sentence']}", flush=True)
                    continue
                print(f"  {part} server (--max-batch-texts {args.max_batch_texts if part == 'batched' else 1}):", flush=True)
                result[part] = [run_level(args, servers[part], texts, words, clients) for clients in args.clients]
            rounds.append(result)

    summary = summarise(rounds, args.clients)
    one_core_defaults = len(args.server_cores) == 1 and args.max_batch_texts == defaults.max_batch_texts and args.max_wait_ms == defaults.max_wait_ms and args.max_regroup_ms == defaults.max_regroup_ms
    one_core_defaults = one_core_defaults and args.mmap_threshold == defaults.mmap_threshold
    targets = {}
    if "32" in summary["batched"]:
        vs = summary["batched"]["32"]["vs_offline"]
        met = vs["median"] >= TARGET_VS_OFFLINE if one_core_defaults else None
        targets["batched_vs_offline_32_clients"] = {**vs, "target": TARGET_VS_OFFLINE, "met": met, "target_conditions": one_core_defaults}
        targets["unbatched_vs_offline_32_clients"] = summary["unbatched"]["32"]["vs_offline"]
        status = "n/a (not one server core with the default settings)" if met is None else ("met" if met else "MISSED")
        print(f"batched vs offline at 32 clients: {vs['median']:.2f}x (min {vs['min']:.2f}x, max {vs['max']:.2f}x), target {TARGET_VS_OFFLINE}x: {status}", flush=True)
        u = targets["unbatched_vs_offline_32_clients"]
        print(f"unbatched vs offline at 32 clients: {u['median']:.2f}x (min {u['min']:.2f}x, max {u['max']:.2f}x)", flush=True)
    for n, level in summary["batched"].items():
        print(f"  {n:>4} clients batched: {level['vs_offline']['median']:.2f}x offline, {level['vs_unbatched']['median']:.2f}x unbatched (words/s, median of {args.repeats})", flush=True)
    if args.report:
        settings = {
            "threads": args.threads,
            "server_cores": len(args.server_cores),
            "client_cores": len(client_cores),
            "shared": args.client_cpus == 0,
            "max_batch_texts": args.max_batch_texts,
            "max_wait_ms": args.max_wait_ms,
            "max_regroup_ms": args.max_regroup_ms,
            "mmap_threshold": args.mmap_threshold,
            "level_budget_s": args.level_budget,
            "repeats": args.repeats,
        }
        figures = {"model": args.model, "data": args.data, "sentences": len(texts), "words": sum(words), "cpu_count": os.cpu_count(), "settings": settings}
        figures.update({"clients": args.clients, "rounds": rounds, "summary": summary, "targets": targets})
        write_report(args.report, figures, note=args.note, models={"served": args.model})


if __name__ == "__main__":
    main()
