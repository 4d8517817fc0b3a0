"""``--recipe reference``: the reference code's surrogate, detached reset, AMP, drop_last and epochs reach the run."""

import pytest

from tcja_deploy.errors import UserError
from tcja_deploy.models import specs
from tcja_deploy.models.presets import get_preset
from tcja_deploy.training.config import TrainConfig, resolve


@pytest.mark.parametrize("preset,surrogate,alpha", [
    ("dvs128_gesture", "atan", 2.0), ("cifar10_dvs", "piecewise_quadratic", 1.0),
    ("ncaltech101", "atan", 2.0)])
def test_reference_recipe_sets_training_and_neurons(preset, surrogate, alpha):
    config = resolve(TrainConfig(preset=preset, recipe="reference"))
    assert config.amp and config.drop_last and config.epochs == 1024
    model = get_preset(preset).reference.apply(get_preset(preset).model)
    lifs = [layer for layer in model.layers if isinstance(layer, specs.LIF)]
    assert lifs and all((l.surrogate, l.alpha, l.detach_reset) == (surrogate, alpha, True) for l in lifs)
    assert [type(l) for l in model.layers] == [type(l) for l in get_preset(preset).model.layers]


def test_our_recipe_and_explicit_flags_win():
    ours = resolve(TrainConfig(preset="dvs128_gesture"))
    assert not ours.amp and ours.drop_last is False and ours.recipe == "ours"
    given = resolve(TrainConfig(preset="dvs128_gesture", recipe="reference", epochs=3, drop_last=False))
    assert given.epochs == 3 and given.drop_last is False


def test_presets_without_reference_code_refuse_it():
    with pytest.raises(UserError, match="no reference code"):
        resolve(TrainConfig(preset="digits", recipe="reference"))
