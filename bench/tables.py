"""The benchmarks page's figure tables, rendered from the committed result files.

Every table of figures in docs/benchmarks.md sits between `<!-- table: NAME -->`
and `<!-- /table -->`, where NAME is a renderer below and the figures come from
bench/reported/<file>.json, written by the benchmark that measured them
(`--report`). tests/test_benchmark_tables.py checks that each table on the
page is exactly what its result file renders, so no figure can drift from
the run it came from.

    python bench/tables.py            # show the tables
    python bench/tables.py --write    # rewrite them in docs/benchmarks.md
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).parent))
from common import spread  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORTED = ROOT / "bench/reported"
PAGE = ROOT / "docs/benchmarks.md"
BLOCK = re.compile(r"<!-- table: (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /table -->", re.S)


def load(file: str) -> Dict[str, Any]:
    return json.loads((REPORTED / f"{file}.json").read_text(encoding="utf8"))


def source_line(report: Dict[str, Any]) -> str:
    """Where a table's figures came from, under the table."""
    flags = ", ".join(report.get("isa_flags", [])) or "none listed"
    return (
        f"\n*`{report['command']}` at commit `{report['git_commit'][:12]}`{' with uncommitted changes' if report['git_commit'].endswith('+dirty') else ''}, {report['date']}; "
        f"{report['machine']}; ISA flags: {flags}.{(' ' + report['note']) if report.get('note') else ''}*\n"
    )


def pct(x: float) -> str:
    return f"{x * 100:.2f}"


def conll_ner(file: str = "conll_ner") -> str:
    r = load(file)
    f = r["figures"]
    s = f["test_scores"]
    rows = ["| CoNLL-2003 test | P | R | F |", "| --- | --- | --- | --- |"]
    rows.append(f"| overall | {pct(s['ents_p'])} | {pct(s['ents_r'])} | **{pct(s['ents_f'])}** |")
    for label, prf in sorted(s["ents_per_type"].items()):
        rows.append(f"| {label} | {pct(prf['p'])} | {pct(prf['r'])} | {pct(prf['f'])} |")
    if "test_scores_gold_tokens" in f:
        g = f["test_scores_gold_tokens"]
        rows.append(f"| overall, on the gold tokens (as CoNLL figures are published) | {pct(g['ents_p'])} | {pct(g['ents_r'])} | **{pct(g['ents_f'])}** |")
    candidates = f.get("candidates", [])
    rescored = any("dev_ents_f_logged" in c for c in candidates)
    if "dev_f_gold_tokens" in f and rescored:
        rows.append(f"| dev (model selection) | | | {pct(f['dev_f'])} |")
        rows.append(f"| dev, on the gold tokens | | | {pct(f['dev_f_gold_tokens'])} |")
    elif "dev_f_gold_tokens" in f:
        rows.append(f"| dev | | | {pct(f['dev_f'])} |")
        rows.append(f"| dev, on the gold tokens (what `spacy train` logged: model selection) | | | {pct(f['dev_f_gold_tokens'])} |")
    else:
        rows.append(f"| dev (model selection) | | | {pct(f['dev_f'])} |")
    text = "\n".join(rows) + "\n"
    if "words_per_second" in f:
        wps = f["words_per_second"]
        text += (
            "\n| throughput, CoNLL test, `nlp.pipe(batch_size=32)` | words/s |\n| --- | --- |\n"
            f"| bertprod_ner | {wps['bertprod_ner']:,.0f} |\n"
            f"| spacy-transformers `transformer` + `ner`, same encoder | {wps['spacy_transformers']:,.0f} |\n"
            f"| ratio | **{f['ratio']:.2f}x** |\n"
        )
    if candidates:
        # rescored candidates show the dev F the choice was made on and the one spacy train logged
        dev_columns = ["dev F, spaCy's tokens (selection)", "dev F logged in training (`spacy train`, `bertprod distill`)"] if rescored else ["dev F"]
        columns = ["candidate (selected on dev only)", "training command", "model-best at step", *dev_columns]
        text += "\n| " + " | ".join(columns) + " |\n" + "| --- " * len(columns) + "|\n"
        for c in candidates:
            dev = [pct(c["dev_ents_f"])] + ([pct(c["dev_ents_f_logged"])] if rescored else [])
            name = f"**{c['name']}** (chosen)" if c["chosen"] else c["name"]
            text += "| " + " | ".join([name, f"`{c['command']}`", f"{c['best_step']:,}", *dev]) + " |\n"
        earlier: Dict[str, List[str]] = {}
        for c in candidates:
            if "scored_in" in c:
                earlier.setdefault(f"`{c['scored_in']['git_commit'][:12]}`, {c['scored_in']['date']}", []).append(c["name"])
        for run, names in earlier.items():
            text += f"\nScored on dev in an earlier run of this report (at commit {run}), not again here: {', '.join(names)}."
        if "chosen_figures_from" in f:
            run = f["chosen_figures_from"]
            machine = f", {f['machine']}" if "machine" in f else ""
            text += f" The chosen candidate's test and throughput figures are that run's (`{run['command']}`{machine}): the test set was scored once, there."
        text += "\n" if earlier else ""
    return text + source_line(r)


