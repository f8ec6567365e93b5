import numpy as np
import pytest
import tensorflow as tf

from keras_anytime import datasets


def test_local_splits(cifar_dir):
    x, y = datasets.load_numpy(cifar_dir, "train")
    assert x.shape == (45000, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (45000,)
    xv, yv = datasets.load_numpy(cifar_dir, "val")
    assert xv.shape == (5000, 32, 32, 3)
    # records cycle through the classes (y[k] == k % 10), so val starts at record 45,000
    np.testing.assert_array_equal(yv[:20], np.arange(45000, 45020) % 10)
    xf, _ = datasets.load_numpy(cifar_dir, "train_full")
    assert len(xf) == 50000
    np.testing.assert_array_equal(xf[45000:45010], xv[:10])


def test_local_loader_batches(cifar_dir):
    ds = datasets.load("cifar10", "val", data_dir=cifar_dir, batch_size=256)
    images, labels = next(iter(ds))
    assert images.shape == (256, 32, 32, 3) and images.dtype == tf.float32
    assert labels.dtype == tf.int64
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
    assert sum(int(b[1].shape[0]) for b in ds) == 5000  # no augmentation, nothing dropped
    x, y = datasets.load_numpy(cifar_dir, "val")
    np.testing.assert_array_equal(images.numpy().astype(np.uint8), x[:256])  # unshuffled
    train = datasets.load("cifar10", "train", data_dir=cifar_dir, batch_size=128)
    assert int(train.cardinality()) == 45000 // 128


def test_environment_variable(cifar_dir, monkeypatch):
    monkeypatch.setenv("KERAS_ANYTIME_DATA", str(cifar_dir))
    images, _ = next(iter(datasets.load("cifar10", "val", batch_size=8)))
    assert images.shape == (8, 32, 32, 3)


def test_augmentation_pads_crops_and_flips():
    image = tf.reshape(tf.range(32 * 32 * 3, dtype=tf.float32), (32, 32, 3)) + 1.0
    seen_flip = seen_shift = False
    for seed in range(20):
        tf.random.set_seed(seed)
        out, label = datasets.augment_cifar(image, 3)
        assert out.shape == (32, 32, 3) and label == 3
        out = out.numpy()
        padded = np.pad(image.numpy(), ((4, 4), (4, 4), (0, 0)))
        windows = [padded[i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
        flipped = [w[:, ::-1] for w in windows]
        match = [np.array_equal(out, w) for w in windows]
        match_flip = [np.array_equal(out, w) for w in flipped]
        assert any(match) or any(match_flip)  # a crop of the zero-padded image
        seen_flip |= any(match_flip) and not any(match)
        seen_shift |= not (match[40] or match_flip[40])  # window (4, 4) is the original
    assert seen_flip and seen_shift


def test_unknown_name_and_split(cifar_dir):
    with pytest.raises(ValueError, match="Unknown dataset 'imagenet'"):
        datasets.load("imagenet", "train", data_dir=cifar_dir)
    with pytest.raises(ValueError, match="Unknown split 'valid'"):
        datasets.load("cifar10", "valid", data_dir=cifar_dir)


def test_missing_folder_says_where_and_what(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist.*tensorflow-datasets"):
        datasets.load("cifar10", "train", data_dir=missing)
    with pytest.raises(
        FileNotFoundError, match="No train-<n>.npz or train-jpeg.npz files in .*KERAS_ANYTIME_DATA"
    ):
        datasets.load_numpy(tmp_path, "train")


def test_missing_test_split(cifar_dir):
    with pytest.raises(FileNotFoundError, match="No test split.*tensorflow-datasets"):
        datasets.load_numpy(cifar_dir, "test")


def test_wrong_shapes_and_dtypes(tmp_path):
    np.savez(tmp_path / "train-0.npz", x=np.zeros((4, 32, 32, 3), np.float32), y=np.zeros(4))
    with pytest.raises(ValueError, match="must be uint8 of shape"):
        datasets.load_numpy(tmp_path, "train")
    np.savez(tmp_path / "train-0.npz", x=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros(3, int))
    with pytest.raises(ValueError, match="'y' must be integer labels of shape \\(4,\\)"):
        datasets.load_numpy(tmp_path, "train")
    np.savez(tmp_path / "train-0.npz", images=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="must hold arrays 'x' and 'y'"):
        datasets.load_numpy(tmp_path, "train")


def test_bad_batch_size(cifar_dir):
    with pytest.raises(ValueError, match="batch_size"):
        datasets.load("cifar10", "val", data_dir=cifar_dir, batch_size=0)


def test_class_folders_through_tfds_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    val = list(datasets.load("folder", "val", data_dir=tmp_path, batch_size=8))
    assert len(val) == 1 and val[0][0].shape == (4, 32, 32, 3)
    assert sorted(val[0][1].numpy().tolist()) == [0, 0, 1, 1]
    train = next(iter(datasets.load("folder", "train", data_dir=tmp_path, batch_size=4)))
    assert train[0].shape == (4, 32, 32, 3)  # augmented, full batches only


def test_jpeg_archive_decodes_to_the_arrays(cifar_dir, tmp_path):
    """`train-jpeg.npz` (what travels to a GPU machine) decodes to the same images."""
    if not (cifar_dir / "train-jpeg.npz").is_file():
        pytest.skip(f"no train-jpeg.npz in {cifar_dir}")
    n = 200
    with np.load(cifar_dir / "train-jpeg.npz") as f:
        offsets = f["offsets"][: n + 1]
        jpeg, y = f["jpeg"][: offsets[-1]], f["y"][:n]
    np.savez(tmp_path / "train-jpeg.npz", jpeg=jpeg, offsets=offsets, y=y)
    (tmp_path / "dataset.json").write_text('{"name": "cifar10"}')
    x_jpeg, y_jpeg = datasets.load_numpy(tmp_path, "train_full")
    x, y_ref = datasets.load_numpy(cifar_dir, "train")
    np.testing.assert_array_equal(x_jpeg, x[:n])
    np.testing.assert_array_equal(y_jpeg, y_ref[:n])


def test_numpy_batches_shuffle_augment_and_cover_the_split():
    x = np.arange(10 * 32 * 32 * 3, dtype=np.uint8).reshape(10, 32, 32, 3)
    y = np.arange(10)
    batches = datasets.NumpyBatches(x, y, batch_size=4, augment=True, shuffle=True, seed=0)
    assert len(batches) == 2  # the partial batch is dropped when shuffling
    images, labels = batches[0]
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int64
    seen = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert len(set(seen.tolist())) == 8
    batches.on_epoch_end()
    assert not np.array_equal(np.concatenate([batches[i][1] for i in range(2)]), seen)
    plain = datasets.NumpyBatches(x, y, batch_size=4)
    assert len(plain) == 3 and [len(plain[i][1]) for i in range(3)] == [4, 4, 2]
    np.testing.assert_array_equal(plain[2][0], x[8:].astype(np.float32))
    with pytest.raises(IndexError):
        plain[3]
    with pytest.raises(ValueError, match="x has 10 images but y has 9 labels"):
        datasets.NumpyBatches(x, y[:9])


def test_numpy_augmentation_is_a_padded_crop_maybe_flipped():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (64, 32, 32, 3)).astype(np.uint8)  # no zeros inside
    out = datasets.augment_numpy(images, rng)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for img, aug in zip(padded, out):
        windows = [(dy, dx) for dy in range(9) for dx in range(9)]
        plain = any(np.array_equal(img[dy : dy + 32, dx : dx + 32], aug) for dy, dx in windows)
        flipped = any(
            np.array_equal(img[dy : dy + 32, dx : dx + 32][:, ::-1], aug) for dy, dx in windows
        )
        assert plain or flipped
        flips += flipped and not plain
    assert 10 < flips < 54  # about half are flipped


def _cutout_squares(out: np.ndarray, fill: np.ndarray) -> list[tuple[int, int]]:
    """(height, width) of the bounding box of the fill-coloured pixels of each image."""
    boxes = []
    for image in out:
        rows, cols = np.nonzero(np.all(image == fill, axis=-1))
        mask = np.zeros(image.shape[:2], bool)
        mask[rows, cols] = True
        if len(rows) == 0:
            boxes.append((0, 0))
            continue
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a box
        boxes.append((h, w))
    return boxes


def test_numpy_cutout_fills_one_clipped_square_with_the_mean_pixel():
    rng = np.random.default_rng(1)
    images = rng.integers(200, 256, (200, 32, 32, 3)).astype(np.uint8)  # never the fill
    fill = np.round(datasets.CUTOUT_FILL).astype(np.uint8)
    boxes = _cutout_squares(datasets.augment_numpy(images, rng, cutout=16), fill)
    assert all(0 < h <= 16 and 0 < w <= 16 for h, w in boxes)  # clipped at the borders
    assert 0.1 < np.mean([b == (16, 16) for b in boxes]) < 0.5  # centre in 8..23 both ways
    assert all(b == (0, 0) for b in _cutout_squares(datasets.augment_numpy(images, rng), fill))


def test_tf_cutout_fills_one_clipped_square_and_bad_values_are_refused():
    image = tf.fill((32, 32, 3), tf.constant(250, tf.uint8))
    fill = np.round(datasets.CUTOUT_FILL).astype(np.uint8)
    outs = np.stack([datasets.augment_cifar(image, 0, cutout=8)[0].numpy() for _ in range(50)])
    boxes = _cutout_squares(outs, fill)
    assert all(0 < h <= 8 and 0 < w <= 8 for h, w in boxes) and (8, 8) in boxes
    with pytest.raises(ValueError, match="cutout must be a square side"):
        datasets.NumpyBatches(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4), 2, True, cutout=-1)
    with pytest.raises(ValueError, match="set augment=True, or cutout=0"):
        datasets.NumpyBatches(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4), 2, cutout=16)


def test_the_shared_folder_is_recognised_as_cifar10_by_its_val_images(cifar_dir):
    info = datasets.describe(cifar_dir)
    assert info["name"] == "cifar10"
    x, y = datasets.load_numpy(cifar_dir, "val")
    assert datasets.val_digest(x, y) == datasets.AGREED_VAL_SHA256["cifar10"]


def test_a_folder_refuses_a_name_it_does_not_hold(cifar_dir, monkeypatch):
    monkeypatch.setenv("KERAS_ANYTIME_DATA", str(cifar_dir))
    with pytest.raises(ValueError, match=f"{cifar_dir} holds 'cifar10'.*not 'cifar100'"):
        datasets.load("cifar100", "train")
    with pytest.raises(ValueError, match="holds 'cifar10'.*not 'svhn'"):
        datasets.load_numpy(cifar_dir, "val", "svhn")


def _small_folder(path, n=45_010, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    np.savez(path / "train-0.npz", x=x, y=np.arange(n) % 10)


def test_a_folder_that_does_not_say_what_it_holds_is_refused(tmp_path):
    _small_folder(tmp_path)
    assert datasets.describe(tmp_path) == {"name": None}
    with pytest.raises(ValueError, match='does not say.*dataset.json with {"name": "cifar10"}'):
        datasets.load_numpy(tmp_path, "train")
    (tmp_path / "dataset.json").write_text('{"name": "svhn"}')
    x, y = datasets.load_numpy(tmp_path, "val", "svhn")  # no agreed val for this name
    assert x.shape == (10, 4, 4, 3)
    (tmp_path / "dataset.json").write_text("[1]")
    with pytest.raises(ValueError, match='must be a JSON object with a "name"'):
        datasets.load_numpy(tmp_path, "train", "svhn")


def test_a_cifar10_val_of_other_images_is_refused(tmp_path):
    _small_folder(tmp_path)
    (tmp_path / "dataset.json").write_text('{"name": "cifar10"}')
    assert len(datasets.load_numpy(tmp_path, "train")[0]) == 45_000  # training is fine
    with pytest.raises(ValueError, match="not the agreed cifar10 val images"):
        datasets.load_numpy(tmp_path, "val")


def test_tfds_cifar10_val_is_refused_as_not_the_agreed_images(monkeypatch):
    monkeypatch.delenv("KERAS_ANYTIME_DATA", raising=False)
    with pytest.raises(ValueError, match="other images than the agreed cifar10 val.*split='test'"):
        datasets.load("cifar10", "val")


def test_the_package_hands_on_the_names_of_its_modules():
    from keras_anytime.datasets import augment, local, numpy_batches, pipeline, splits, tfds

    names = {
        pipeline: ["NAMES", "load"],
        local: [
            "AGREED_VAL_SHA256",
            "DESCRIPTION_FILE",
            "ENV_VAR",
            "describe",
            "load_numpy",
            "local_dir",
            "val_digest",
        ],
        splits: ["CIFAR10_MEAN", "CIFAR10_VARIANCE", "SPLITS", "SPLIT_RECORDS", "TRAIN_SIZE"],
        augment: ["CUTOUT_FILL", "augment_cifar", "augment_numpy"],
        numpy_batches: ["NumpyBatches"],
        tfds: ["TFDS_NAMES", "TFDS_SPLITS"],
    }
    handed_on = [(module, name) for module, listed in names.items() for name in listed]
    assert sorted(datasets.__all__) == sorted(name for _, name in handed_on)
    assert all(getattr(datasets, name) is getattr(module, name) for module, name in handed_on)
