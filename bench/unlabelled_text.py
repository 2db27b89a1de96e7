"""Unlabelled text for distillation: one text per line, from ../shared/datasets.

- CoNLL-2003 *train* sentences (tokens joined by spaces, labels dropped);
- SQuAD contexts (the train subset; --squad-dev adds the SQuAD dev contexts),
  split into sentences;
- SST-2 train sentences (lower-cased, PTB-tokenized as GLUE has them).

CoNLL-2003 dev and test text never goes in: any line equal to a dev or test
sentence is dropped (and counted). Lines are deduplicated, shuffled (--seed)
and cut to --limit; the file holds text only, the counts per source are
printed.

    python bench/unlabelled_text.py [--limit N] [--sources conll,squad,sst2] [--output bench/results/unlabelled.txt]
"""

import argparse
import csv
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Set

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets"
#: a sentence ends at . ! or ? (and closing quotes or brackets) before a space and a capital, digit or quote
SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(])")


def conll_sentences(path: Path) -> Iterator[str]:
    """The sentences of a CoNLL-2003 file, tokens joined by spaces."""
    tokens: List[str] = []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                yield " ".join(tokens)
            tokens = []
            continue
        tokens.append(line.split(" ", 1)[0])
    if tokens:
        yield " ".join(tokens)


def squad_sentences(path: Path) -> Iterator[str]:
    """The contexts of a SQuAD file, split into sentences."""
    for article in json.loads(path.read_text(encoding="utf8"))["data"]:
        for paragraph in article["paragraphs"]:
            for sentence in SENTENCE_END.split(paragraph["context"]):
                yield sentence


def sst2_sentences(path: Path) -> Iterator[str]:
    """The sentences of the SST-2 `label<TAB>text` file (header skipped)."""
    with path.open(encoding="utf8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)
        for row in rows:
            yield row[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="Folder with conll2003/, squad/, sst2/")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "unlabelled.txt")
    parser.add_argument("--limit", type=int, default=0, help="Lines to write (0: all)")
    parser.add_argument("--sources", default="conll,squad,sst2", help="Comma-separated: conll, squad, sst2 (leave conll out when --corpus already gives distill the CoNLL train set)")
    parser.add_argument("--squad-dev", action="store_true", help="Also the SQuAD dev contexts (not CoNLL data; off by default)")
    parser.add_argument("--seed", type=int, default=0, help="Shuffle seed")
    args = parser.parse_args()
    if args.limit < 0:
        raise SystemExit(f"--limit must be 0 (all) or more, not {args.limit}")
    conll = args.data / "conll2003"
    chosen = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = sorted(set(chosen) - {"conll", "squad", "sst2"})
    if unknown or not chosen:
        raise SystemExit(f"--sources takes conll, squad and sst2, not {args.sources!r}")
    sources: Dict[str, Iterator[str]] = {}
    if "conll" in chosen:
        sources["conll2003/train.txt"] = conll_sentences(conll / "train.txt")
    if "squad" in chosen:
        sources["squad/train-subset-v1.1.json"] = squad_sentences(args.data / "squad" / "train-subset-v1.1.json")
        if args.squad_dev:
            sources["squad/dev-v1.1.json"] = squad_sentences(args.data / "squad" / "dev-v1.1.json")
    if "sst2" in chosen:
        sources["sst2/train.tsv"] = sst2_sentences(args.data / "sst2" / "train.tsv")
    held_out: Set[str] = {s for split in ("dev.txt", "test.txt") for s in conll_sentences(conll / split)}
    seen: Set[str] = set()
    lines: List[tuple] = []
    dropped: Counter = Counter()
    for source, texts in sources.items():
        for text in texts:
            text = " ".join(text.split())
            if not text:
                continue
            if text in held_out:
                dropped[f"{source} (equal to a CoNLL dev/test sentence)"] += 1
            elif text in seen:
                dropped[f"{source} (duplicate)"] += 1
            else:
                seen.add(text)
                lines.append((source, text))
    random.Random(args.seed).shuffle(lines)
    if args.limit:
        lines = lines[: args.limit]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(text + "\n" for _, text in lines), encoding="utf8")
    n_lines: Counter = Counter(source for source, _ in lines)
    n_words: Counter = Counter()
    for source, text in lines:
        n_words[source] += len(text.split())
    for source in sources:
        print(f"{source:<32} {n_lines[source]:>8,} lines {n_words[source]:>10,} words")
    for reason, n in sorted(dropped.items()):
        print(f"dropped: {reason}: {n:,}")
    print(f"wrote {len(lines):,} lines, {sum(n_words.values()):,} words (whitespace-split) to {args.output}")


if __name__ == "__main__":
    main()
