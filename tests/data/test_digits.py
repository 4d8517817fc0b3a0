"""The embedded digits: fixed split, both encodings, the event streams, and the shared frame helpers."""

import numpy as np
import pytest
import torch

from tcja_deploy.data import digits
from tcja_deploy.data.dvs_sim import saccade_video, simulate_batch
from tcja_deploy.data.frames import ON_CHANNEL, resize_bilinear, shift_frames, stratified_split


@pytest.fixture(scope="module")
def events_pair():
    return digits.load_events(T=8)


@pytest.fixture(scope="module")
def images_pair():
    return digits.load_images(T=4)


# ----------------------------------------------------------------------------------------------- split


def test_split_sizes_disjoint_and_complete():
    train, test = digits.digits_split()
    assert (len(train), len(test)) == (1438, 359)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(1797))


def test_split_is_stratified():
    _, labels = digits.digits_arrays()
    _, test = digits.digits_split()
    for cls in range(10):
        n_class = int(np.sum(labels == cls))
        assert int(np.sum(labels[test] == cls)) == round(0.2 * n_class)


def test_split_is_deterministic_and_seeded():
    _, labels = digits.digits_arrays()
    first = stratified_split(labels, 0.2, seed=0)
    again = stratified_split(labels, 0.2, seed=0)
    other = stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(first[1], digits.digits_split()[1])
    assert not np.array_equal(first[1], other[1])


def test_split_does_not_depend_on_the_training_seed():
    a = digits.load_images(T=1, seed=0)
    b = digits.load_images(T=1, seed=7)
    assert a.test.labels == b.test.labels
    assert torch.equal(a.test.images, b.test.images)


# ----------------------------------------------------------------------------------------------- images


def test_image_frames_shape_dtype_range_and_labels(images_pair):
    _, labels = digits.digits_arrays()
    train_idx, test_idx = digits.digits_split()
    assert images_pair.input_shape == (1, 32, 32) and images_pair.num_classes == 10
    assert images_pair.name == "digits-images"
    assert (len(images_pair.train), len(images_pair.test)) == (1438, 359)
    frames, label = images_pair.test[5]
    assert frames.shape == (4, 1, 32, 32) and frames.dtype == torch.float32
    assert isinstance(label, int) and label == labels[test_idx[5]]
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.max() > 0.5
    assert all(torch.equal(frames[t], frames[0]) for t in range(4)), "direct input: the same image at every step"
    assert images_pair.train.labels == labels[train_idx].tolist()


def test_images_are_bilinear_like_torch():
    images, _ = digits.digits_arrays()
    ours = resize_bilinear(images[:5], (32, 32))
    ref = torch.nn.functional.interpolate(torch.tensor(images[:5])[:, None], size=(32, 32), mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


# ----------------------------------------------------------------------------------------------- events


def test_event_frames_shape_dtype_and_labels(events_pair):
    _, labels = digits.digits_arrays()
    _, test_idx = digits.digits_split()
    assert events_pair.input_shape == (2, 32, 32) and events_pair.num_classes == 10
    assert events_pair.name == "digits-events"
    assert (len(events_pair.train), len(events_pair.test)) == (1438, 359)
    frames, label = events_pair.test[3]
    assert frames.shape == (8, 2, 32, 32) and frames.dtype == torch.float32
    assert isinstance(label, int) and label == labels[test_idx[3]]
    assert frames.max() > 1, "counts, not binarized"
    assert torch.equal(frames, frames.round()) and frames.min() >= 0


def test_event_frames_follow_T():
    frames, _ = digits.load_events(T=3).train[0]
    assert frames.shape == (3, 2, 32, 32)


def test_event_count_per_frame_equal_within_one(events_pair):
    for i in range(0, 359, 40):
        frames, _ = events_pair.test[i]
        per_frame = frames.sum(dim=(1, 2, 3))
        assert per_frame.max() - per_frame.min() <= 1
        assert per_frame.sum() > len(events_pair.test.sample_events(i)) - 8


def test_every_digit_has_rich_events_of_both_polarities():
    events, offsets = digits.digit_events()
    counts = np.diff(offsets)
    assert len(counts) == 1797 and counts.min() > 1000
    assert 0.4 < events["p"].mean() < 0.6
    assert events["x"].min() >= 0 and events["x"].max() < 32 and events["y"].min() >= 0 and events["y"].max() < 32
    for i in (0, 900, 1796):
        t = events["t"][offsets[i]: offsets[i + 1]]
        assert np.all(np.diff(t) >= 0) and 0 < t[0] and t[-1] <= 300_000


def test_events_are_deterministic_and_independent_of_chunking():
    events, offsets = digits.digit_events()
    images, _ = digits.digits_arrays()
    video, times = saccade_video(images[250:262], digits.DIGITS_SACCADES)  # straddles a chunk boundary
    again, again_offsets = simulate_batch(video, times, digits.DIGITS_DVS)
    np.testing.assert_array_equal(again, events[offsets[250]: offsets[262]])
    np.testing.assert_array_equal(again_offsets + offsets[250], offsets[250:263])


def test_on_events_land_in_channel_one(events_pair):
    frames, _ = events_pair.train[0]
    kept = events_pair.train.sample_events(0)[: int(frames.sum())]
    assert frames[:, ON_CHANNEL].sum() == int(np.sum(kept["p"] == 1))


def test_events_carry_the_class():
    """A nearest-class-mean classifier on time-summed frames already separates the digits."""
    pair = digits.load_events(T=1)
    train = torch.stack([pair.train[i][0][0].flatten() for i in range(len(pair.train))])
    test = torch.stack([pair.test[i][0][0].flatten() for i in range(len(pair.test))])
    train_labels, test_labels = torch.tensor(pair.train.labels), torch.tensor(pair.test.labels)
    means = torch.stack([train[train_labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(test, means).argmin(1)
    assert (predicted == test_labels).float().mean() > 0.8  # 0.86 with the default sensor; chance is 0.1


# ----------------------------------------------------------------------------------------------- augmentation


def test_augment_shifts_training_samples_only():
    plain = digits.load_events(T=4, augment=False)
    augmented = digits.load_events(T=4, augment=True)
    assert augmented.test.transform is None and plain.train.transform is None
    torch.manual_seed(0)
    shifted = [augmented.train[0][0] for _ in range(6)]
    original = plain.train[0][0]
    matches = [any(torch.equal(s, shift_frames(original, dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))
               for s in shifted]
    assert all(matches), "every augmented sample is a shift of the original by ≤ 2 pixels"
    assert any(not torch.equal(s, original) for s in shifted)
    torch.manual_seed(0)
    assert torch.equal(augmented.train[0][0], shifted[0]), "reproducible under torch.manual_seed"


def test_shift_frames_moves_and_zero_fills():
    x = torch.arange(16.0).reshape(1, 4, 4)
    y = shift_frames(x, 1, -2)
    assert y[0, 1, 0] == x[0, 0, 2] and y[0, 3, 1] == x[0, 2, 3]
    assert y[0, 0].abs().sum() == 0 and y[0, :, 2:].abs().sum() == 0
    assert shift_frames(x, 4, 0).abs().sum() == 0


def test_unknown_encoding_is_rejected():
    with pytest.raises(ValueError, match="encoding"):
        digits.load(T=2, encoding="video")