def sst2_textcat(file: str = "sst2_textcat") -> str:
    r = load(file)
    f = r["figures"]
    rows = ["| SST-2 test (1,821 sentences) | P | R | F |", "| --- | --- | --- | --- |"]
    for label, prf in sorted(f["test_per_label"].items()):
        rows.append(f"| {label} | {pct(prf['p'])} | {pct(prf['r'])} | {pct(prf['f'])} |")
    text = "\n".join(rows) + "\n\n"
    text += (
        "| | accuracy | macro F1 |\n| --- | --- | --- |\n"
        f"| test | **{pct(f['test_accuracy'])}** | {pct(f['test_macro_f'])} |\n"
        f"| dev (model selection) | {pct(f['dev_accuracy'])} | {pct(f['dev_macro_f'])} |\n"
    )
    if "docs_per_second" in f:
        dps, wps = f["docs_per_second"], f["words_per_second"]
        text += (
            "\n| throughput, SST-2 test, `nlp.pipe(batch_size=32)` | docs/s | words/s |\n| --- | --- | --- |\n"
            f"| bertprod_textcat | {dps['bertprod_textcat']:.1f} | {wps['bertprod_textcat']:,.0f} |\n"
            f"| spacy-transformers `transformer` + `textcat`, same encoder | {dps['spacy_transformers']:.1f} | {wps['spacy_transformers']:,.0f} |\n"
            f"| ratio | **{f['ratio']:.2f}x** | |\n"
        )
    return text + source_line(r)


def shared_encoder(file: str = "sst2_textcat") -> str:
    r = load(file)
    t = r["figures"]["shared_encoder_seconds"]
    base = t["NER alone"]
    rows = ["| pipeline | CoNLL test (231 docs) | SST-2 test (1,821 docs) |", "| --- | --- | --- |"]
    for label, secs in t.items():
        c, s = secs["conll_test"], secs["sst2_test"]
        rows.append(f"| {label} | {c:.2f} s ({c / base['conll_test']:.2f}x) | {s:.2f} s ({s / base['sst2_test']:.2f}x) |")
    return "\n".join(rows) + "\n" + source_line(r)


