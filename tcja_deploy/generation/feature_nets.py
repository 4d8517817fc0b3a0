"""The in-project feature networks of the image metrics: train, save, load, and a per-dataset cache.

No Inception weights can be fetched here, so Fréchet distances and scores are computed on networks trained
in the project on the dataset's train split (:mod:`tcja_deploy.generation.feature_models`): a CNN classifier
(classifier-FID on its pooled features, a classifier score à la Inception Score on its softmax) and FSVAE's
ANN autoencoder (autoencoder-FID on its latent). Their numbers are **not comparable to Inception-based
figures**.

A feature-net run directory (docs/FORMATS.md, "Feature-net run directory") holds ``config.json``,
``model.safetensors``, ``metrics.json``, the per-epoch resume checkpoint ``train_state.safetensors``
(:mod:`tcja_deploy.training.state`), the marker ``.tcja_deploy`` (kind ``feature_net``) and the writer lock
``.lock``. Every file is written atomically; ``metrics.json`` and a complete marker are written last.

Training: AdamW (FSVAE's ``main_ann_ae.py`` optimizer, lr 1e-3; 1e-2 for the classifier) with a cosine learning rate over the epochs
(ours: FSVAE keeps it constant; the decay steadies the short default runs), computed from the epoch index
alone (:func:`epoch_lr`), so it needs no saved scheduler state; cross-entropy
(classifier) or MSE on [−1, 1] images (autoencoder); every random draw of an epoch (data order) comes from a
generator seeded by (seed, epoch), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tcja_deploy import atomic, outputs
from tcja_deploy.errors import UserError
from tcja_deploy.generation.feature_models import (KINDS, FeatureNetConfig, build_network, check_images,
                                                   default_config)
from tcja_deploy.generation.metrics import reconstruction_mse
from tcja_deploy.training import checkpoint
from tcja_deploy.training.lock import run_lock
from tcja_deploy.training.loop import epoch_seed, seed_everything
from tcja_deploy.training.state import (STATE_FILE, TrainState, check_optimizer_state, load_train_state,
                                        save_train_state)

FORMAT = "tcja_deploy.feature_net/1"
#: The kind written in the run directory's marker (:mod:`tcja_deploy.outputs`).
DIR_KIND = "feature_net"
#: Default epochs per kind: measured on the digits (1,438 training images) to reach a useful network in
#: seconds on 2 CPU cores (see :data:`DEFAULT_STEPS`); larger sets need fewer passes (:func:`default_epochs`).
DEFAULT_STEPS = {"classifier": 450, "autoencoder": 400}
DEFAULT_BATCH_SIZE = 32
#: AdamW's initial rate: FSVAE's 1e-3 for its autoencoder; 1e-2 for the classifier (ours: on the digits it ends
#: more confident, train loss 0.03 instead of 0.44 at 1e-3, test accuracy 98.6 % instead of 97.5 %).
DEFAULT_LR = {"classifier": 1e-2, "autoencoder": 1e-3}
#: AdamW's default decay, as FSVAE's autoencoder training (it sets no weight_decay).
DEFAULT_WEIGHT_DECAY = 1e-2
MAX_DEFAULT_EPOCHS = 150  # FSVAE's autoencoder epochs
FEATURE_BATCH = 256
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def default_epochs(kind: str, num_train: int, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Epochs giving about :data:`DEFAULT_STEPS` optimizer steps on ``num_train`` images (1 to 150)."""
    steps_per_epoch = max(1, math.ceil(num_train / batch_size))
    return int(min(MAX_DEFAULT_EPOCHS, max(1, math.ceil(DEFAULT_STEPS[kind] / steps_per_epoch))))


def epoch_lr(lr: float, epoch: int, epochs: int) -> float:
    """Cosine-annealed learning rate of 0-based ``epoch`` of ``epochs``: ``lr`` at epoch 0, towards 0 at the end."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


@dataclass(frozen=True)
class FeatureTrainConfig:
    """How a feature network was trained (``config.json``'s ``train``)."""

    epochs: int
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = 1e-3
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    seed: int = 0
    dataset: str | None = None
    train_samples: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"{name} must be a positive integer, got {v!r}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise UserError(f"{name} must be a finite number ≥ 0, got {v!r}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr!r}")


