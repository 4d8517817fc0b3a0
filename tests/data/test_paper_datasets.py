"""Loaders of the paper's four datasets, on tiny fake datasets in the real on-disk formats (offline).

Frames are checked against an independent binning of the written events (T frames of n // T events each,
counts per polarity at [t, p, y, x]), so layout, orientation, crop, labels, splits, augmentation, the frame
cache and the one-line errors are all tested without tonic's own framing being taken on trust.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fake_datasets as fake

from tcja_deploy.data import cifar10_dvs, dvs128_gesture, event_frames, fashion_mnist, ncaltech101  # noqa: E402
from tcja_deploy.errors import UserError  # noqa: E402
from tcja_deploy.models.presets import get_preset  # noqa: E402

EVENT_MODULES = {"dvs128_gesture": dvs128_gesture, "cifar10_dvs": cifar10_dvs, "ncaltech101": ncaltech101}
WRITERS = {"dvs128_gesture": fake.write_dvs_gesture, "cifar10_dvs": fake.write_cifar10_dvs,
           "ncaltech101": fake.write_ncaltech101}
RAW_FOLDERS = {"dvs128_gesture": "DVSGesture", "cifar10_dvs": "CIFAR10DVS", "ncaltech101": "NCALTECH101"}


@pytest.fixture(autouse=True)
def allow_tiny_datasets(monkeypatch):
    """The fakes are far smaller than tonic's completeness threshold: allow partial data unless a test says not."""
    monkeypatch.setenv(event_frames.ALLOW_PARTIAL_ENV, "1")


def expected_frames(rec: fake.FakeRecording, T: int, width: int, height: int) -> np.ndarray:
    """Independent binning: T frames of n // T consecutive events, counts at [t, p, y, x]."""
    per_frame = len(rec.x) // T
    frames = np.zeros((T, 2, height, width), dtype=np.int64)
    for t in range(T):
        s = slice(t * per_frame, (t + 1) * per_frame)
        np.add.at(frames, (t, rec.p[s], rec.y[s], rec.x[s]), 1)
    return frames


def write_all(data_dir: Path) -> None:
    fake.write_dvs_gesture(data_dir)
    fake.write_cifar10_dvs(data_dir)
    fake.write_ncaltech101(data_dir)
    fake.write_fashion_mnist(data_dir / "FashionMNIST" / "raw")


def is_flip_roll_of(out: torch.Tensor, raw: torch.Tensor, flip: bool, max_shift: int,
                    pool: tuple[int, int] | None = None) -> bool:
    """Whether ``out`` is one of the outputs FlipRoll(flip, max_shift) (then adaptive pooling to ``pool``) can give.

    Candidates are screened on the [H, W] sum over T and C (pooling is linear), then checked in full.
    """
    def finish(x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, pool) if pool else x

    target = out.sum(dim=(0, 1))
    for flipped in ((False, True) if flip else (False,)):
        base = raw.flip(-1) if flipped else raw
        plane = base.sum(dim=(0, 1)).numpy()
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                candidate = torch.from_numpy(np.roll(plane, (dy, dx), axis=(0, 1)))
                if torch.allclose(finish(candidate[None])[0], target, atol=1e-5):
                    if torch.equal(out, finish(torch.roll(base, shifts=(dy, dx), dims=(-2, -1)))):
                        return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# Each dataset: found, framed, labelled, split
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist"])
def test_shapes_and_classes_match_the_preset(tmp_path, name):
    write_all(tmp_path)
    from tcja_deploy.data.registry import get_dataset

    pair = get_dataset(name, T=3, data_dir=tmp_path)
    model = get_preset(name).model
    assert pair.name == name
    assert tuple(pair.input_shape) == tuple(model.input_shape)
    assert pair.num_classes == model.num_classes
    frames, label = pair.test[0]
    assert frames.dtype == torch.float32 and tuple(frames.shape) == (3, *model.input_shape)
    assert isinstance(label, int) and 0 <= label < model.num_classes