def int8_batch(file: str = "int8_batch") -> str:
    r = load(file)
    f = r["figures"]
    rows = [
        f"| CoNLL-2003 test, alone vs `nlp.pipe(batch_size={f['batch_size']})` | docs whose entities differ | entities differing | F1 alone | F1 batched |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, v in f["variants"].items():
        rows.append(f"| {label} | {v['docs_changed']} / {v['docs']} ({v['docs_changed_pct']:.1f}%) | {v['entities_differing']} of {v['entities']} | {v['f1_alone']:.2f} | {v['f1_batched']:.2f} |")
    return "\n".join(rows) + "\n" + source_line(r)


def spread_cell(s: Dict[str, Any], fmt: str = "{:.2f}", unit: str = "") -> str:
    """A median with its spread over repeated runs: `0.72x (0.64-0.90)`."""
    return f"{fmt.format(s['median'])}{unit} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def soak_thresholds(r: Dict[str, Any]) -> str:
    """bench/soak.py --compare-thresholds: median drift and spread per threshold."""
    f = r["figures"]
    rows = [
        f"| pipeline | mmap threshold | max drift after warm-up: median (min-max) of {f['repeats']} | docs/s: median (min-max) |",
        "| --- | --- | --- | --- |",
    ]
    for row in f["summary"]:
        threshold = f"{row['mmap_threshold'] // 1024:,} KiB" if row["mmap_threshold"] else "none (glibc's moving threshold)"
        drift = spread_cell(row["drift"], "{:.1%}")
        rows.append(f"| {row['pipeline']} | {threshold} | {drift} | {spread_cell(row['docs_per_second'], '{:.0f}')} |")
    for failed in f["failed"]:
        rows.append(f"| {failed['pipeline']} | {failed['mmap_threshold']:,} | failed (round {failed['round']}) | |")
    text = "\n".join(rows) + f"\n\n{f['docs']:,} documents a run ({f['model']} model, heads trained {f['train_steps']} updates)"
    text += f", release_memory() every {f['release_every']:,}; runs in turns, {f['repeats']} rounds."
    for pipeline, v in f.get("verdicts", {}).items():
        text += f" {pipeline}: lowest median drift at {v['lowest_median_drift']:,} bytes" + ("" if v["separated"] else f", its spread overlapping {v['runner_up']:,}'s") + "."
    return text + "\n" + source_line(r)


def soak(file: str = "soak") -> str:
    r = load(file)
    f = r["figures"]
    if "summary" in f:
        return soak_thresholds(r)
    release = f.get("release_every", 0)
    when = f"release_memory() every {release:,} docs" if release else "no release_memory()"
    if f.get("mmap_threshold"):
        when += f", mmap threshold pinned at {f['mmap_threshold'] // 1024} KiB"
    rows = [
        f"| pipeline ({f['model']} model, {when}) | docs | docs/s | RSS MiB every {f['every']:,} docs | max drift after warm-up |",
        "| --- | --- | --- | --- | --- |",
    ]
    wrote = all("cats" in row for row in f["results"])  # reports since the soak counts what each pipeline writes
    if wrote:
        rows[0] += " entities / docs with cats / answers |"
        rows[1] += " --- |"
    for row in f["results"]:
        series = " ".join(f"{s['rss_mib']:.0f}" for s in row["rss_series_mib"])
        rows.append(f"| {row['pipeline']} | {row['docs']:,} | {row['docs_per_second']:.0f} | {series} | {row['max_drift_after_warm_up'] * 100:.1f}% |")
        if wrote:
            rows[-1] += f" {row['entities']:,} / {row['cats']:,} / {row['answers']:,} |"
    for name in f["failed"]:
        rows.append(f"| {name} | failed | | | |" + (" |" if wrote else ""))
    return "\n".join(rows) + "\n" + source_line(r)


def long_docs(file: str = "long_docs") -> str:
    r = load(file)
    rows = ["| code | characters | tokens | peak RSS growth | seconds | words/s |", "| --- | --- | --- | --- | --- | --- |"]
    for row in r["figures"]["rows"]:
        code = "this version" if row["code"] == "new" else "before (`--old-commit`)"
        rows.append(f"| {code} | {row['chars']:,} | {row['tokens']:,} | {row['peak_growth_mib']:,.0f} MiB | {row['seconds']:.1f} | {row['words_per_s']:,.0f} |")
    return "\n".join(rows) + "\n" + source_line(r)


def production_ner(file: str = "production_ner") -> str:
    """bench/production.py --tasks ner: teacher, int8, student, ONNX rows."""
    r = load(file)
    rows = ["| row | accuracy | words/s | p50 ms | p95 ms | size MB | vs teacher |", "| --- | --- | --- | --- | --- | --- | --- |"]
    group = [row for row in r["figures"]["rows"] if row["task"] == "ner"]
    base = next(row for row in group if row["row"] == "teacher fp32")
    for row in group:
        delta = f"{row['score'] - base['score']:+.2f} pts, " if row["score"] is not None else ""
        rows.append(f"| {row['row']} | {row['accuracy']} | {row['per_s']:,.0f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['size_mb']:.1f} | {delta}{row['per_s'] / base['per_s']:.2f}x |")
    return "\n".join(rows) + "\n" + source_line(r)


def serve_rounds(r: Dict[str, Any]) -> str:
    """bench/serve.py in rounds: every level on the same sentences, medians
    and spread over the rounds, ratios in words/s."""
    f = r["figures"]
    s = f["summary"]
    rows = [
        "| server | clients | words/s | p50 ms | p95 ms | p99 ms | mean batch | vs offline (words/s) | vs unbatched (words/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("batched", "unbatched"):
        for clients, level in s[name].items():
            cells = [spread_cell(level["words_per_s"], "{:,.0f}")] + [spread_cell(level[key], "{:.1f}") for key in ("p50_ms", "p95_ms", "p99_ms", "mean_batch_texts")]
            cells += [spread_cell(level["vs_offline"], unit="x"), spread_cell(level["vs_unbatched"], unit="x") if "vs_unbatched" in level else ""]
            rows.append(f"| {name} | {clients} | " + " | ".join(cells) + " |")
    rows.append(f"| offline `nlp.pipe(batch_size=32)` | | {spread_cell(s['offline_words_per_s'], '{:,.0f}')} | | | | | | |")
    text = "\n".join(rows) + f"\n\nMedian (min-max) of {f['settings']['repeats']} rounds; every level and the offline run tag the same"
    text += f" {f['sentences']:,} CoNLL-2003 test sentences ({f['words']:,} words), one a request."
    target = f["targets"].get("batched_vs_offline_32_clients")
    if target:
        status = {True: "met", False: "missed", None: "not judged: not one server core with the default settings"}[target["met"]]
        text += f" Batched vs offline at 32 clients: {spread_cell(target, unit='x')} against the target {target['target']}x ({status});"
        text += f" unbatched: {spread_cell(f['targets']['unbatched_vs_offline_32_clients'], unit='x')}."
    text += f" Servers' `--mmap-threshold` {f['settings']['mmap_threshold']:,} bytes, {f['settings']['server_cores']} server core(s).\n"
    return text + source_line(r)


def serve(file: str = "serve") -> str:
    """bench/serve.py: the server with and without batching, and offline nlp.pipe."""
    r = load(file)
    f = r["figures"]
    if "rounds" in f:
        return serve_rounds(r)
    ratios = {c["clients"]: c for c in f["comparison"]}
    rows = [
        "| server | clients | sentences/s | words/s | p50 ms | p95 ms | p99 ms | mean batch"
        " | CPU ms a request: event loop + other threads | offline, same sentences: sentences/s (CPU ms a sentence) | vs offline | vs unbatched |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in (("batched", f["batched"]), ("unbatched", f["unbatched"])):
        for row in runs:
            c = ratios.get(row["clients"], {}) if name == "batched" else {}
            vs_unbatched = f"{c['vs_unbatched']:.2f}x" if c.get("vs_unbatched") else ""
            # reports before the per-level offline runs compared every level with the final one
            offline = row.get("offline", f["offline"])
            same = f"{row['offline']['sentences_per_s']:,.1f}" if "offline" in row else ""
            if "cpu_ms_per_sentence" in row.get("offline", {}):
                same += f" ({row['offline']['cpu_ms_per_sentence']:.1f})"
            cpu = row.get("cpu_ms_per_request")
            cpu_cell = f"{cpu['event_loop']:.1f} + {cpu['other_threads']:.1f}" if cpu else ""
            vs_offline = f"{c['vs_offline']:.2f}x" if c else f"{row['sentences_per_s'] / offline['sentences_per_s']:.2f}x"
            latency = f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f}"
            ratios_cells = f"{cpu_cell} | {same} | {vs_offline} | {vs_unbatched}"
            rows.append(f"| {name} | {row['clients']} | {row['sentences_per_s']:,.1f} | {row['words_per_s']:,.0f} | {latency} | {row.get('mean_batch_texts', 0):.2f} | {ratios_cells} |")
    o = f["offline"]
    rows.append(f"| offline `nlp.pipe(batch_size=32)`, all sentences | | {o['sentences_per_s']:,.1f} | {o['words_per_s']:,.0f} | | | | | | | | |")
    single = min(f["batched"], key=lambda row: row["clients"])["p50_ms"]  # the fewest clients: 1
    p99_8 = next((c["p99_vs_single_request"] for c in f["comparison"] if c["clients"] == 8), None)
    text = "\n".join(rows) + f"\n\n{f['sentences']:,} CoNLL-2003 test sentences ({f['words']:,} words), one a request; single-request p50 {single:.1f} ms"
    if p99_8 is not None:
        text += f"; p99 at 8 clients {p99_8:.2f}x that"
    threshold = f["settings"].get("mmap_threshold")
    if threshold is not None:
        text += f"; servers' `--mmap-threshold` {threshold:,} bytes"
    return text + ".\n" + source_line(r)


#: bench/annotate.py's process roles, as the table names them
CPU_ROLES = {
    "this process": "this process",
    "this process (driver)": "driver",
    "Ray actors (the pipeline)": "actors",
    "Ray's task workers (the reads)": "read workers",
    "Ray's daemons": "Ray daemons",
    "Ray Data's helper actors": "Ray Data helpers",
    "other processes started by the run": "other (spaCy workers)",
}


def annotate_pairs(r: Dict[str, Any]) -> str:
    """bench/annotate.py in rounds: Ray's fixed start-up and its cost per
    document, fitted over corpus sizes, with their spread; with the local
    engine in the rounds, Ray's cost split into the command's own (local
    less plain) and Ray's (Ray less local)."""
    f = r["figures"]
    local = "local_1_worker_vs_plain" in f
    head = "| round | docs | plain nlp.pipe s |" + (" local engine, 1 worker s |" if local else "") + " ray engine, 1 worker s | Ray's overhead s |"
    rows = [head, "| --- " * head.count(" | ") + "| --- |"]
    for rnd in f["rounds"]:
        for pair in rnd["pairs"]:
            cells = [str(rnd["round"]), f"{pair['docs']:,}", f"{pair['plain']['seconds']:.1f}"] + ([f"{pair['local']['seconds']:.1f}"] if local else [])
            rows.append("| " + " | ".join(cells + [f"{pair['ray']['seconds']:.1f}", f"{pair['overhead_seconds']:+.1f}"]) + " |")
    for name, run in f.get("other_rows", {}).items():
        rows.append(f"| {name} | {run['docs']:,} | |" + (" |" if local else "") + f" {run['seconds']:.1f} | |")
    v = f["ray_1_worker_vs_plain"]
    fixed, share = v["fixed_seconds"], v["per_doc_share"]
    text = "\n".join(rows) + f"\n\nRay at 1 worker over the plain loop, fitted per round over {', '.join(f'{n:,}' for n in f['sizes'])} documents, median (min-max) of {f['repeats']}:"
    text += f" fixed start-up {spread_cell(fixed, '{:.1f}', ' s')} (target at most {fixed['target_at_most']:.0f} s: {'met' if fixed['met'] else 'missed'});"
    text += f" per document {spread_cell(share, '{:.1%}')} of the plain loop's {spread_cell(v['plain_ms_per_doc'], '{:.2f}', ' ms')}"
    text += f" (target at most {share['target_at_most']:.0%}: {'met' if share['met'] else 'missed'})."
    if local:
        text += " " + annotate_cpu(f)
        own, ray = f["local_1_worker_vs_plain"], f["ray_vs_local_1_worker"]
        text += " Split by the local engine at 1 worker (the same command without Ray), per document as a share of the plain loop's:"
        text += f" the command's own work {spread_cell(own['per_doc_share'], '{:.1%}')} (local less plain; fixed {spread_cell(own['fixed_seconds'], '{:.1f}', ' s')}),"
        text += f" Ray's {spread_cell(ray['per_doc_share'], '{:.1%}')} (Ray less local; fixed {spread_cell(ray['fixed_seconds'], '{:.1f}', ' s')})."
    return text + "\n" + source_line(r)


#: the Ray processes that are not the actor running the pipeline
RAY_OTHERS = ("this process (driver)", "Ray's daemons", "Ray Data's helper actors", "Ray's task workers (the reads)", "other processes started by the run")


def annotate_cpu(f: Dict[str, Any]) -> str:
    """CPU milliseconds a document by run and process role, from the CPU
    seconds each run recorded: the larger corpus's less the smaller's, over
    the documents between them, median (min-max) of the rounds."""

    def per_doc(run: str, roles: Tuple[str, ...]) -> Dict[str, Any]:
        values = []
        for rnd in f["rounds"]:
            small, large = rnd["pairs"][0], rnd["pairs"][-1]
            cpu = [sum(pair[run]["cpu_seconds"].get(role, 0.0) for role in roles) for pair in (small, large)]
            values.append(1000 * (cpu[1] - cpu[0]) / (large["docs"] - small["docs"]))
        return spread(values)

    cells = [
        ("the plain loop", per_doc("plain", ("this process",))),
        ("the local engine", per_doc("local", ("this process (driver)", "other processes started by the run"))),
        ("Ray's actor", per_doc("ray", ("Ray actors (the pipeline)",))),
        ("Ray's other processes (driver, daemons, Ray Data's helpers, reads)", per_doc("ray", RAY_OTHERS)),
    ]
    return "CPU a document (the larger corpus's CPU seconds less the smaller's, per document between them): " + "; ".join(f"{name} {spread_cell(cell, '{:.2f}', ' ms')}" for name, cell in cells) + "."


def annotate(file: str = "annotate") -> str:
    """bench/annotate.py: docs/s of a plain nlp.pipe loop and the two engines."""
    r = load(file)
    f = r["figures"]
    if "rounds" in f:
        return annotate_pairs(r)
    with_cpu = any("cpu_seconds" in run for run in f["runs"].values())
    rows = ["| run | docs | seconds | docs/s |" + (" CPU seconds by process |" if with_cpu else ""), "| --- | --- | --- | --- |" + (" --- |" if with_cpu else "")]
    runs = dict(f["runs"])
    if "ray_first_shard" in f:
        runs["ray engine, 1 worker, first shard only"] = f["ray_first_shard"]
    for name, run in runs.items():
        seconds = f"{run['seconds']:.1f}"
        if len(run.get("all_seconds", [])) > 1:
            seconds += " (median of " + ", ".join(f"{s:.1f}" for s in run["all_seconds"]) + ")"
        by_role = run.get("cpu_seconds", {})
        order = [role for role in CPU_ROLES if role in by_role] + [role for role in by_role if role not in CPU_ROLES]
        cpu = ", ".join(f"{CPU_ROLES.get(role, role)} {by_role[role]:.1f}" for role in order)
        rows.append(f"| {name} | {run['docs']:,} | {seconds} | {run['docs_per_s']:,.1f} |" + (f" {cpu} |" if with_cpu else ""))
    text = "\n".join(rows) + f"\n\nOverhead over the plain loop at 1 worker: Ray {f['ray_overhead_pct_1_worker']:+.1f}%, local engine {f['local_overhead_pct_1_worker']:+.1f}%."
    if "ray_first_shard" in f:
        first, plain = f["ray_first_shard"], f["runs"]["plain nlp.pipe"]
        text += f" Ray's fixed cost, the first-shard run less the plain loop's time for its {first['docs']:,} documents: {first['fixed_seconds']:.1f} s."
        text += f" The plain loop's pipeline load ({plain['load_seconds']:.1f} s, in a process that had imported its libraries) is not in its seconds."
    return text + "\n" + source_line(r)


#: bench/lean.py's four rows a model, in order
LEAN_ROWS = ("torch fp32", "ONNX int8", "ONNX int8 fused", "ONNX int8 fused inference-only (lean env)")


def lean(file: str = "lean") -> str:
    """bench/lean.py: torch fp32 against the ONNX rows, the last in the lean (no torch) environment."""
    r = load(file)
    f = r["figures"]
    rows = [
        "| model | pipeline | environment MB | wheel MB | cold start s | RSS MB | words/s | F1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for model, runs in f["results"].items():
        for name, run in runs.items():
            cells = (model, name, f"{run['env_mb']:,.0f}", f"{run['wheel_mb']:.1f}", f"{run['cold_start_s']:.2f}", f"{run['rss_rss_mb']:,.0f}", f"{run['words_per_s']:,.0f}", f"{run['f1']:.2f}")
            rows.append("| " + " | ".join(cells) + " |")
        torch_row, unfused, fused, lean_row = (runs[name] for name in LEAN_ROWS)
        notes.append(
            f"{model}: cold start {lean_row['cold_start_s'] / torch_row['cold_start_s']:.2f}x torch fp32's; "
            f"fusion {fused['words_per_s'] / unfused['words_per_s'] - 1:+.0%} words/s over the unfused ONNX int8"
        )
    lean_env, full_env = f["environments"]["lean"], f["environments"]["full"]
    text = "\n".join(rows) + f"\n\nLean virtualenv: {lean_env['venv_folder_mb']:,.0f} MB on disk (its installed distributions {lean_env['env_mb']:,.0f} MB)"
    text += f" against {full_env['env_mb']:,.0f} MB of distributions for `[train]`. "
    return text + "; ".join(notes) + ".\n" + source_line(r)


def import_time(file: str = "import_time") -> str:
    """bench/import_time.py: the package import and a Ray read task's import, before and after."""
    r = load(file)
    rows = ["| what is imported | tree | import s (median, min-max) | process wall s | heavy packages it loads |", "| --- | --- | --- | --- | --- |"]
    for row in r["figures"]["rows"]:
        tree = f"{row['tree']} (`{row['commit']}`)" if row["tree"] == "before" else "after (this commit)"
        loaded = ", ".join(row["loaded"]) or "none"
        rows.append(f"| {row['case']} (`{row['module']}`) | {tree} | {spread_cell(row['import_s'], '{:.3f}')} | {spread_cell(row['process_wall_s'])} | {loaded} |")
    return "\n".join(rows) + "\n" + source_line(r)


def encoder_families(file: str = "encoder_families") -> str:
    """bench/encoder_families.py: fused operators and the fused int8 speed-up per encoder family."""
    r = load(file)
    f = r["figures"]
    rows = [
        f"| family ({f['size']['layers']} layers, {f['size']['width']} wide, random weights) | fused ONNX Runtime operators "
        "| fp32 fused s | int8 fused s | int8 unfused s | int8 fused vs fp32 | vs int8 unfused |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for family, row in f["families"].items():
        s = row["seconds"]
        ops = ", ".join(row["fused_ops"]) or "none (W010: unfused graph)"
        cells = " | ".join(spread_cell(s[v], "{:.2f}") for v in ("fp32 fused", "int8 fused", "int8 unfused"))
        rows.append(f"| {family} | {ops} | {cells} | {row['int8_fused_speedup_over_fp32']:.2f}x | {row['int8_fused_speedup_over_int8_unfused']:.2f}x |")
    caption = f"\n{f['sentences']} CoNLL-2003 test sentences, `nlp.pipe(batch_size={f['batch_size']})`, {f['threads']} thread(s), {f['repeats']} interleaved repeats (median, min-max).\n"
    return "\n".join(rows) + "\n" + caption + source_line(r)


def words_cell(row: Dict[str, Any]) -> str:
    """A cnn_race row's median words/s with its (min-max)."""
    low, high = row["words_per_s_range"]
    return spread_cell({"median": row["words_per_s"], "min": low, "max": high}, "{:,.0f}")


def cnn_race_table(f: Dict[str, Any]) -> str:
    """bench/cnn_race.py's figures: each pipeline against spaCy's CNN NER
    pipeline in the same runtime, at --threads and at 1 thread."""
    settings = f["settings"]
    threads = settings["threads"]
    main = [row for row in f["rows"] if row["threads"] == threads]
    one = {(row["system"], row["runtime"], row["variant"]): row for row in f["rows"] if row["threads"] == 1}
    ratios = {(r["system"], r["runtime"], r["variant"]): r for r in f["ratios"] if r["threads"] == threads}
    plural = "s" if threads != 1 else ""
    head = ["system", "variant", "runtime", f"words/s, {threads} thread{plural}", "words/s, 1 thread", f"vs spacy-cnn, same runtime, {threads} thread{plural}"]
    head += ["test F1", "F1 vs spacy-cnn", "cold start s", "RSS MB", "package MB"]
    if threads == 1:
        head.remove("words/s, 1 thread")
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in main:
        key = (row["system"], row["runtime"], row["variant"])
        ratio = ratios.get(key)
        speed = [words_cell(row)]
        if threads != 1:
            speed.append(words_cell(one[key]) if key in one else "")
        versus = f"{ratio['words_per_s_ratio']:.2f}x" if ratio else ""
        f1_diff = f"{ratio['f1_diff']:+.2f}" if ratio else ""
        cells = [row["system"], row["variant"], row["runtime"], *speed, versus, f"{row['f1']:.2f}", f1_diff]
        cells += [f"{row['cold_start_s']:.2f}", f"{row['rss_mb']:,.0f}", f"{row['package_mb']:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    labels = sorted({label for row in main for label in row.get("f1_per_type", {})})
    text = "\n".join(rows) + "\n"
    if labels:
        per_type = ["| system | variant | runtime | " + " | ".join(labels) + " |", "|" + " --- |" * (3 + len(labels))]
        for row in main:
            scores = row.get("f1_per_type", {})
            per_type.append(f"| {row['system']} | {row['variant']} | {row['runtime']} | " + " | ".join(f"{scores[label]:.2f}" if label in scores else "" for label in labels) + " |")
        text += "\nTest F1 per entity type:\n\n" + "\n".join(per_type) + "\n"
    text += (
        f"\n{settings['test_docs']:,} CoNLL-2003 test documents ({settings['test_words']:,} words), `nlp.pipe(batch_size={settings['batch_size']})`, every figure in a new process;"
        f" words/s: median (min-max) of {settings['repeats']} interleaved repeats; cold start (import spacy, spacy.load, the first doc): median of {settings['cold_starts']} new processes;"
        f" RSS after {settings['rss_docs']:,} test sentences; package: the `spacy package --build wheel` file. Cold start and RSS at {threads} thread{plural}.\n"
    )
    return text


def onnx_session(file: str = "onnx_session") -> str:
    """bench/onnx_session.py: ONNX Runtime session settings on the recorded encoder calls."""
    r = load(file)
    f = r["figures"]
    rows = [
        f"| session setting ({f['threads']} intra-op threads) | run s: median (min-max) of {f['repeats']} | vs the default | session creation s | peak RSS MB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in f["rows"]:
        rows.append(f"| {row['setting']} | {spread_cell(row['run_s'])} | {row['vs_default']:.2f}x | {row['create_s']['median']:.2f} | {row['peak_rss_mb']['median']:.0f} |")
    rows.append("")
    rows.append(
        f"{f['documents']} CoNLL-2003 test documents ({f['words']:,} words), `nlp.pipe(batch_size={f['batch_size']})`: {f['encoder_calls']} encoder calls, "
        f"replayed in a new process per setting and repeat ({f['padding_share']:.1%} of their {f['positions']:,} positions are padding); "
        f"end to end {f['end_to_end_s']:.2f} s, of which {f['session_share']:.0%} in the session."
    )
    return "\n".join(rows) + "\n" + source_line(r)


def static_int8(file: str = "static_int8") -> str:
    """bench/static_int8.py: static (calibrated QDQ) against dynamic int8 for the fused encoder."""
    r = load(file)
    f = r["figures"]
    rows = [
        f"| encoder graph | run s: median (min-max) of {f['repeats']} | vs dynamic int8 | dev F1 | test F1 | largest hidden-state difference from fp32 | model MB | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in f["rows"]:
        rows.append(
            f"| {row['variant']} | {spread_cell(row['run_s'])} | {row['vs_dynamic']:.2f}x | {row['dev_f'] * 100:.2f} | {row['test_f'] * 100:.2f} "
            f"| {row['max_hidden_diff']:.2f} | {row['model_mb']:.1f} | {row['peak_rss_mb']['median']:.0f} |"
        )
    rows.append("")
    rows.append(
        f"{f['test_documents']} CoNLL-2003 test documents ({f['test_words']:,} words): {f['encoder_calls']} encoder calls from `nlp.pipe(batch_size={f['batch_size']})`, "
        f"replayed in a new process per graph and repeat at {f['threads']} intra-op threads; F1 of the pipeline with each graph on {f['dev_documents']} dev and the test documents. "
        f"Static scales calibrated ({f['calibrate_method']}) on the encoder inputs of the first {f['calibration_documents']} dev documents ({f['calibration_calls']} calls)."
    )
    return "\n".join(rows) + "\n" + source_line(r)


def cnn_race(file: str = "cnn_race") -> str:
    """bench/cnn_race.py: bertprod pipelines against spaCy's CNN NER pipeline."""
    r = load(file)
    return cnn_race_table(r["figures"]) + source_line(r)


RENDERERS: Dict[str, Callable[[], str]] = {
    "long_docs": long_docs,
    "conll_ner": conll_ner,
    "sst2_textcat": sst2_textcat,
    "shared_encoder": shared_encoder,
    "int8_batch": int8_batch,
    "soak": soak,
    "soak_tagging": lambda: soak("soak_tagging"),
    "soak_thresholds": lambda: soak("soak_thresholds"),
    "production_ner": production_ner,
    "serve": serve,
    "serve_rounds": lambda: serve("serve_rounds"),
    "serve_mmap_1mib": lambda: serve("serve_mmap_1mib"),
    "serve_no_pin": lambda: serve("serve_no_pin"),
    "serve_no_regroup": lambda: serve("serve_no_regroup"),
    "soak_no_pin": lambda: soak("soak_no_pin"),
    "soak_mmap_1mib": lambda: soak("soak_mmap_1mib"),
    "annotate": annotate,
    "annotate_before_ray_fixes": lambda: annotate("annotate_before_ray_fixes"),
    "lean": lean,
    "import_time": import_time,
    "encoder_families": encoder_families,
    "cnn_race": cnn_race,
    "onnx_session": onnx_session,
    "static_int8": static_int8,
}


def blocks(text: str) -> List[re.Match]:
    return list(BLOCK.finditer(text))


def render_page(text: str) -> str:
    """The page's text with every table block rendered anew from its result file."""
    return BLOCK.sub(lambda m: f"<!-- table: {m['name']} -->\n{RENDERERS[m['name']]()}<!-- /table -->", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the tables in docs/benchmarks.md")
    args = parser.parse_args()
    text = PAGE.read_text(encoding="utf8")
    new = render_page(text)
    if args.write:
        PAGE.write_text(new, encoding="utf8")
        print(f"rewrote {len(blocks(new))} tables in {PAGE}")
    else:
        for m in blocks(new):
            print(f"== {m['name']}\n{m['body']}")


if __name__ == "__main__":
    main()
