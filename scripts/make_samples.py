"""Write the small sample corpora shipped in assets/ (made up here from
templates; not taken from any dataset), one per public format the project
reads: CoNLL-2003 columns (assets/conll2003), SST-2 TSV (assets/sst2/glue)
and SQuAD JSON (assets/squad). The CoNLL sample is also the package's own
(`bertprod demo` after a pip install): assets/conll2003 links to
spacy_bertprod/samples/conll2003, so it is written there, once.

    python scripts/make_samples.py
"""

import json
import random
from pathlib import Path

PEOPLE = ["Angela Merkel", "John Smith", "Marie Curie", "Ada Lovelace", "Nelson Mandela", "Maria Garcia", "Kenji Tanaka", "Olga Petrova", "Ahmed Khan", "Sofia Rossi", "Lars Nilsson", "Chen Wei"]
ORGS = ["Siemens", "Reuters", "Acme Corp", "the United Nations", "Deutsche Bank", "Toyota", "Greenpeace", "Nokia", "the World Bank", "Airbus", "Unilever", "Interpol"]
PLACES = ["Munich", "Paris", "London", "Warsaw", "Tokyo", "Nairobi", "Lima", "Oslo", "Cairo", "Toronto", "Madrid", "Sydney"]
MISC = ["German", "French", "Japanese", "Olympic", "Nobel", "Brazilian", "Kenyan", "Norwegian"]
TEMPLATES = [
    "{PER} visited the {ORG} plant in {LOC} .",
    "{ORG} opened a new office in {LOC} on Monday .",
    "{PER} , a {MISC} engineer , joined {ORG} last year .",
    "Shares of {ORG} rose 3 percent in {LOC} trading .",
    "{PER} met {PER} in {LOC} to discuss the {MISC} election .",
    "The {MISC} team beat the visitors 2-1 in {LOC} .",
    "{PER} told {ORG} that talks would resume in {LOC} .",
    "Police in {LOC} said {PER} was not injured .",
    "{ORG} and {ORG} signed a supply deal worth 40 million dollars .",
    "{PER} won the {MISC} prize for physics .",
    "Flights from {LOC} to {LOC} were cancelled on Friday .",
    "{PER} said the {MISC} market remained weak .",
]
TYPES = {"PER": PEOPLE, "ORG": ORGS, "LOC": PLACES, "MISC": MISC}


def sentence(rng: random.Random):
    rows = []
    for part in rng.choice(TEMPLATES).split():
        if part.startswith("{") and part.endswith("}"):
            label = part[1:-1]
            words = rng.choice(TYPES[label]).split()
            for i, word in enumerate(words):
                rows.append((word, ("B-" if i == 0 else "I-") + label))
        else:
            rows.append((part, "O"))
    return rows


def write(path: Path, n_docs: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_docs):
        lines += ["-DOCSTART- -X- -X- O", ""]
        for _ in range(rng.randint(3, 6)):
            lines += [f"{w} X X {t}" for w, t in sentence(rng)] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf8")


POSITIVE = [
    "a charming and often affecting journey",
    "the best film of the year",
    "a delight from start to finish",
    "funny , smart and moving",
    "beautifully acted and shot",
    "a warm , generous picture",
]
NEGATIVE = ["a dull , lifeless mess", "the plot makes no sense", "too long and never funny", "a waste of a fine cast", "flat , tired and predictable", "painful to sit through"]
OPENERS = ["", "frankly , ", "in the end , ", "all told , ", "for most viewers , "]


def write_sst2(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        text = rng.choice(OPENERS) + rng.choice(POSITIVE if label else NEGATIVE)
        lines.append(f"{text} \t{label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf8")


FACTS = [
    ("{PER} was born in {LOC} in {YEAR}.", [("Where was {PER} born?", "{LOC}"), ("When was {PER} born?", "{YEAR}")]),
    ("{PER} founded {ORG} in {LOC}.", [("Who founded {ORG}?", "{PER}"), ("Where was {ORG} founded?", "{LOC}")]),
    ("{ORG} moved its headquarters to {LOC} in {YEAR}.", [("Where did {ORG} move its headquarters?", "{LOC}")]),
]


def write_squad(path: Path, n_paragraphs: int, seed: int) -> None:
    rng = random.Random(seed)
    data, qid = [], 0
    for p in range(n_paragraphs):
        context, qas = "", []
        for template, questions in rng.sample(FACTS, 2):
            slots = {"PER": rng.choice(PEOPLE), "ORG": rng.choice(ORGS[:8]).replace("the ", ""), "LOC": rng.choice(PLACES), "YEAR": str(rng.randint(1850, 2020))}
            sentence = template.format(**slots)
            offset = len(context) + (1 if context else 0)
            context = (context + " " + sentence).strip()
            for question, answer in questions:
                text = answer.format(**slots)
                start = offset + sentence.index(text)
                assert context[start : start + len(text)] == text
                qid += 1
                qas.append({"id": f"sample-{seed}-{qid}", "question": question.format(**slots), "answers": [{"text": text, "answer_start": start}]})
        data.append({"title": f"sample-{p}", "paragraphs": [{"context": context, "qas": qas}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": data}, indent=1), encoding="utf8")


if __name__ == "__main__":
    assets = Path(__file__).resolve().parent.parent / "assets"
    # the same layout as ../shared/datasets, so `data_dir` can point at either
    write(assets / "conll2003" / "train.txt", n_docs=16, seed=1)
    write(assets / "conll2003" / "dev.txt", n_docs=5, seed=2)
    write(assets / "conll2003" / "test.txt", n_docs=5, seed=3)
    write_sst2(assets / "sst2" / "glue" / "train.tsv", n=120, seed=1)
    write_sst2(assets / "sst2" / "glue" / "dev.tsv", n=40, seed=2)
    write_squad(assets / "squad" / "train-subset-v1.1.json", n_paragraphs=40, seed=1)
    write_squad(assets / "squad" / "dev-v1.1.json", n_paragraphs=10, seed=2)
    print(f"wrote samples under {assets}")