def test_dvs_gesture_frames_labels_and_official_split(tmp_path):
    written = fake.write_dvs_gesture(tmp_path)
    T = 5
    pair = dvs128_gesture.load(T=T, data_dir=tmp_path)
    assert {s.key for s in pair.train.samples} == {k for k in written if k.startswith("ibmGestureTrain/")}
    assert {s.key for s in pair.test.samples} == {k for k in written if k.startswith("ibmGestureTest/")}
    for dataset in (pair.train, pair.test):
        for i, sample in enumerate(dataset.samples):
            rec = written[sample.key]
            frames, label = dataset[i]
            assert label == rec.label
            assert tuple(frames.shape) == (T, 2, 128, 128)
            np.testing.assert_array_equal(frames.numpy(), expected_frames(rec, T, 128, 128))
            counts = frames.sum(dim=(1, 2, 3))
            assert counts.max() - counts.min() <= 1 and counts[0] == len(rec.x) // T
    # no augmentation by default: the training split reads the same twice
    assert torch.equal(pair.train[0][0], pair.train[0][0])
    assert pair.train.augment is None


def test_dvs_gesture_augment_rolls_but_never_flips(tmp_path):
    fake.write_dvs_gesture(tmp_path)
    pair = dvs128_gesture.load(T=2, data_dir=tmp_path, augment=True)
    raw = torch.from_numpy(pair.train.raw_frames(0).astype(np.float32))
    torch.manual_seed(0)
    outputs = [pair.train[0][0] for _ in range(5)]
    for out in outputs:
        assert is_flip_roll_of(out, raw, flip=False, max_shift=5)
    assert not is_flip_roll_of(raw.flip(-1), raw, flip=False, max_shift=5)  # the check can fail
    assert any(not torch.equal(out, raw) for out in outputs)
    test_raw = torch.from_numpy(pair.test.raw_frames(0).astype(np.float32))
    assert all(torch.equal(pair.test[0][0], test_raw) for _ in range(3))


def test_cifar10_dvs_orientation_counts_and_pooling(tmp_path):
    written = fake.write_cifar10_dvs(tmp_path)
    T = 3
    pair = cifar10_dvs.load(T=T, data_dir=tmp_path, augment=False)
    for dataset in (pair.train, pair.test):
        for i, sample in enumerate(dataset.samples):
            rec = written[sample.key]
            raw = dataset.raw_frames(i)
            np.testing.assert_array_equal(raw, expected_frames(rec, T, 128, 128))
            frames, label = dataset[i]
            assert label == rec.label
            expected = F.adaptive_avg_pool2d(torch.from_numpy(raw.astype(np.float32)), (48, 48))
            assert tuple(frames.shape) == (T, 2, 48, 48)
            torch.testing.assert_close(frames, expected, rtol=0, atol=0)


def test_cifar10_dvs_split_is_seeded_disjoint_and_persisted(tmp_path):
    written = fake.write_cifar10_dvs(tmp_path, per_class=6)
    pair = cifar10_dvs.load(T=2, data_dir=tmp_path, seed=0)
    train_keys = [s.key for s in pair.train.samples]
    test_keys = [s.key for s in pair.test.samples]
    assert not set(train_keys) & set(test_keys)
    assert set(train_keys) | set(test_keys) == set(written)
    per_class = np.bincount([written[k].label for k in test_keys], minlength=10)
    assert per_class.tolist() == [1] * 10  # round(0.1 · 6) of each class

    split_file = tmp_path / "cifar10_dvs_split_seed0.json"
    content = json.loads(split_file.read_text())
    assert sorted(content["test"]) == sorted(test_keys) and content["num_samples"] == len(written)
    again = cifar10_dvs.load(T=2, data_dir=tmp_path, seed=0)
    assert [s.key for s in again.test.samples] == test_keys
    other = cifar10_dvs.load(T=2, data_dir=tmp_path, seed=1)
    assert (tmp_path / "cifar10_dvs_split_seed1.json").exists()
    assert {s.key for s in other.test.samples} != set(test_keys)

    # an existing split file is read, not recomputed: move one class's test recording and it follows the file
    airplane_test = next(k for k in test_keys if k.startswith("airplane/"))
    airplane_other = next(k for k in train_keys if k.startswith("airplane/"))
    content["test"] = [airplane_other if k == airplane_test else k for k in content["test"]]
    split_file.write_text(json.dumps(content))
    edited = cifar10_dvs.load(T=2, data_dir=tmp_path, seed=0)
    assert airplane_other in {s.key for s in edited.test.samples}
    assert airplane_test in {s.key for s in edited.train.samples}

    # ... and validated against the files present
    (tmp_path / "CIFAR10DVS" / airplane_other).unlink()
    with pytest.raises(UserError) as e:
        cifar10_dvs.load(T=2, data_dir=tmp_path, seed=0)
    assert str(split_file) in str(e.value) and "\n" not in str(e.value)


