"""Image sets for generation: every dataset read from tiny files in its real on-disk format (offline)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fake_datasets import write_fashion_mnist
from tcja_deploy.data.image_sets import IMAGE_SHAPES, load_image_set
from tcja_deploy.errors import UserError


def test_digits_split_range_and_shape():
    from tcja_deploy.data.digits import digits_arrays, digits_split

    train, train_labels = load_image_set("digits", "train")
    test, test_labels = load_image_set("digits", "test")
    assert train.shape == (1438, 1, 32, 32) and test.shape == (359, 1, 32, 32)
    assert train.dtype == torch.float32 and train_labels.dtype == torch.int64
    assert train.min() >= -1 and train.max() <= 1 and train.min() == -1  # background is −1
    images, labels = digits_arrays()
    idx = digits_split()[1]
    assert torch.equal(test_labels, torch.from_numpy(labels[idx]))
    # the same 32×32 images as the classifier's digits-images encoding (frames.resize_bilinear), rescaled
    from tcja_deploy.data.frames import resize_bilinear

    expected = resize_bilinear(images[idx], (32, 32)).astype(np.float32) * 2 - 1
    assert np.allclose(test[:, 0].numpy(), expected, atol=1e-5)


def test_digits_returns_a_copy():
    a, _ = load_image_set("digits", "test")
    a.zero_()
    b, _ = load_image_set("digits", "test")
    assert b.min() == -1


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw")])
def test_idx_sets_resize_to_32(tmp_path, name, folder):
    written = write_fashion_mnist(tmp_path / folder, n_train=7, n_test=3)
    images, labels = load_image_set(name, "test", tmp_path)
    assert images.shape == (3, *IMAGE_SHAPES[name])
    raw, raw_labels = written["test"]
    expected = F.interpolate(torch.from_numpy(raw).float().div(255).unsqueeze(1), size=(32, 32),
                             mode="bilinear", align_corners=False).clamp(0, 1) * 2 - 1
    assert torch.allclose(images, expected, atol=1e-6)
    assert labels.tolist() == raw_labels.tolist()


def test_mnist_missing_and_truncated(tmp_path):
    with pytest.raises(UserError, match="MNIST not found.*--download"):
        load_image_set("mnist", "train", tmp_path)
    write_fashion_mnist(tmp_path / "mnist", gz=False)
    bad = tmp_path / "mnist" / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(UserError, match="train-images-idx3-ubyte: truncated"):
        load_image_set("mnist", "train", tmp_path)


def write_cifar(folder, n=4, seed=0):
    """CIFAR10's python batches (pickled dicts of bytes keys, as the official release) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": b"batch", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, f, protocol=2)
        written[name] = (data, labels)
    return written


def test_cifar10_batches(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    train, train_labels = load_image_set("cifar10", "train", tmp_path)
    test, test_labels = load_image_set("cifar10", "test", tmp_path)
    assert train.shape == (20, 3, 32, 32) and test.shape == (4, 3, 32, 32)
    data, labels = written["test_batch"]
    assert torch.allclose(test, torch.from_numpy(data).float().div(255).view(-1, 3, 32, 32) * 2 - 1)
    assert test_labels.tolist() == labels
    assert train_labels.tolist()[:4] == written["data_batch_1"][1]


def test_cifar10_refuses_code_and_bad_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (folder / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UserError, match=r"test_batch: not a CIFAR10 batch .*not allowed"):
        load_image_set("cifar10", "test", tmp_path)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(UserError, match="test_batch: not a CIFAR10 batch"):
        load_image_set("cifar10", "test", tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="data_batch_3 is missing"):
        load_image_set("cifar10", "train", tmp_path)


def write_celeba(root, sizes=((178, 218),) * 5, codes=(0, 0, 1, 2, 2), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for i, ((w, h), code) in enumerate(zip(sizes, codes)):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / name, quality=95)
        lines.append(f"{name} {code}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def test_celeba_crop_resize_and_split(tmp_path):
    from PIL import Image

    write_celeba(tmp_path)
    train, labels = load_image_set("celeba", "train", tmp_path)
    test, _ = load_image_set("celeba", "test", tmp_path)
    assert train.shape == (2, 3, 64, 64) and test.shape == (2, 3, 64, 64)
    assert labels.tolist() == [0, 0] and -1 <= train.min() and train.max() <= 1
    # independent: crop the centre 148×148 of image 4 (the first test image), resize with PIL
    with Image.open(tmp_path / "celeba" / "img_align_celeba" / "000004.jpg") as img:
        ref = img.convert("RGB").crop((15, 35, 163, 183)).resize((64, 64), Image.BILINEAR)
    expected = torch.from_numpy(np.asarray(ref).transpose(2, 0, 1).astype(np.float32) / 255 * 2 - 1)
    assert torch.allclose(test[0], expected, atol=1e-6)
    assert load_image_set("celeba", "train", tmp_path, limit=1)[0].shape[0] == 1


def test_celeba_bad_files(tmp_path):
    with pytest.raises(UserError, match="CelebA not found"):
        load_image_set("celeba", "train", tmp_path)
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="000002.jpg: not a readable image"):
        load_image_set("celeba", "train", tmp_path)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(UserError, match="list_eval_partition.txt: line 1"):
        load_image_set("celeba", "train", tmp_path)


def test_unknown_name_and_split():
    with pytest.raises(UserError, match="unknown"):
        load_image_set("svhn", "train")
    with pytest.raises(UserError, match="split"):
        load_image_set("digits", "valid")
