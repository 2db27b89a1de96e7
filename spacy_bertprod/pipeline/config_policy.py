"""Component settings from the config, kept in the component's `cfg`.

spaCy's `TrainablePipe.from_disk` / `from_bytes` update `cfg` with the saved
one, so a saved pipeline's settings would win over the config it is loaded
with (`spacy.load(path, config={...})`). Each bertprod component records the
config values it was built with (`cfg["config"]`, saved with it). On load, a
setting whose config value differs from the recorded one was overridden: the
config's value wins. A setting the config left as it was keeps the saved
value, which differs from the config only where the component changed it
after it was built (`BertprodQA.calibrate_null_threshold`).
"""

import copy
from typing import Any, Dict

CONFIG_KEY = "config"


def same_value(a: Any, b: Any) -> bool:
    """Equal, with floats compared at the 15 significant digits the JSON
    `cfg` file keeps (srsly reads "0.3" back as 0.30000000000000004)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        return numbers and f"{a:.15g}" == f"{b:.15g}"
    return type(a) is type(b) and a == b


def record_config(cfg: Dict[str, Any], settings: Dict[str, Any]) -> None:
    """Keep the config values a component was built with in its `cfg`."""
    cfg[CONFIG_KEY] = copy.deepcopy(settings)


def apply_config(cfg: Dict[str, Any], settings: Dict[str, Any]) -> None:
    """After `cfg` was loaded: the config values the component was built
    with (`settings`) win where they differ from the config it was saved
    with (or where the saved `cfg` has no record: saved before records)."""
    saved = cfg.get(CONFIG_KEY) or {}
    for key, value in settings.items():
        if key not in saved or not same_value(saved[key], value):
            cfg[key] = copy.deepcopy(value)
    record_config(cfg, settings)