def test_cifar10_dvs_augments_the_training_split_only(tmp_path):
    fake.write_cifar10_dvs(tmp_path)
    pair = cifar10_dvs.load(T=2, data_dir=tmp_path)  # augmentation on by default
    assert pair.train.augment == cifar10_dvs.AUGMENTATION and pair.test.augment is None
    raw = torch.from_numpy(pair.train.raw_frames(0).astype(np.float32))
    torch.manual_seed(3)
    outputs = [pair.train[0][0] for _ in range(5)]
    for out in outputs:  # each read is the pooled flip/roll of the 128×128 frames
        assert is_flip_roll_of(out, raw, flip=True, max_shift=5, pool=(48, 48))
    assert any(not torch.equal(outputs[0], out) for out in outputs[1:])
    test_raw = torch.from_numpy(pair.test.raw_frames(0).astype(np.float32))
    pooled = F.adaptive_avg_pool2d(test_raw, (48, 48))
    assert all(torch.equal(pair.test[0][0], pooled) for _ in range(4))
    no_aug = cifar10_dvs.load(T=2, data_dir=tmp_path, augment=False)
    assert no_aug.train.augment is None


def test_ncaltech101_crops_pads_and_labels(tmp_path):
    written = fake.write_ncaltech101(tmp_path, per_class=6)
    T = 4
    pair = ncaltech101.load(T=T, data_dir=tmp_path)
    assert pair.num_classes == 101 and tuple(pair.input_shape) == (2, 180, 240)
    assert len(pair.test) == len(fake.CALTECH_CLASSES)  # one of six per class
    classes = sorted(fake.CALTECH_CLASSES)
    for dataset in (pair.train, pair.test):
        for i, sample in enumerate(dataset.samples):
            rec = written[sample.key]
            frames, label = dataset[i]
            assert label == classes.index(sample.key.split("/")[1]) == rec.label
            assert tuple(frames.shape) == (T, 2, 180, 240)
            np.testing.assert_array_equal(frames.numpy(), expected_frames(rec, T, 240, 180))
            counts = frames.sum(dim=(1, 2, 3))
            assert counts.max() - counts.min() <= 1
    # the fakes span 250 columns after tonic's shift: the crop dropped events
    first = written[pair.train.samples[0].key]
    assert len(first.x) < 71


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_files(tmp_path, gz):
    written = fake.write_fashion_mnist(tmp_path, gz=gz)  # files directly in data_dir
    T = 3
    pair = fashion_mnist.load(T=T, data_dir=tmp_path)
    assert (len(pair.train), len(pair.test)) == (12, 5)
    for split, dataset in (("train", pair.train), ("test", pair.test)):
        images, labels = written[split]
        for i in range(len(dataset)):
            frames, label = dataset[i]
            assert tuple(frames.shape) == (T, 1, 28, 28) and frames.dtype == torch.float32
            expected = torch.from_numpy(images[i].astype(np.float32) / 255.0)
            for t in range(T):
                torch.testing.assert_close(frames[t, 0], expected)
            assert label == int(labels[i])


# ---------------------------------------------------------------------------------------------------------------
# Frame cache
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EVENT_MODULES))
def test_second_pass_reads_the_cache_not_the_events(tmp_path, name):
    module = EVENT_MODULES[name]
    WRITERS[name](tmp_path)
    first = module.load(T=3, data_dir=tmp_path, augment=False)
    splits = {"train": first.train, "test": first.test}
    frames = {(split, i): ds[i][0] for split, ds in splits.items() for i in range(len(ds))}
    cache_dirs = list((tmp_path / event_frames.CACHE_DIR_NAME).iterdir())
    assert len(cache_dirs) == 1 and cache_dirs[0].name.startswith(f"{name}-T3-")
    assert len(list(cache_dirs[0].glob("*.npz"))) == len(first.train) + len(first.test)

    second = module.load(T=3, data_dir=tmp_path, augment=False)  # a later run lists the files ...
    shutil.rmtree(tmp_path / RAW_FOLDERS[name])  # ... then every raw event is gone
    sample = second.train.samples[0]
    with pytest.raises(UserError):  # reading the raw events now fails: what follows comes from the cache
        event_frames.frame_recording(sample, second.train.read_events, second.train.spec)
    for split, ds in (("train", second.train), ("test", second.test)):
        for i in range(len(ds)):
            assert torch.equal(ds[i][0], frames[(split, i)])