class FeatureNet:
    """A trained feature network in eval mode; reads images [N, C, H, W] in [−1, 1]."""

    def __init__(self, config: FeatureNetConfig, network: torch.nn.Module, run_dir: Path | None = None,
                 metrics: dict[str, Any] | None = None):
        self.config = config
        self.network = network.eval()
        self.run_dir = run_dir
        self.metrics = dict(metrics or {})

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def _batches(self, images: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor],
                 batch_size: int) -> np.ndarray:
        check_images(images, self.image_shape)
        device = next(self.network.parameters()).device
        self.network.eval()
        out = []
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start:start + batch_size].to(device, torch.float32)
                out.append(fn(batch).float().cpu().numpy())
        return np.concatenate(out)

    def features(self, images: torch.Tensor, batch_size: int = FEATURE_BATCH) -> np.ndarray:
        """Features float32 [N, D]: the classifier's pooled last block, the autoencoder's latent."""
        return self._batches(images, self.network.features, batch_size)

    def probs(self, images: torch.Tensor, batch_size: int = FEATURE_BATCH) -> np.ndarray:
        """Class probabilities float32 [N, K] (softmax of the logits); classifier only."""
        if self.kind != "classifier":
            raise UserError(f"{self.run_dir or 'this network'}: an autoencoder has no class probabilities")
        return self._batches(images, lambda x: F.softmax(self.network(x), dim=1), batch_size)

    def reconstruct(self, images: torch.Tensor, batch_size: int = FEATURE_BATCH) -> torch.Tensor:
        """Reconstructions [N, C, H, W] in [−1, 1]; autoencoder only."""
        if self.kind != "autoencoder":
            raise UserError(f"{self.run_dir or 'this network'}: a classifier does not reconstruct images")
        return torch.from_numpy(self._batches(images, self.network, batch_size))


# ---------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------


def _check_labels(labels: torch.Tensor | None, n: int, what: str) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) or labels.ndim != 1:
        raise UserError(f"{what}: expected an integer tensor [N], got "
                        f"{type(labels).__name__ if not isinstance(labels, torch.Tensor) else labels.dtype}")
    if labels.shape[0] != n:
        raise UserError(f"{what}: {labels.shape[0]} labels for {n} images")
    if n and int(labels.min()) < 0:
        raise UserError(f"{what}: negative labels")
    return labels.long()


