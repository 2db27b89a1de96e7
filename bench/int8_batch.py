"""How often int8 results depend on the batch a document is in.

Dynamic int8 quantization (torch's and ONNX Runtime's) computes the
activation scales from each call's inputs, so a document's windows can be
quantized differently when other documents' windows share the transformer
call. This script measures how often that changes the output on the trained
CoNLL-2003 NER pipeline: every test document is tagged alone (`nlp(text)`)
and inside `nlp.pipe(texts, batch_size=32)`, and the documents whose entity
sets (start, end, label) differ are counted, for fp32 (the control), torch
int8 and ONNX Runtime int8. Entity F1 of the batched run is printed beside it.

    python bench/int8_batch.py [--model bench/results/conll/model/model-best] [--report int8_batch]
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
import torch
from spacy.scorer import get_ner_prf
from spacy.training import Example

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, model_provenance, write_report  # noqa: E402

from spacy_bertprod.compression.pipelines import onnx_pipeline, quantize_pipeline  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs  # noqa: E402
from spacy_bertprod.training.distiller import copy_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
Ents = List[Tuple[int, int, str]]


def entities(doc) -> Ents:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def compare(nlp, gold, batch_size: int) -> Dict[str, float]:
    texts = [d.text for d in gold]
    start = time.perf_counter()
    alone = [nlp(t) for t in texts]
    batched = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    changed = [i for i, (a, b) in enumerate(zip(alone, batched)) if entities(a) != entities(b)]
    n_ents = sum(len(d.ents) for d in batched)
    ents_changed = sum(len(set(entities(alone[i])) ^ set(entities(batched[i]))) for i in changed)
    return {
        "docs": len(texts),
        "docs_changed": len(changed),
        "docs_changed_pct": 100 * len(changed) / len(texts),
        "entities": n_ents,
        "entities_differing": ents_changed,
        "f1_alone": 100 * get_ner_prf([Example(p, g) for p, g in zip(alone, gold)])["ents_f"],
        "f1_batched": 100 * get_ner_prf([Example(p, g) for p, g in zip(batched, gold)])["ents_f"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "bench/results/conll/model/model-best"), help="trained bertprod_ner pipeline")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/conll2003/test.txt"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json (the README's source)")
    args = parser.parse_args()
    if args.report:
        model_provenance(Path(args.model))  # before the run, not after it: a report needs the model's record
    torch.set_num_threads(args.threads)
    print("machine:", describe(), flush=True)
    teacher = spacy.load(args.model)
    gold = conll_to_docs(args.data)
    variants = {
        "fp32 (torch)": None,
        "int8 (torch dynamic)": quantize_pipeline,
        "int8 (ONNX Runtime dynamic)": lambda nlp: onnx_pipeline(nlp, int8=True),
    }
    print(f"CoNLL-2003 test, {len(gold)} documents: each tagged alone and in nlp.pipe(batch_size={args.batch_size})")
    figures = {}
    for label, convert in variants.items():
        nlp = teacher
        if convert is not None:
            nlp = copy_pipeline(teacher)
            convert(nlp)
        row = compare(nlp, gold, args.batch_size)
        figures[label] = row
        print(
            f"  {label:<28} docs whose entities differ: {row['docs_changed']:>3} / {row['docs']} ({row['docs_changed_pct']:.1f}%)"
            f"  entities differing: {row['entities_differing']} of {row['entities']}"
            f"  F1 alone {row['f1_alone']:.2f}  batched {row['f1_batched']:.2f}",
            flush=True,
        )
    if args.report:
        write_report(args.report, {"model": args.model, "batch_size": args.batch_size, "variants": figures}, models={"bertprod_ner": args.model})


if __name__ == "__main__":
    main()