def test_cache_is_filled_safely_by_dataloader_workers(tmp_path):
    fake.write_cifar10_dvs(tmp_path)
    pair = cifar10_dvs.load(T=2, data_dir=tmp_path, augment=False)
    loader = torch.utils.data.DataLoader(pair.train, batch_size=8, num_workers=2)
    batches = [frames for frames, _ in loader]
    assert sum(len(b) for b in batches) == len(pair.train)
    folder = pair.train.cache.folder
    files = sorted(p.name for p in folder.iterdir())
    assert not [f for f in files if f.startswith(".")]  # no temporary files left behind
    assert len([f for f in files if f.endswith(".npz")]) == len(pair.train)
    again = torch.cat([pair.train[i][0][None] for i in range(len(pair.train))])
    assert torch.equal(torch.cat(batches), again)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line each
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, hints", [
    ("dvs128_gesture", ["DVSGesture/ibmGestureTrain", "DVSGesture/ibmGestureTest", "--download",
                        dvs128_gesture.TONIC_CLASS.train_url]),
    ("cifar10_dvs", ["CIFAR10DVS/<class>/*.aedat4", "*.aedat", "figshare", cifar10_dvs.TONIC_CLASS.url]),
    ("ncaltech101", ["NCALTECH101/Caltech101/<class>/image_<NNNN>.bin", "garrickorchard.com",
                     ncaltech101.TONIC_CLASS.url]),
    ("fashion_mnist", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "FashionMNIST/raw",
                       "github.com/zalandoresearch/fashion-mnist"]),
])
def test_missing_dataset_is_one_line_naming_files_and_source(tmp_path, name, hints):
    module = {**EVENT_MODULES, "fashion_mnist": fashion_mnist}[name]
    empty = tmp_path / "nothing here"
    empty.mkdir()
    with pytest.raises(UserError) as e:
        module.load(T=2, data_dir=empty)
    message = str(e.value)
    assert "\n" not in message and "not found" in message and str(empty) in message
    for hint in hints:
        assert hint in message
    assert not (empty / event_frames.CACHE_DIR_NAME).exists()  # nothing written for a missing dataset


def _find(pair, key: str):
    for dataset in (pair.train, pair.test):
        for i, sample in enumerate(dataset.samples):
            if sample.key == key:
                return dataset, i
    raise AssertionError(key)


@pytest.mark.parametrize("name, damage", [
    ("dvs128_gesture", "truncate"), ("dvs128_gesture", "garbage"),
    ("cifar10_dvs", "truncate"), ("cifar10_dvs", "garbage"),
    ("ncaltech101", "truncate"), ("ncaltech101", "empty"),
])
def test_damaged_recording_is_one_line_naming_the_file(tmp_path, name, damage):
    written = WRITERS[name](tmp_path)
    key = sorted(written)[1]
    path = tmp_path / RAW_FOLDERS[name] / key
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-3], "garbage": b"\x93NUMPY garbage" if name == "dvs128_gesture"
                      else b"not an aedat file", "empty": b""}[damage])
    pair = EVENT_MODULES[name].load(T=2, data_dir=tmp_path)
    dataset, index = _find(pair, key)
    with pytest.raises(UserError) as e:
        dataset[index]
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    # the other recordings still load, and nothing was cached for the bad one
    dataset[0 if index != 0 else 1]
    assert not dataset.cache.path(key).exists()


