"""The simulated DVS on inputs with a hand-computed answer, the saccade video, and event → frame binning."""

import math

import numpy as np
import pytest

from tcja_deploy.data.dvs_sim import DvsConfig, SaccadeConfig, pixel_thresholds, saccade_video, simulate, simulate_batch
from tcja_deploy.data.frames import EVENT_DTYPE, OFF_CHANNEL, ON_CHANNEL, events_to_frames

H, W, S = 3, 10, 8
DT = 1000  # µs between frames
TIMES = np.arange(S, dtype=np.int64) * DT
BRIGHT, DARK = 0.8, 0.1
CONFIG = DvsConfig(threshold=0.2, eps=0.1)
# By hand: ln((0.8 + 0.1) / (0.1 + 0.1)) = ln 4.5 = 1.504; / 0.2 = 7.52 → 7 events per crossed pixel.
EXPECTED_PER_PIXEL = 7


def step_edge_video(inside: float, outside: float) -> np.ndarray:
    """[S, H, W]: columns x ≤ s have intensity ``inside`` at frame s, the rest ``outside``.

    The edge moves one pixel per frame to the right: pixel x (1 ≤ x < S) changes at frame x.
    """
    video = np.full((S, H, W), outside)
    for s in range(S):
        video[s, :, : s + 1] = inside
    return video


def per_pixel_counts(events: np.ndarray, polarity: int) -> np.ndarray:
    counts = np.zeros((H, W), dtype=int)
    sel = events[events["p"] == polarity]
    np.add.at(counts, (sel["y"], sel["x"]), 1)
    return counts


def test_hand_computed_count_matches_formula():
    assert math.floor(math.log((BRIGHT + 0.1) / (DARK + 0.1)) / 0.2) == EXPECTED_PER_PIXEL


def test_bright_edge_moving_right_fires_on_events_exactly_where_and_when_it_arrives():
    events = simulate(step_edge_video(BRIGHT, DARK), TIMES, CONFIG)
    assert events.dtype == EVENT_DTYPE and events.dtype.names == ("x", "y", "t", "p")
    assert np.all(events["p"] == 1), "a brightening edge makes ON events only"
    expected = np.zeros((H, W), dtype=int)
    expected[:, 1:S] = EXPECTED_PER_PIXEL  # column 0 is bright from the start; columns ≥ S are never reached
    np.testing.assert_array_equal(per_pixel_counts(events, 1), expected)
    # Each pixel's events lie in the interval of the frame where the edge arrives: (t[x-1], t[x]].
    assert np.all(events["t"] > TIMES[events["x"] - 1])
    assert np.all(events["t"] <= TIMES[events["x"]])
    assert np.all(np.diff(events["t"]) >= 0), "events sorted by time"


def test_event_times_follow_the_threshold_crossings():
    """The k-th event of a pixel is stamped where the log intensity, linear between frames, crosses R + k·C."""
    events = simulate(step_edge_video(BRIGHT, DARK), TIMES, CONFIG)
    delta = math.log((BRIGHT + 0.1) / (DARK + 0.1))
    one_pixel = events[(events["x"] == 4) & (events["y"] == 1)]
    expected = TIMES[3] + np.ceil(np.arange(1, EXPECTED_PER_PIXEL + 1) * 0.2 / delta * DT).astype(int)
    np.testing.assert_array_equal(one_pixel["t"], expected)


@pytest.mark.parametrize("variant", ["reversed_motion", "reversed_contrast"])
def test_reversal_gives_off_events(variant):
    if variant == "reversed_motion":  # the bright region shrinks: pixel x darkens at frame S - x
        video, changed_at = step_edge_video(BRIGHT, DARK)[::-1], lambda x: S - x
    else:  # a dark region grows into a bright background: pixel x darkens at frame x
        video, changed_at = step_edge_video(DARK, BRIGHT), lambda x: x
    events = simulate(video, TIMES, CONFIG)
    assert len(events) > 0 and np.all(events["p"] == 0), "a darkening edge makes OFF events only"
    expected = np.zeros((H, W), dtype=int)
    expected[:, 1:S] = EXPECTED_PER_PIXEL
    np.testing.assert_array_equal(per_pixel_counts(events, 0), expected)
    frame = changed_at(events["x"])
    assert np.all((events["t"] > TIMES[frame - 1]) & (events["t"] <= TIMES[frame]))


def test_reference_carries_over_between_frames():
    """A slow ramp spread over many frames fires ⌊total log change / C⌋ events, as one jump would."""
    levels = np.linspace(0.05, 0.95, 20)
    video = np.broadcast_to(levels[:, None, None], (20, 1, 1)).copy()
    times = np.arange(20, dtype=np.int64) * 500
    events = simulate(video, times, CONFIG)
    assert len(events) == math.floor(math.log(1.05 / 0.15) / 0.2)  # ln 7 / 0.2 = 9.73 → 9
    assert np.all(events["p"] == 1)


