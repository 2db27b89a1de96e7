"""The first documents of a corpus as a pipeline annotates them, as one
displaCy page (metrics/<task>.html of the project's `evaluate`).

`spacy evaluate --displacy-path` draws entities only for spaCy's own `ner`
factory, so for a bertprod_ner pipeline it writes nothing. Here entities are
drawn with displaCy's `ent` style (in the CoNLL colours the package
registers), and a text classifier's best label and score title each text.

    python scripts/render_html.py MODEL CORPUS.spacy OUTPUT.html [--limit 25]
"""

import argparse
from pathlib import Path
from typing import List, Optional

import spacy
from spacy import displacy
from spacy.tokens import DocBin


def render(model: str, corpus: Path, limit: int = 25) -> str:
    """The HTML page of the first `limit` documents of `corpus` (a .spacy
    file) as `model` annotates their texts."""
    nlp = spacy.load(model)
    texts = [doc.text for doc in DocBin().from_disk(corpus).get_docs(nlp.vocab)][:limit]
    docs = list(nlp.pipe(texts))
    for doc in docs:
        if doc.cats:
            label = max(doc.cats, key=lambda name: doc.cats[name])
            doc.user_data["title"] = f"{label} ({doc.cats[label]:.2f})"
    return displacy.render(docs, style="ent", page=True)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="trained pipeline (folder or package name)")
    parser.add_argument("corpus", type=Path, help=".spacy corpus whose texts are annotated")
    parser.add_argument("output", type=Path, help="HTML file to write")
    parser.add_argument("--limit", type=int, default=25, help="documents drawn (default: %(default)s)")
    args = parser.parse_args(argv)
    html = render(args.model, args.corpus, args.limit)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(html, encoding="utf8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
