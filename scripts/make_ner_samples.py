"""Write the small NER sample corpus shipped in assets/ner (CoNLL-2003 column
format, made up here from templates; not taken from any dataset).

    python scripts/make_ner_samples.py
"""

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


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent / "assets" / "ner"
    write(root / "train.conll", n_docs=16, seed=1)
    write(root / "dev.conll", n_docs=5, seed=2)
    print(f"wrote {root}")