def test_static_video_has_no_events():
    video = np.random.RandomState(1).rand(S, H, W)
    events = simulate(np.broadcast_to(video[:1], video.shape), TIMES, CONFIG)
    assert len(events) == 0 and events.dtype == EVENT_DTYPE


def test_bad_timestamps_are_rejected():
    with pytest.raises(ValueError, match="ascending"):
        simulate(step_edge_video(BRIGHT, DARK), TIMES[::-1], CONFIG)


def test_deterministic_and_batch_equals_single_runs():
    config = DvsConfig(threshold=0.25, eps=0.1, threshold_sigma=0.05, seed=3)
    rng = np.random.RandomState(0)
    videos, times = saccade_video(rng.rand(3, 8, 8))
    first, offsets = simulate_batch(videos, times, config)
    again, offsets_again = simulate_batch(videos, times, config)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(offsets, offsets_again)
    for i in range(3):
        np.testing.assert_array_equal(first[offsets[i]: offsets[i + 1]], simulate(videos[i], times, config))
        assert np.all(np.diff(first[offsets[i]: offsets[i + 1]]["t"]) >= 0)


def test_threshold_mismatch_is_a_seeded_fixed_pattern():
    a = pixel_thresholds(DvsConfig(threshold=0.3, threshold_sigma=0.05, seed=1), (16, 16))
    b = pixel_thresholds(DvsConfig(threshold=0.3, threshold_sigma=0.05, seed=1), (16, 16))
    c = pixel_thresholds(DvsConfig(threshold=0.3, threshold_sigma=0.05, seed=2), (16, 16))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.25 < a.mean() < 0.35 and a.std() > 0.02 and a.min() >= 0.01
    assert np.all(pixel_thresholds(DvsConfig(threshold=0.3), (4, 4)) == 0.3)


def test_saccade_video_moves_the_image_along_the_triangle():
    config = SaccadeConfig()
    image = np.random.RandomState(0).rand(8, 8)
    video, times = saccade_video(image, config)
    assert video.shape == (config.num_frames, 32, 32) and video.dtype == np.float32
    assert times[0] == 0 and times[-1] == 3 * config.saccade_us and np.all(np.diff(times) > 0)
    steps = config.steps_per_saccade
    # Integer displacements at the corners: (3, 6) then (6, 0) then back to (0, 0) pixels (x, y).
    np.testing.assert_allclose(video[steps][6:, 3:], video[0][:-6, :-3], atol=1e-6)
    np.testing.assert_allclose(video[2 * steps][:, 6:], video[0][:, :-6], atol=1e-6)
    np.testing.assert_allclose(video[-1], video[0], atol=1e-6)
    # The image is shown 24×24 from the start corner (1, 1); bilinear interpolation against the black
    # surround fades it out over half an input pixel (1.5 field pixels) to zero at pixel centres -0.5 and
    # 26.5: columns/rows 0..25 lit, black beyond.
    assert video[0][:, 26:].max() == 0 and video[0][26:, :].max() == 0
    assert video[0][1:25, 1:25].min() > 0 and video[0][:, 25].max() > 0 and video[0][0, :].max() > 0


def test_to_frame_bins_have_equal_event_counts_and_tonic_channel_order():
    events = simulate(step_edge_video(BRIGHT, DARK), TIMES, CONFIG)  # 3 rows × 7 columns × 7 ON events
    assert len(events) == 147
    for T in (4, 5, 7):
        frames = events_to_frames(events, (W, H, 2), T)
        assert frames.shape == (T, 2, H, W) and frames.dtype == np.float32
        per_frame = frames.sum(axis=(1, 2, 3))
        assert per_frame.max() - per_frame.min() <= 1
        assert per_frame.sum() >= len(events) - T + 1
        assert frames[:, OFF_CHANNEL].sum() == 0 and frames[:, ON_CHANNEL].sum() == per_frame.sum()
    # Counts are kept, not binarized: the first bin of T=3 holds the 49 events of column 1 (7 per pixel).
    frames = events_to_frames(events, (W, H, 2), 3)
    assert frames[0, ON_CHANNEL, :, 1].tolist() == [7.0, 7.0, 7.0]


def test_to_frame_with_fewer_events_than_bins_gives_empty_frames():
    events = simulate(step_edge_video(BRIGHT, DARK), TIMES, CONFIG)[:3]
    frames = events_to_frames(events, (W, H, 2), 8)
    assert frames.shape == (8, 2, H, W) and frames.sum() == 0


def test_timestamps_may_start_anywhere():
    shifted = simulate(step_edge_video(BRIGHT, DARK), TIMES - 5_000, CONFIG)
    plain = simulate(step_edge_video(BRIGHT, DARK), TIMES, CONFIG)
    np.testing.assert_array_equal(shifted["t"], plain["t"] - 5_000)
    np.testing.assert_array_equal(shifted[["x", "y", "p"]], plain[["x", "y", "p"]])