def _loss(network: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    if kind == "classifier":
        return F.cross_entropy(network(x), y)
    return F.mse_loss(network(x), x)


def _train_epoch(network: torch.nn.Module, optimizer: torch.optim.Optimizer, kind: str, images: torch.Tensor,
                 labels: torch.Tensor | None, batch_size: int, seed: int, device: torch.device, progress: bool,
                 desc: str) -> float:
    """One pass in a (seed)-determined order; batches of one image are skipped (BatchNorm); mean loss back."""
    network.train()
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    starts = [s for s in range(0, len(order), batch_size) if len(order) - s >= 2]
    total, seen = 0.0, 0
    bar = tqdm(starts, desc=desc, leave=False, disable=not progress, unit="batch", dynamic_ncols=True)
    for start in bar:
        idx = order[start:start + batch_size]
        x = images[idx].to(device)
        y = labels[idx].to(device) if labels is not None else None
        loss = _loss(network, kind, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss) * len(idx)
        seen += len(idx)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(seen, 1)


def _evaluate(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor | None) -> dict[str, float]:
    if net.kind == "classifier":
        predicted = torch.from_numpy(net.probs(images).argmax(1))
        return {"test_accuracy": float((predicted == labels).double().mean())}
    return {"test_recon_mse": reconstruction_mse(net.reconstruct(images), images)}


def _artifacts() -> tuple[str, ...]:
    return (checkpoint.CONFIG_FILE, checkpoint.MODEL_FILE, checkpoint.METRICS_FILE, STATE_FILE)


def train_feature_net(kind: str, images: torch.Tensor, labels: torch.Tensor | None, out_dir: Path,
                      epochs: int | None = None, seed: int = 0, *, test_images: torch.Tensor | None = None,
                      test_labels: torch.Tensor | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                      lr: float | None = None, weight_decay: float = DEFAULT_WEIGHT_DECAY, dataset: str | None = None,
                      resume: bool = False, device: str | torch.device = "cpu", progress: bool = True,
                      log: Log = _stderr) -> FeatureNet:
    """Train a feature network on a train split and write its run directory ``out_dir``.

    Args:
        kind: ``classifier`` or ``autoencoder``.
        images: train images float [N, C, H, W] in [−1, 1].
        labels: train labels int64 [N] (classifier; K = max + 1 ≥ 2); ignored by the autoencoder.
        out_dir: run directory (new, empty, or a feature-net directory, which is replaced unless ``resume``).
        epochs: passes over the train split (None: :func:`default_epochs`).
        lr: AdamW's initial learning rate, cosine-annealed per epoch (None: :data:`DEFAULT_LR` of the kind).
        seed: seed of the initial weights and of each epoch's data order.
        test_images, test_labels: when given, ``metrics.json`` holds the test accuracy (classifier) or the
            test reconstruction MSE (autoencoder) after every epoch's line and at the end.
        resume: continue ``out_dir`` from its last completed epoch (its network config must match; ``epochs``
            may be raised).
        device: where to train (the returned network stays there).

    Returns:
        The trained network (eval mode), ``run_dir`` and ``metrics`` set.

    Raises:
        UserError: bad tensors or settings, an ``out_dir`` another command wrote, a run directory in use, or
            (``resume``) a missing or mismatching checkpoint. A new run stopped before its first epoch
            completes leaves no directory behind; a later one keeps its completed epochs for ``resume``.
    """
    if kind not in KINDS:
        raise UserError(f"kind {kind!r}: choose one of {', '.join(KINDS)}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise UserError(f"train images: expected a float tensor [N, C, H, W], got "
                        f"{list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    images = images.float()
    shape = tuple(int(v) for v in images.shape[1:])
    num_classes = 0
    if kind == "classifier":
        labels = _check_labels(labels, images.shape[0], "train labels")
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
        if num_classes < 2 or labels.unique().numel() < 2:
            raise UserError(f"{dataset or 'these images'}: a classifier needs at least 2 classes in the labels "
                            f"(this set has {labels.unique().numel()})")
    else:
        labels = None
    if test_images is not None:
        check_images(test_images, shape, "test images")
        test_images = test_images.float()
        if kind == "classifier":
            test_labels = _check_labels(test_labels, test_images.shape[0], "test labels")
    if images.shape[0] < 2:
        raise UserError(f"train images: need at least 2, got {images.shape[0]}")
    try:
        net_config = default_config(kind, shape, num_classes)
    except ValueError as e:
        raise UserError(f"{dataset or 'images'} {list(shape)}: {e}") from None
    if epochs is None:
        epochs = default_epochs(kind, images.shape[0], batch_size)
    lr = DEFAULT_LR[kind] if lr is None else lr
    train_config = FeatureTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                      seed=seed, dataset=dataset, train_samples=int(images.shape[0]))
    out_dir = Path(out_dir)
    outputs.check_out_dir(out_dir, DIR_KIND)
    state = _resume_state(out_dir, net_config) if resume else None
    device = torch.device(device)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir):
        for name in _artifacts():
            outputs.clean_stale_temporaries(out_dir / name)
        try:
            return _train_locked(net_config, train_config, images, labels, test_images, test_labels, out_dir,
                                 state, device, progress, log)
        except BaseException as e:
            if state is None and not (out_dir / STATE_FILE).exists():
                _remove_unfinished(out_dir, created)
            elif isinstance(e, KeyboardInterrupt):
                log(f"stopped; completed epochs are kept: continue with --resume ({out_dir})")
            raise


def _resume_state(out_dir: Path, net_config: FeatureNetConfig) -> TrainState:
    path = out_dir / STATE_FILE
    state = load_train_state(path)
    saved = state.config.get("network")
    if saved != net_config.to_dict():
        raise UserError(f"{path}: trained a different network ({saved}); these images make {net_config.to_dict()}")
    return state


def _remove_unfinished(out_dir: Path, created: bool) -> None:
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    for name in _artifacts():
        (out_dir / name).unlink(missing_ok=True)


