"""Fused-operator coverage and int8 speed-up of each encoder family.

For each family (BERT, RoBERTa, XLM-R, DeBERTa-v2, DeBERTa-v3 style,
ELECTRA, DistilBERT, ModernBERT) a random-weight encoder of the embedded
MiniLM's size (6 layers, 384 wide, 12 heads, intermediate 1536: speed does
not depend on the weights) with its kind of tokenizer (wordpiece, byte-level
BPE or SentencePiece unigram, trained on the CoNLL-2003 training text) is
put in a `bertprod_ner` pipeline and exported as the product exports it
(`spacy_bertprod.compression.pipelines.onnx_path`): fp32 fused, int8 fused and int8
unfused (`fuse=False`). Reported per family: the fused ONNX Runtime
operators in the fp32 graph (Attention, SkipLayerNormalization,
EmbedLayerNormalization, BiasGelu/FastGelu...), whether ONNX Runtime's
optimizer warned (W010) and kept the unfused graph, and the median seconds
of `nlp.pipe` over CoNLL-2003 test sentences for each variant (repeats
interleaved across variants, median with min and max), with the fused int8
speed-up over fp32 and over unfused int8.

    python bench/encoder_families.py --threads 1 --repeats 7 --report encoder_families

Quick check that it runs (tiny sizes, no report):

    python bench/encoder_families.py --tiny --sentences 40 --repeats 2
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import spacy
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import built_in_run, describe, spread, write_report  # noqa: E402

from spacy_bertprod.compression.onnx_fusion import fused_op_types  # noqa: E402
from spacy_bertprod.compression.pipelines import onnx_path  # noqa: E402
from spacy_bertprod.training.converters import conll_to_docs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared/datasets/conll2003"
FAMILIES = ("bert", "roberta", "xlm-roberta", "deberta-v2", "deberta-v3", "electra", "distilbert", "modernbert")
#: the embedded MiniLM's shape
SIZE = {"layers": 6, "width": 384, "heads": 12, "intermediate": 1536, "vocab": 8000}
TINY = {"layers": 2, "width": 32, "heads": 2, "intermediate": 64, "vocab": 500}
#: tokenizer kind of each family's released checkpoints
TOKENIZER = {"roberta": "bpe", "xlm-roberta": "unigram", "deberta-v3": "unigram", "modernbert": "bpe"}
VARIANTS = {"fp32 fused": {"int8": False, "fuse": True}, "int8 fused": {"int8": True, "fuse": True}, "int8 unfused": {"int8": True, "fuse": False}}


def train_tokenizer(kind: str, corpus: List[str], vocab: int) -> Any:
    """A fast tokenizer of `kind` ("wordpiece" uncased, "bpe" byte-level,
    "unigram" SentencePiece-style) trained on `corpus`, as a transformers
    tokenizer with BERT's or RoBERTa's special tokens."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    bert_like = kind == "wordpiece"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if bert_like else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer: Any = trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(corpus, trainer)
    cls, sep = ("[CLS]", "[SEP]") if bert_like else ("<s>", "</s>")
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    pad, unk, mask = (specials[0], specials[1], specials[4]) if bert_like else (specials[1], specials[3], specials[4])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk, mask_token=mask, bos_token=cls, eos_token=sep)


def family_config(family: str, size: Dict[str, int], vocab: int, pad: int) -> Any:
    """The HF config of a random `family` encoder of `size`."""
    import transformers

    width, layers, heads, inter = size["width"], size["layers"], size["heads"], size["intermediate"]
    common = dict(vocab_size=vocab, pad_token_id=pad, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter)
    if family == "distilbert":
        return transformers.DistilBertConfig(vocab_size=vocab, pad_token_id=pad, dim=width, n_layers=layers, n_heads=heads, hidden_dim=inter)
    if family == "modernbert":
        return transformers.ModernBertConfig(**common, global_attn_every_n_layers=3, local_attention=128, reference_compile=False)
    if family in ("roberta", "xlm-roberta"):
        # RoBERTa-style positions start after the padding index
        return transformers.AutoConfig.for_model(family, **common, type_vocab_size=1, max_position_embeddings=512 + pad + 1)
    if family == "deberta-v2":
        return transformers.DebertaV2Config(**common, type_vocab_size=0, relative_attention=False, position_biased_input=True)
    if family == "deberta-v3":
        return transformers.DebertaV2Config(
            **common, type_vocab_size=0, relative_attention=True, position_buckets=256, max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"], position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True,
        )  # fmt: skip
    return transformers.AutoConfig.for_model(family, **common)


