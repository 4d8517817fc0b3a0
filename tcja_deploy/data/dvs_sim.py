"""A simulated DVS pixel array, and the saccade video that turns a still image into an event stream.

Pixel model (the idealized DVS of Lichtsteiner et al., IEEE JSSC 2008, as simulated by ESIM, Rebecq et
al., CoRL 2018, and v2e, Hu et al., CVPR Workshops 2021): every pixel keeps a reference log intensity
``R``, initialised to ``log(I₀ + eps)`` of the first frame. Whenever ``L = log(I + eps)`` has moved by
at least the contrast threshold ``C`` above (below) ``R``, the pixel emits an ON (OFF) event and moves
``R`` by ``C`` towards ``L``; a change spanning several thresholds within one frame interval emits
several events. No noise, refractory period or bandwidth limit is modelled.

Event times: between two frames, ``L`` is taken to change linearly, and the k-th event of a pixel in
the interval (t₀, t₁] is stamped when that line crosses ``R ± k·C`` (ESIM's and v2e's interpolation),
rounded up to whole µs, so it lies in (t₀, t₁]. Events are tonic event arrays
(:data:`~tcja_deploy.data.frames.EVENT_DTYPE`: x, y, t in µs, p with 1 = ON, 0 = OFF), sorted by t.

Video layout: [S, H, W] (or a batch [N, S, H, W]) intensities in [0, 1], with S timestamps in µs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tcja_deploy.data.frames import EVENT_DTYPE, linear_resample_matrix


@dataclass(frozen=True)
class DvsConfig:
    """Parameters of the simulated pixel array.

    Attributes:
        threshold: contrast threshold C, in natural-log intensity units, for ON and OFF events.
        eps: offset inside the log, ``L = log(I + eps)``, for intensities I in [0, 1]; bounds the
            log contrast of black (I = 0) pixels, as a real pixel's dark current does.
        threshold_sigma: standard deviation of the per-pixel threshold mismatch (log units); each pixel
            has its own ``C`` drawn once from N(threshold, sigma²), clipped at 0.01 (as v2e). 0 = none.
        seed: seed of that per-pixel draw (a fixed pattern of one sensor: it never varies per sample).
    """

    threshold: float = 0.2
    eps: float = 0.1
    threshold_sigma: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.threshold <= 0 or self.eps <= 0 or self.threshold_sigma < 0:
            raise ValueError(f"need threshold > 0, eps > 0, threshold_sigma ≥ 0, got {self}")


@dataclass(frozen=True)
class SaccadeConfig:
    """A still image moved in three straight saccades that form a triangle, as N-MNIST was recorded.

    Orchard et al. (Front. Neurosci. 2015) moved the sensor in three ≈100 ms saccades; seen from the
    sensor, a 28×28 MNIST digit's displacement goes (0, 0) → (3.5, 7) → (7, 0) → (0, 0) pixels (x, y),
    the figures tonic's N-MNIST ``stabilize`` undoes. Our default scales that triangle by 24/28 for a
    24×24 image, which fits in a 32×32 field from a start corner at (1, 1).

    Attributes:
        field_size: side of the square pixel array (H = W), pixels.
        image_size: side of the image as displayed, pixels (the image is resampled bilinearly).
        start: (x, y) of the image's top-left corner at t = 0, field pixels.
        vertices: (dx, dy) displacement from ``start`` at the end of each saccade, field pixels.
        steps_per_saccade: video frames per saccade (the motion between frames is < 1 pixel by default).
        saccade_us: duration of one saccade, µs.
    """

    field_size: int = 32
    image_size: int = 24
    start: tuple[float, float] = (1.0, 1.0)
    vertices: tuple[tuple[float, float], ...] = ((3.0, 6.0), (6.0, 0.0), (0.0, 0.0))
    steps_per_saccade: int = 8
    saccade_us: int = 100_000

    @property
    def num_frames(self) -> int:
        """S = 1 + saccades × steps_per_saccade (the first frame is the start position)."""
        return 1 + len(self.vertices) * self.steps_per_saccade


def saccade_path(config: SaccadeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Image displacement per frame: ([S, 2] (dx, dy) in field pixels, [S] timestamps in µs, int64)."""
    corners = np.array([(0.0, 0.0), *config.vertices])
    frac = np.arange(config.steps_per_saccade) / config.steps_per_saccade
    legs = [a + frac[:, None] * (b - a) for a, b in zip(corners[:-1], corners[1:])]
    path = np.concatenate([*legs, corners[-1:]])
    steps = np.arange(len(path))
    times = np.round(steps * config.saccade_us / config.steps_per_saccade).astype(np.int64)
    return path, times


