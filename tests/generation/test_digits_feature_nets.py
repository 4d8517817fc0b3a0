"""The default feature networks on the digits: useful after their default training, and the metrics on them
order corruptions as they should (the behaviour table of DESIGN §12)."""

from __future__ import annotations

import pytest
import torch

from tcja_deploy.data.image_sets import load_image_set
from tcja_deploy.generation.feature_nets import ensure_feature_nets
from tcja_deploy.generation.metrics import frechet_distance, inception_score


@pytest.fixture(scope="module")
def digits_nets(tmp_path_factory):
    images, labels = {}, {}
    for split in ("train", "test"):
        images[split], labels[split] = load_image_set("digits", split)
    classifier, autoencoder = ensure_feature_nets("digits", images, labels, tmp_path_factory.mktemp("cache"),
                                                  progress=False, log=lambda m: None)
    return classifier, autoencoder, images, labels


@pytest.mark.slow
def test_default_training_gives_useful_networks(digits_nets):
    classifier, autoencoder, _, _ = digits_nets
    assert classifier.metrics["epochs"] == 10 and autoencoder.metrics["epochs"] == 9
    assert classifier.metrics["test_accuracy"] > 0.95  # measured 98.6 %
    assert autoencoder.metrics["test_recon_mse"] < 0.03  # measured 0.012 ([−1, 1] pixels)


@pytest.mark.slow
def test_metrics_order_corruptions(digits_nets):
    classifier, autoencoder, images, labels = digits_nets
    test = images["test"]
    g = torch.Generator().manual_seed(0)
    real = images["train"][torch.randperm(len(images["train"]), generator=g)[:len(test)]]
    noisy = [(real + s * torch.randn(real.shape, generator=g)).clamp(-1, 1) for s in (0.1, 0.2, 0.4)]
    for net in (classifier, autoencoder):
        reference = net.features(test)
        fids = [frechet_distance(net.features(x), reference) for x in [real, *noisy]]
        assert fids == sorted(fids) and fids[-1] > 2 * fids[0], (net.kind, fids)
    # the score: near 10 on real digits, about 5 with half of the classes, near 1 for noise
    assert inception_score(classifier.probs(real))[0] > 7
    half = images["train"][labels["train"] < 5][:len(test)]
    assert 3.5 < inception_score(classifier.probs(half))[0] < 5.5
    assert inception_score(classifier.probs(torch.rand(real.shape, generator=g) * 2 - 1))[0] < 2.5
