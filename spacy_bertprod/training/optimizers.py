"""`bertprod.LayerwiseAdam.v1`: thinc's Adam with layer-wise learning-rate
decay for fine-tuning a transformer.

Lower layers of a pretrained encoder hold general features that fine-tuning
should move less than the top ones: layer `i` of `n_layers` (0 the lowest)
learns at `layer_decay ** (n_layers - i)` times the rate, the embeddings at
`layer_decay ** (n_layers + 1)`, and everything else (the task heads, the
casing features) at the full rate. Layers are recognised by the transformer
parameter names thinc's PyTorchShim passes in (`...layer.<i>....`,
`...embeddings....`), which BERT, RoBERTa, DistilBERT, ELECTRA, MPNet,
DeBERTa and XLM-R all use.
"""

import re
from typing import Any, Optional, Tuple

from thinc.api import Optimizer
from thinc.optimizers import ADAM_DEFAULTS
from thinc.types import FloatsXd

from ..errors import Errors

LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")
EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


class LayerwiseOptimizer(Optimizer):
    """An Adam optimizer whose rate falls with a parameter's depth."""

    def __init__(self, learn_rate: Any, *, layer_decay: float, n_layers: Optional[int], **kwargs: Any) -> None:
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(Errors.E194.format(setting="layer_decay", value=layer_decay, why="it must be above 0 and at most 1 (1 turns the decay off)"))
        if layer_decay < 1.0 and (n_layers is None or n_layers < 1):
            raise ValueError(Errors.E194.format(setting="n_layers", value=n_layers, why="a decay below 1 needs the encoder's number of transformer layers (6 for the embedded MiniLM)"))
        super().__init__(learn_rate, **kwargs)
        self.layer_decay = layer_decay
        self.n_layers = n_layers or 0
        self._decayed = 0

    def depth_scale(self, name: str) -> float:
        """The learning-rate factor of the parameter called `name`."""
        if self.layer_decay == 1.0:
            return 1.0
        found = LAYER.search(name)
        if found:
            layer = int(found.group(1))
            if layer >= self.n_layers:
                raise ValueError(Errors.E195.format(name=name, layer=layer, n_layers=self.n_layers))
            self._decayed += 1
            return float(self.layer_decay ** (self.n_layers - layer))
        if EMBEDDINGS.search(name):
            self._decayed += 1
            return float(self.layer_decay ** (self.n_layers + 1))
        return 1.0

    def __call__(self, key: Tuple[int, str], weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0) -> Any:
        return super().__call__(key, weights, gradient, lr_scale=lr_scale * self.depth_scale(key[1]))

    def step_schedules(self) -> None:
        # after the first update: a decay no parameter took would be a
        # setting without effect (no transformer, or one whose layers are
        # named otherwise), so it is refused
        if self.layer_decay < 1.0 and self._decayed == 0 and any(self.nr_update.values()):
            raise ValueError(Errors.E196.format(decay=self.layer_decay))
        super().step_schedules()


def layerwise_adam(
    learn_rate: Any = ADAM_DEFAULTS["learn_rate"],
    *,
    layer_decay: float = 1.0,
    n_layers: Optional[int] = None,
    L2: Any = ADAM_DEFAULTS["L2"],
    beta1: Any = ADAM_DEFAULTS["beta1"],
    beta2: Any = ADAM_DEFAULTS["beta2"],
    eps: Any = ADAM_DEFAULTS["eps"],
    grad_clip: Any = ADAM_DEFAULTS["grad_clip"],
    L2_is_weight_decay: bool = bool(ADAM_DEFAULTS["L2_is_weight_decay"]),
    use_averages: bool = True,
) -> Optimizer:
    """thinc's `Adam.v1` settings, plus `layer_decay` (1: none) over `n_layers`."""
    return LayerwiseOptimizer(
        learn_rate,
        layer_decay=layer_decay,
        n_layers=n_layers,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
    )