def saccade_video(image: np.ndarray, config: SaccadeConfig = SaccadeConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Render an image (or a batch) moving along :func:`saccade_path` on a black field.

    Args:
        image: [h, w] or [N, h, w] intensities in [0, 1].
        config: geometry and timing.

    Returns:
        (video, times): video float32 [S, F, F] (or [N, S, F, F]) with F = ``field_size``, each frame the
        image resampled to ``image_size`` pixels at its sub-pixel position by bilinear interpolation
        against a black surround (so its border fades out over half an input pixel beyond the
        ``image_size`` box); times int64 [S] in µs.
    """
    image = np.asarray(image, dtype=np.float64)
    single = image.ndim == 2
    batch = image[None] if single else image
    h, w = batch.shape[-2:]
    path, times = saccade_path(config)
    F, size = config.field_size, config.image_size
    x0, y0 = config.start
    rows = np.stack([linear_resample_matrix(F, h, size / h, y0 + dy) for _, dy in path])  # [S, F, h]
    cols = np.stack([linear_resample_matrix(F, w, size / w, x0 + dx) for dx, _ in path])  # [S, F, w]
    # frame s of image n = rows[s] @ image[n] @ cols[s]ᵀ (bilinear resampling is separable).
    video = np.matmul(rows[None], np.matmul(batch[:, None], cols.transpose(0, 2, 1)[None])).astype(np.float32)
    return (video[0] if single else video), times


def pixel_thresholds(config: DvsConfig, shape: tuple[int, int]) -> np.ndarray:
    """[H, W] contrast threshold of every pixel (float64, log units), fixed by ``config.seed``."""
    if config.threshold_sigma == 0:
        return np.full(shape, config.threshold)
    rng = np.random.RandomState(config.seed)
    return np.maximum(config.threshold + config.threshold_sigma * rng.standard_normal(shape), 0.01)


def _events_of_step(counts: np.ndarray, ref: np.ndarray, prev: np.ndarray, cur: np.ndarray,
                    thresholds: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, ...]:
    """Expand signed per-pixel event counts [N, H, W] of one interval into (n, y, x, t, p) columns."""
    n, y, x = np.nonzero(counts)
    signed = counts[n, y, x]
    m = np.abs(signed)
    # Per firing pixel: reference, log intensity at t0, its change over the interval, signed threshold.
    ref_px, start_px, change_px = ref[n, y, x], prev[n, y, x], cur[n, y, x] - prev[n, y, x]
    step_px = np.sign(signed) * thresholds[y, x]
    k = np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m) + 1  # 1..m within each pixel
    n, y, x, sign, ref_e, start_e, change_e, step_e = (
        np.repeat(a, m) for a in (n, y, x, np.sign(signed), ref_px, start_px, change_px, step_px))
    # The k-th crossing's position along the interval; 1 (the frame time) where rounding left no change.
    alpha = np.divide(ref_e + k * step_e - start_e, change_e, out=np.ones_like(change_e),
                      where=np.abs(change_e) > 1e-12)
    t = t0 + np.ceil(np.clip(alpha, 0.0, 1.0) * (t1 - t0)).astype(np.int64)
    return n, y, x, np.clip(t, t0 + 1, t1), (sign > 0).astype(np.int8)


def simulate_batch(videos: np.ndarray, times_us: np.ndarray,
                   config: DvsConfig = DvsConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Run the pixel array over N videos at once.

    Args:
        videos: [N, S, H, W] intensities in [0, 1].
        times_us: [S] ascending frame timestamps, µs.
        config: pixel parameters.

    Returns:
        (events, offsets): all samples' events concatenated (:data:`EVENT_DTYPE`), and N + 1 offsets;
        sample i is ``events[offsets[i]:offsets[i + 1]]``, sorted by t (ties in a fixed order).
    """
    videos = np.asarray(videos)
    times_us = np.asarray(times_us, dtype=np.int64)
    N, S, H, W = videos.shape
    if len(times_us) != S or np.any(np.diff(times_us) <= 0):
        raise ValueError(f"need {S} strictly ascending timestamps, got {times_us.tolist()}")
    thresholds = pixel_thresholds(config, (H, W))
    prev = np.log(videos[:, 0].astype(np.float64) + config.eps)
    ref = prev.copy()
    columns: list[tuple[np.ndarray, ...]] = []
    for s in range(1, S):
        cur = np.log(videos[:, s].astype(np.float64) + config.eps)
        # Signed number of whole thresholds between L and R: sign(L - R)·⌊|L - R| / C⌋.
        counts = np.trunc((cur - ref) / thresholds).astype(np.int64)
        if counts.any():
            columns.append(_events_of_step(counts, ref, prev, cur, thresholds, times_us[s - 1], times_us[s]))
            ref += counts * thresholds
        prev = cur
    return _assemble(columns, N)


def _assemble(columns: list[tuple[np.ndarray, ...]], N: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-step (n, y, x, t, p) columns into one event array sorted by (sample, t)."""
    if columns:
        n, y, x, t, p = (np.concatenate(c) for c in zip(*columns))
    else:
        n, y, x, t, p = (np.zeros(0, dtype=np.int64) for _ in range(5))
    t_min = int(t.min(initial=0))
    key = n * (int(t.max(initial=0)) - t_min + 1) + (t - t_min)
    order = np.argsort(key, kind="stable")  # by (sample, t); equal times keep the generation order
    events = np.empty(len(order), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[order], y[order], t[order], p[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(n, minlength=N))]).astype(np.int64)
    return events, offsets


def simulate(video: np.ndarray, times_us: np.ndarray, config: DvsConfig = DvsConfig()) -> np.ndarray:
    """Events of one video [S, H, W] (intensities in [0, 1], ``times_us`` [S] in µs), sorted by t."""
    events, _ = simulate_batch(np.asarray(video)[None], times_us, config)
    return events
