"""Component settings from the config, kept in the component's `cfg`.

spaCy's `TrainablePipe.from_disk` / `from_bytes` update `cfg` with the saved
one, so a saved pipeline's settings would win over the config it is loaded
with (`spacy.load(path, config={...})`). Each bertprod component records the
config values it was built with (`cfg["config"]`, saved with it). On load, a
setting whose config value differs from the recorded one was overridden: the
config's value wins. A setting the config left as it was keeps the saved
value, which differs from the config only where the component changed it
after it was built (`BertprodQA.calibrate_null_threshold`).

`ConfigWinsOnLoad` is that policy for a component, written once: the
components record their settings with `keep_settings` and inherit its
`from_bytes` / `from_disk`.
"""

import copy
from typing import Any, Callable, Dict, Optional, cast

from spacy.pipeline import TrainablePipe
from spacy.util import SimpleFrozenList

from .serialization import pipe_from_disk

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


class ConfigWinsOnLoad:
    """Mixin of the bertprod components (before spaCy's pipe class in the
    bases): loading a saved component lets the config it is built from win
    (`apply_config`); `from_disk` raises coded errors naming a missing or
    damaged file (serialization.py). A component resets what loading
    changes in `_before_load` (its return value goes to `_after_load`) and
    checks the loaded `cfg` in `_after_load`."""

    cfg: Dict[str, Any]
    _settings: Dict[str, Any]

    def keep_settings(self, settings: Dict[str, Any]) -> None:
        """The settings from the config, which win on load."""
        self._settings = settings
        record_config(self.cfg, settings)

    def _before_load(self) -> Any:
        return None

    def _after_load(self, before: Any) -> None:
        pass

    def _output_width(self) -> Optional[Callable[[], int]]:
        """The output units the loaded labels need (checked against the
        loaded weights, E047), where the component has labels."""
        return None

    def from_bytes(self, bytes_data: bytes, *, exclude=SimpleFrozenList()):
        before = self._before_load()
        super().from_bytes(bytes_data, exclude=exclude)  # type: ignore[misc]
        self._after_load(before)
        apply_config(self.cfg, self._settings)
        return self

    def from_disk(self, path: Any, *, exclude=SimpleFrozenList()):
        before = self._before_load()
        pipe_from_disk(cast(TrainablePipe, self), path, exclude, output_width=self._output_width())
        self._after_load(before)
        apply_config(self.cfg, self._settings)
        return self