def _train_locked(net_config: FeatureNetConfig, train_config: FeatureTrainConfig, images: torch.Tensor,
                  labels: torch.Tensor | None, test_images: torch.Tensor | None, test_labels: torch.Tensor | None,
                  out_dir: Path, state: TrainState | None, device: torch.device, progress: bool,
                  log: Log) -> FeatureNet:
    seed_everything(train_config.seed)  # initial weights
    network = build_network(net_config).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    history: list[dict[str, Any]] = []
    if state is not None:
        path = out_dir / STATE_FILE
        checkpoint.check_state_matches(network, state.model, path)
        check_optimizer_state(state.optimizer, network, path)
        network.load_state_dict(state.model)
        try:
            optimizer.load_state_dict(state.optimizer)
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: optimizer state does not fit the network ({e})") from None
        for group in optimizer.param_groups:  # the settings of this call (decay) apply from here on
            group["weight_decay"] = train_config.weight_decay
        history = list(state.history)
        log(f"resuming {out_dir} after epoch {len(history)}/{train_config.epochs}")
    else:
        outputs.write_marker(out_dir, DIR_KIND, complete=False)
        for name in (checkpoint.METRICS_FILE, checkpoint.MODEL_FILE, STATE_FILE):
            (out_dir / name).unlink(missing_ok=True)  # a replaced feature-net run's results
    document = {"format": FORMAT, "network": net_config.to_dict(), "train": asdict(train_config)}
    atomic.write_json(out_dir / checkpoint.CONFIG_FILE, document)
    net = FeatureNet(net_config, network, out_dir)
    kind = net_config.kind
    for epoch in range(len(history), train_config.epochs):
        e0 = time.perf_counter()
        seed = epoch_seed(train_config.seed, epoch)
        seed_everything(seed)
        lr = epoch_lr(train_config.lr, epoch, train_config.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        desc = f"{kind} epoch {epoch + 1}/{train_config.epochs}"
        train_loss = _train_epoch(network, optimizer, kind, images.to(device) if device.type != "cpu" else images,
                                  labels, train_config.batch_size, seed, device, progress, desc)
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
        if test_images is not None:
            record.update(_evaluate(net, test_images, test_labels))
        record["seconds"] = time.perf_counter() - e0
        history.append(record)
        save_train_state(out_dir / STATE_FILE, TrainState(
            epoch=epoch + 1, model=network.state_dict(), optimizer=optimizer.state_dict(), scheduler={},
            config={"network": net_config.to_dict(), "train": asdict(train_config)}, history=history))
        log(f"{desc}: " + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
    metrics: dict[str, Any] = {"kind": kind, "dataset": train_config.dataset, "epochs": train_config.epochs,
                               "train_samples": train_config.train_samples, "train_loss": history[-1]["train_loss"],
                               "seconds": sum(r["seconds"] for r in history),
                               "history": history}
    if test_images is not None:
        metrics["test_samples"] = int(test_images.shape[0])
        for key in ("test_accuracy", "test_recon_mse"):
            if key in history[-1]:
                metrics[key] = history[-1][key]
    checkpoint.save_state_dict(out_dir / checkpoint.MODEL_FILE, network.state_dict())
    atomic.write_json(out_dir / checkpoint.METRICS_FILE, metrics)
    outputs.write_marker(out_dir, DIR_KIND, complete=True)
    net.metrics = metrics
    return net


# ---------------------------------------------------------------------------------------------------------------
# loading and the cache
# ---------------------------------------------------------------------------------------------------------------


def read_feature_config(run_dir: Path) -> tuple[FeatureNetConfig, dict[str, Any]]:
    """(network config, train settings) of a feature-net run directory; bad files → one-line UserError."""
    path = Path(run_dir) / checkpoint.CONFIG_FILE
    doc = checkpoint.read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise UserError(f"{path}: not a feature-net config (format {found!r}, expected {FORMAT!r})")
    try:
        config = FeatureNetConfig.from_dict(doc.get("network"))
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    train = doc.get("train")
    return config, train if isinstance(train, dict) else {}


def load_feature_net(run_dir: Path, device: str | torch.device = "cpu") -> FeatureNet:
    """The trained network of a feature-net run directory (safetensors weights only), in eval mode.

    A missing directory, config or weights file, a damaged one, weights that do not fit the config or an
    unfinished training raise a one-line UserError naming the file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: feature-net run directory not found")
    config, _ = read_feature_config(run_dir)
    weights = run_dir / checkpoint.MODEL_FILE
    if not weights.is_file() and (run_dir / STATE_FILE).is_file():
        raise UserError(f"{weights}: not written yet (the training did not finish); continue it with --resume")
    state = checkpoint.load_state_dict(weights)
    network = build_network(config)
    checkpoint.check_state_matches(network, state, weights)
    network.load_state_dict(state)
    metrics_path = run_dir / checkpoint.METRICS_FILE
    metrics = checkpoint.read_json(metrics_path) if metrics_path.is_file() else {}
    return FeatureNet(config, network.to(device), run_dir, metrics if isinstance(metrics, dict) else {})


def _is_complete(run_dir: Path) -> bool:
    marker = outputs.read_marker(run_dir)
    return bool(marker and marker.get("kind") == DIR_KIND and marker.get("complete") is True
                and (run_dir / checkpoint.MODEL_FILE).is_file())


def cached_feature_net(kind: str, dataset: str, images: torch.Tensor, labels: torch.Tensor | None,
                       cache_dir: Path, seed: int = 0, *, test_images: torch.Tensor | None = None,
                       test_labels: torch.Tensor | None = None, epochs: int | None = None, progress: bool = True,
                       log: Log = _stderr) -> FeatureNet:
    """The ``kind`` network of ``dataset`` from ``cache_dir/<dataset>-<kind>``: loaded if complete (it must
    have been trained on images of this shape and on as many of them), resumed if unfinished, else trained."""
    run_dir = Path(cache_dir) / f"{dataset}-{kind}"
    if _is_complete(run_dir):
        net = load_feature_net(run_dir)
        _, train = read_feature_config(run_dir)
        shape = tuple(images.shape[1:])
        if net.image_shape != shape:
            raise UserError(f"{run_dir}: trained on {kind} images {list(net.image_shape)}, these are {list(shape)}; "
                            f"delete it to retrain")
        if train.get("train_samples") != int(images.shape[0]):
            raise UserError(f"{run_dir}: trained on {train.get('train_samples')} images, this train split has "
                            f"{images.shape[0]}; delete it to retrain")
        if kind == "classifier" and labels is not None and net.config.num_classes != int(labels.max()) + 1:
            raise UserError(f"{run_dir}: trained for {net.config.num_classes} classes, these labels have "
                            f"{int(labels.max()) + 1}; delete it to retrain")
        return net
    resume = (run_dir / STATE_FILE).is_file()
    log(f"{'resuming' if resume else 'training'} the {dataset} {kind} for the image metrics in {run_dir}")
    return train_feature_net(kind, images, labels, run_dir, epochs, seed, test_images=test_images,
                             test_labels=test_labels, dataset=dataset, resume=resume, progress=progress, log=log)


def ensure_feature_nets(dataset: str, split_images: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                        cache_dir: Path, seed: int = 0, *, epochs: dict[str, int] | None = None,
                        progress: bool = True, log: Log = _stderr) -> tuple[FeatureNet | None, FeatureNet]:
    """(classifier, autoencoder) of ``dataset``, trained into ``cache_dir`` on first use, loaded afterwards.

    Args:
        dataset: the dataset's name (names the cache folders ``<dataset>-classifier``, ``<dataset>-autoencoder``).
        split_images: ``{"train": [N, C, H, W], "test": [M, C, H, W]}`` in [−1, 1]; ``test`` is optional and
            only scores the networks (``metrics.json``).
        labels: ``{"train": [N], "test": [M]}`` int64.
        cache_dir: where the run directories live.
        epochs: epochs per kind for networks trained here (default: :func:`default_epochs`).

    Returns:
        The classifier is None for a set without classes (fewer than 2 distinct train labels, e.g. CelebA):
        there is no classifier-FID or classifier score for it.
    """
    if "train" not in split_images:
        raise UserError(f"{dataset}: the feature networks train on the train split; none given")
    train, test = split_images["train"], split_images.get("test")
    train_labels, test_labels = labels.get("train"), labels.get("test")
    epochs = epochs or {}
    classifier = None
    if isinstance(train_labels, torch.Tensor) and train_labels.unique().numel() >= 2:
        classifier = cached_feature_net("classifier", dataset, train, train_labels, cache_dir, seed,
                                        test_images=test, test_labels=test_labels, epochs=epochs.get("classifier"),
                                        progress=progress, log=log)
    autoencoder = cached_feature_net("autoencoder", dataset, train, None, cache_dir, seed, test_images=test,
                                     epochs=epochs.get("autoencoder"), progress=progress, log=log)
    return classifier, autoencoder
