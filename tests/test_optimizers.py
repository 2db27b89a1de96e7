"""`bertprod.LayerwiseAdam.v1`: each transformer layer learns at its decayed
rate, the head at the full rate, and settings that could not take effect
are refused."""

import numpy as np
import pytest
import spacy
from thinc.api import Adam, fix_random_seed

from conftest import make_examples, ner_config
from spacy_bertprod.training.optimizers import LayerwiseOptimizer, layerwise_adam


@pytest.mark.parametrize(
    "name, scale",
    [
        ("encoder.layer.0.attention.self.query.weight", 0.5**6),
        ("encoder.layer.5.output.dense.bias", 0.5),
        ("transformer.layer.2.ffn.lin1.weight", 0.5**4),  # DistilBERT's names
        ("embeddings.word_embeddings.weight", 0.5**7),
        ("W", 1.0),  # a thinc head's parameter
        ("pooler.dense.weight", 1.0),
    ],
)
def test_rate_falls_with_depth(name, scale):
    assert layerwise_adam(1e-3, layer_decay=0.5, n_layers=6).depth_scale(name) == pytest.approx(scale)


def test_steps_are_scaled_against_thincs_adam():
    """Adam's first step moves each weight by about the learning rate: with
    the decay, layer i's step is the plain Adam step times its factor."""
    weights = np.ones((4,), dtype="f")
    gradient = np.full((4,), 0.5, dtype="f")
    plain, _ = Adam(0.01, L2=0.0, use_averages=False)((0, "encoder.layer.1.x.weight"), weights.copy(), gradient.copy())
    decayed, _ = layerwise_adam(0.01, L2=0.0, layer_decay=0.5, n_layers=2, use_averages=False)((0, "encoder.layer.1.x.weight"), weights.copy(), gradient.copy())
    head, _ = layerwise_adam(0.01, L2=0.0, layer_decay=0.5, n_layers=2, use_averages=False)((0, "W"), weights.copy(), gradient.copy())
    np.testing.assert_allclose(1 - decayed, 0.5 * (1 - plain), rtol=1e-5)
    np.testing.assert_allclose(head, plain, rtol=1e-6)
    assert (1 - plain).min() > 0


@pytest.mark.parametrize("settings", [{"layer_decay": 0.0, "n_layers": 6}, {"layer_decay": 1.5, "n_layers": 6}, {"layer_decay": 0.9}, {"layer_decay": 0.9, "n_layers": 0}])
def test_settings_that_cannot_take_effect_are_refused(settings):
    with pytest.raises(ValueError, match="E194"):
        layerwise_adam(1e-3, **settings)


def test_a_layer_beyond_n_layers_is_refused():
    with pytest.raises(ValueError, match="E195"):
        layerwise_adam(1e-3, layer_decay=0.9, n_layers=2).depth_scale("encoder.layer.2.output.dense.weight")


def test_a_decay_no_parameter_took_is_refused_after_the_first_update():
    opt = layerwise_adam(1e-3, layer_decay=0.9, n_layers=2)
    opt.step_schedules()  # before any update: nothing to judge yet
    opt((0, "W"), np.ones((2,), dtype="f"), np.ones((2,), dtype="f"))
    with pytest.raises(ValueError, match="E196"):
        opt.step_schedules()


def test_spacy_training_config_resolves_it_and_lower_layers_move_less(tiny_bert):
    """Through the registry a training config uses; on a tiny two-layer
    encoder trained a few steps, the embeddings move less with the decay
    than the same run without it, while the head still learns."""
    optimizer_cfg = {"@optimizers": "bertprod.LayerwiseAdam.v1", "learn_rate": 1e-3, "layer_decay": 0.1, "n_layers": 2, "use_averages": False}
    resolved = spacy.registry.resolve({"opt": optimizer_cfg})["opt"]
    assert isinstance(resolved, LayerwiseOptimizer) and resolved.layer_decay == 0.1

    def embedding_shift(decay: float) -> float:
        fix_random_seed(0)
        nlp = spacy.blank("en")
        nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
        examples = make_examples(nlp)
        nlp.initialize(lambda: examples)
        module = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]._model
        before = module.embeddings.word_embeddings.weight.detach().clone()
        opt = spacy.registry.resolve({"opt": {**optimizer_cfg, "layer_decay": decay}})["opt"]
        for _ in range(3):
            nlp.update(examples, sgd=opt)
        return float((module.embeddings.word_embeddings.weight.detach() - before).abs().max())

    full, decayed = embedding_shift(1.0), embedding_shift(0.1)
    assert full > 0 and decayed > 0
    assert decayed < 0.01 * full  # 0.1 ** 3 of the rate: the embeddings are three steps below the head


def test_defaults_are_thincs_adam():
    """Settings left out of the config are Adam.v1's, so switching the
    optimizer changes the decay and nothing else."""
    import inspect

    ours = inspect.signature(layerwise_adam).parameters
    for name, param in inspect.signature(spacy.registry.optimizers.get("Adam.v1")).parameters.items():
        assert ours[name].default == param.default, name


def test_parameter_averages_reach_the_encoder(tiny_bert):
    """With `use_averages`, spaCy evaluates and saves a pipeline under
    `use_params(optimizer.averages)`: the encoder's torch weights take their
    averages there too (thinc's own shim kept its last weights beside the
    heads' averages), and get their last weights back after."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    shim = nlp.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]
    opt = Adam(1e-2, use_averages=True)
    for _ in range(5):
        nlp.update(examples, sgd=opt)
    name = "embeddings.word_embeddings.weight"
    weights = shim._model.get_parameter(name)
    last = weights.detach().numpy().copy()
    average = np.asarray(opt.averages[(shim.id, name)])
    assert not np.allclose(average, last, atol=1e-4)  # five steps apart: the average is not the last step
    docs = [nlp.make_doc(eg.reference.text) for eg in examples]
    (scores_last,) = [nlp.get_pipe("bertprod_ner").model.predict(docs)]
    with nlp.use_params(opt.averages):
        np.testing.assert_allclose(weights.detach().numpy(), average, rtol=1e-6)
        (scores_averaged,) = [nlp.get_pipe("bertprod_ner").model.predict(docs)]
        saved = nlp.to_bytes()
    np.testing.assert_array_equal(weights.detach().numpy(), last)
    assert any(not np.allclose(a, b, atol=1e-5) for a, b in zip(scores_last, scores_averaged))
    loaded = spacy.blank("en")
    loaded.add_pipe("bertprod_ner", config=ner_config(tiny_bert))
    loaded.from_bytes(saved)
    module = loaded.get_pipe("bertprod_ner").model.get_ref("encoder").get_ref("transformer").shims[0]._model
    np.testing.assert_allclose(module.get_parameter(name).detach().numpy(), average, rtol=1e-6)