def build_family(family: str, path: Path, size: Dict[str, int], corpus: List[str]) -> Path:
    """Save a random `family` encoder with its kind of tokenizer to `path`."""
    import transformers

    tokenizer = train_tokenizer(TOKENIZER.get(family, "wordpiece"), corpus, size["vocab"])
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(family_config(family, size, len(tokenizer), tokenizer.pad_token_id))
    model.save_pretrained(str(path))
    return path


def ner_pipeline(model: Path, examples_text: List[str], out: Path) -> Path:
    """A bertprod_ner pipeline on `model` (initialized, untrained: the
    encoder's speed is what is measured), saved to `out`."""
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config={"model": {"encoder": {"name": str(model), "window": 128, "stride": 96}}})
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": []}) for t in examples_text]
    nlp.get_pipe("bertprod_ner").add_label("ORG")
    nlp.initialize(lambda: examples)
    nlp.to_disk(out)
    return out


def timed(nlp, texts: List[str], batch_size: int) -> float:
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def bench_family(family: str, root: Path, size: Dict[str, int], corpus: List[str], texts: List[str], args: argparse.Namespace) -> Dict[str, Any]:
    model = build_family(family, root / family / "hf", size, corpus)
    source = ner_pipeline(model, texts[:8], root / family / "torch")
    pipelines, row = {}, {}
    for label, options in VARIANTS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            onnx_path(source, root / family / label.replace(" ", "-"), **options)
        nlp = spacy.load(root / family / label.replace(" ", "-"))
        if label == "fp32 fused":
            data = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").attrs["onnx"].data
            row["fused_ops"] = fused_op_types(data)
            row["fusion_warning"] = next((str(w.message) for w in caught if "W010" in str(w.message)), "")
        list(nlp.pipe(texts[:16], batch_size=args.batch_size))  # warm-up: session, allocations
        pipelines[label] = nlp
    seconds: Dict[str, List[float]] = {label: [] for label in VARIANTS}
    for _ in range(args.repeats):  # interleaved: drift in the machine's speed hits every variant alike
        for label, nlp in pipelines.items():
            seconds[label].append(timed(nlp, texts, args.batch_size))
    row["seconds"] = {label: spread(values) for label, values in seconds.items()}
    median = {label: row["seconds"][label]["median"] for label in VARIANTS}
    row["int8_fused_speedup_over_fp32"] = median["fp32 fused"] / median["int8 fused"]
    row["int8_fused_speedup_over_int8_unfused"] = median["int8 unfused"] / median["int8 fused"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="folder with CoNLL-2003 train.txt and test.txt")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--sentences", type=int, default=1000, help="CoNLL-2003 test sentences timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="tiny encoders: check the script runs, not a measurement")
    parser.add_argument("--report", default="", help="also write bench/reported/<REPORT>.json")
    args = parser.parse_args()
    if args.tiny and args.report:
        parser.error("--tiny runs are not measurements: leave out --report")
    torch.set_num_threads(args.threads)  # ONNX Runtime's sessions follow torch's thread count
    print("machine:", describe(), flush=True)
    size = TINY if args.tiny else SIZE
    corpus = [d.text for d in conll_to_docs(Path(args.data) / "train.txt", n_sents=1)]
    texts = [d.text for d in conll_to_docs(Path(args.data) / "test.txt", n_sents=1)][: args.sentences]
    print(f"{len(texts)} CoNLL-2003 test sentences, batch size {args.batch_size}, {args.repeats} interleaved repeats, encoders {size}", flush=True)
    figures: Dict[str, Any] = {"size": size, "sentences": len(texts), "batch_size": args.batch_size, "repeats": args.repeats, "threads": args.threads, "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            row = bench_family(family, Path(tmp), size, corpus, texts, args)
            figures["families"][family] = row
            s = row["seconds"]
            print(
                f"  {family:<12} fused: {', '.join(row['fused_ops']) or 'none (W010)'}\n"
                f"  {'':<12} fp32 {s['fp32 fused']['median']:.3f}s  int8 {s['int8 fused']['median']:.3f}s  int8 unfused {s['int8 unfused']['median']:.3f}s"
                f"  int8 fused x{row['int8_fused_speedup_over_fp32']:.2f} over fp32, x{row['int8_fused_speedup_over_int8_unfused']:.2f} over unfused int8",
                flush=True,
            )
    if args.report:
        how = (
            "random weights (torch seed 0) from the family's transformers config at the size in figures.size, its kind of tokenizer "
            "trained on the CoNLL-2003 training sentences, in an initialized, untrained bertprod_ner pipeline exported by onnx_path"
        )
        write_report(args.report, figures, models={family: built_in_run(how) for family in figures["families"]})


if __name__ == "__main__":
    main()