@pytest.mark.parametrize("which", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_file_is_one_line_naming_it(tmp_path, which, gz):
    fake.write_fashion_mnist(tmp_path, gz=gz)
    path = tmp_path / (f"{which}.gz" if gz else which)
    if gz:  # a truncated download: the gzip stream ends early
        path.write_bytes(path.read_bytes()[:-20])
    else:
        path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(UserError) as e:
        fashion_mnist.load(T=2, data_dir=tmp_path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_idx_file_with_a_consistent_but_short_payload_is_refused(tmp_path):
    fake.write_fashion_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    labels = np.frombuffer(path.read_bytes()[8:], dtype=np.uint8)
    path.write_bytes(fake.idx_bytes(labels[:-1]))  # a valid file, one label short of the images
    with pytest.raises(UserError) as e:
        fashion_mnist.load(T=2, data_dir=tmp_path)
    assert str(path) in str(e.value)


def test_incomplete_dataset_is_refused_unless_allowed(tmp_path, monkeypatch):
    fake.write_dvs_gesture(tmp_path)
    with pytest.raises(UserError) as e:
        dvs128_gesture.load(T=2, data_dir=tmp_path, allow_partial=False)
    message = str(e.value)
    assert "\n" not in message and "found 22" in message and "ibmGestureTrain" in message
    monkeypatch.delenv(event_frames.ALLOW_PARTIAL_ENV)
    with pytest.raises(UserError):
        dvs128_gesture.load(T=2, data_dir=tmp_path)
    with pytest.warns(UserWarning, match="partial"):
        dvs128_gesture.load(T=2, data_dir=tmp_path, allow_partial=True)


def test_ncaltech101_refuses_missing_classes_when_strict(tmp_path, monkeypatch):
    fake.write_ncaltech101(tmp_path)
    monkeypatch.setattr(ncaltech101, "tonic_minimum_files", lambda *a, **k: (1, ".bin"))  # count check passes
    with pytest.raises(UserError) as e:
        ncaltech101.load(T=2, data_dir=tmp_path, allow_partial=False)
    assert "4 class folders" in str(e.value) and "101" in str(e.value)


def test_tonic_threshold_is_read_from_tonic():
    assert event_frames.tonic_minimum_files(dvs128_gesture.TONIC_CLASS, "ibmGestureTrain") == (100, ".npy")
    minimum, suffix = event_frames.tonic_minimum_files(ncaltech101.TONIC_CLASS)
    assert suffix == ".bin" and minimum > 8000


# ---------------------------------------------------------------------------------------------------------------
# End to end: one epoch on two samples with each preset
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist"])
def test_one_epoch_of_training_on_each_fake_dataset(tmp_path, preset):
    training = pytest.importorskip("tcja_deploy.training.loop")
    from tcja_deploy.training.config import TrainConfig

    data_dir = tmp_path / "data"
    write_all(data_dir)
    out = tmp_path / "run"
    metrics = training.train(TrainConfig(preset=preset, data_dir=str(data_dir), epochs=1, T=2, max_samples=2,
                                         out=str(out), device="cpu"), progress=False, log=lambda _: None)
    assert (out / "model.safetensors").exists()
    assert isinstance(metrics, dict) and metrics


#: Presets whose end-to-end test also runs convert's Lava check on one sample (the others' networks take minutes a
#: sample on Lava: `bench pipeline` times them).
LAVA_CHECKED_PRESETS = {"fashion_mnist": "parts"}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["dvs128_gesture", "cifar10_dvs", "ncaltech101", "fashion_mnist"])
def test_each_paper_preset_end_to_end_on_tiny_recordings(tmp_path, preset):
    """Train one epoch on format-correct recordings, convert for Loihi 2 (gates on neuro cores), profile with
    the emulator and write the report, at the preset's full network size (T = 2 to stay fast). Fashion-MNIST's
    convert checks one sample on Lava in parts; the Lava check of the others is timed by
    `python -m tcja_deploy.bench pipeline` (bench/NOTES.md)."""
    from tcja_deploy import convert, profile, report
    from tcja_deploy.training.config import TrainConfig
    from tcja_deploy.training.loop import train

    data_dir = tmp_path / "data"
    write_all(data_dir)
    run, deploy, prof, rep = (tmp_path / n for n in ("run", "deploy", "profile", "report"))
    train(TrainConfig(preset=preset, data_dir=str(data_dir), epochs=1, T=2, max_samples=2, out=str(run),
                      device="cpu"), progress=False, log=lambda _: None)
    lava = LAVA_CHECKED_PRESETS.get(preset)
    args = ["--lava-samples", "1", "--lava-mode", lava] if lava else ["--lava-samples", "0"]
    assert convert.main(["--run", str(run), "--out", str(deploy)] + args) == 0
    fid = json.loads((deploy / "fidelity.json").read_text())
    assert fid["gate_placement"] == "neurocore" and fid["emulator"]["samples"] >= 1
    if lava:  # one sample through Lava, every segment and gate alone on recorded inputs
        assert fid["lava"]["mode"] == lava and fid["lava"]["samples"] == 1
        assert fid["lava"]["all_layers_identical"] and fid["lava"]["gate_stages"]
    assert profile.main(["--deploy", str(deploy), "--out", str(prof), "--no-progress", "--data-dir", str(data_dir)]) == 0
    assert report.main(["--profile", str(prof), "--out", str(rep)]) == 0
    doc = json.loads((rep / "profile.json").read_text())
    assert doc["gate_placement"]["placements"]["neurocore"]["gate_neurons"] > 0
    assert doc["resources_partition"]["chips"] >= 1 and (rep / "report.md").read_text().count("gate placement")
