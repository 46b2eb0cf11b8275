"""Datasets on temporary folders: formats, crops, splits, the test cache, and bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sepkit_torch.data import (
    DatasetError,
    DegradedImageFolder,
    ImageFileError,
    PairedImageFolder,
    SyntheticThermalDataset,
    make_dataset,
    quantize,
    read_image,
    thermal_scene,
)


def scene8(i: int, size=(40, 48)) -> np.ndarray:
    return (thermal_scene(size, i)[0].numpy() * 255).round().astype(np.uint8)


@pytest.fixture
def folder8(tmp_path) -> Path:
    root = tmp_path / "clean"
    root.mkdir()
    for i in range(10):
        Image.fromarray(scene8(i)).save(root / f"img{i:02d}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_read_8_bit_grey_and_rgb(tmp_path):
    grey = scene8(0)
    Image.fromarray(grey).save(tmp_path / "g.bmp")
    assert torch.equal(read_image(tmp_path / "g.bmp")[0], torch.from_numpy(grey) / 255.0)
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    assert torch.equal(read_image(tmp_path / "c.png")[0], torch.from_numpy(expected))
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    assert read_image(tmp_path / "c.jpg").shape == (1, 40, 48)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_16_bit(tmp_path, suffix):
    raw = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / f"t{suffix}")
    path = tmp_path / f"t{suffix}"
    torch.testing.assert_close(read_image(path)[0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    torch.testing.assert_close(
        read_image(path, normalize="full")[0], torch.from_numpy(raw.astype(np.float32) / 65535)
    )
    torch.testing.assert_close(
        read_image(path, normalize=(2000, 4000))[0], torch.tensor([[0.0, 0.0], [0.5, 1.0]])
    )
    with pytest.raises(ValueError, match=r"`normalize` must be 'image', 'full' or a \(low, high"):
        read_image(path, normalize=(5, 5))


def test_train_items_are_deterministic_crops(folder8):
    data = DegradedImageFolder(folder8, "CBN", crop_size=32, seed=1)
    assert len(data) == 8  # 80% of 10
    d, c = data[3]
    assert d.shape == c.shape == (1, 32, 32) and d.dtype == torch.float32
    assert torch.equal(data[3][0], d) and torch.equal(data[3][1], c)
    assert torch.equal(quantize(d), d)  # 8-bit grey levels, as the public code saves them
    assert not torch.equal(data[4][1], c)
    data.set_epoch(1)
    assert not torch.equal(data[3][0], d)
    other = DegradedImageFolder(folder8, "CBN", crop_size=32, seed=1)
    assert torch.equal(other[3][0], d)  # a fresh instance (or worker) gives the same item
    assert len(DegradedImageFolder(folder8, "C", crop_size=32, repeat=3)) == 24
    assert len(DegradedImageFolder(folder8, "C", split="all", crop_size=(16, 40))) == 10


def test_crop_comes_from_the_clean_image(folder8):
    data = DegradedImageFolder(folder8, "C", crop_size=(16, 20), flips=False, split="all")
    _, crop = data[0]
    full = read_image(data.files[0])[0].numpy()
    window = np.lib.stride_tricks.sliding_window_view(full, (16, 20))
    assert bool((window == crop[0].numpy()).all(axis=(-1, -2)).any())


def test_split_is_fixed_and_disjoint(folder8, tmp_path):
    train = DegradedImageFolder(folder8, "C", crop_size=8)
    test = DegradedImageFolder(folder8, "C", split="test", cache_dir=tmp_path / "cache")
    assert len(test) == 2 and not set(train.files) & set(test.files)
    assert set(train.files) | set(test.files) == set(
        DegradedImageFolder(folder8, "C", split="all", crop_size=8).files
    )
    again = DegradedImageFolder(folder8, "B", split="test", cache_dir=tmp_path / "cache")
    assert again.files == test.files  # the split does not depend on the task or seed
    moved = DegradedImageFolder(folder8, "C", split="test", cache_dir=tmp_path / "c2", split_seed=7)
    assert len(moved) == 2


def test_test_split_is_cached_for_exact_reevaluation(folder8, tmp_path):
    cache = tmp_path / "cache"
    test = DegradedImageFolder(folder8, "CBN", split="test", cache_dir=cache, seed=3)
    d, c = test[0]
    assert d.shape == c.shape == (1, 40, 48)
    stored = test.cached_path(0)
    assert stored.exists() and stored.parent.name == "CBN-ecmrnet-seed3"
    mtime = stored.stat().st_mtime_ns
    again = DegradedImageFolder(folder8, "CBN", split="test", cache_dir=cache, seed=3)
    assert torch.equal(again[0][0], d) and stored.stat().st_mtime_ns == mtime  # read back
    # The cached file is an 8-bit PNG holding exactly the returned image.
    png = np.array(Image.open(stored))
    assert png.dtype == np.uint8 and torch.equal(torch.from_numpy(png)[None] / 255.0, d)
    assert not torch.equal(d, c)
    again.prepare()
    assert len(list(stored.parent.glob("*.png"))) == 2
    with open(stored.parent / "manifest.json", "w") as f:
        f.write('{"task": "other"}')
    with pytest.raises(DatasetError, match="was made with other settings"):
        DegradedImageFolder(folder8, "CBN", split="test", cache_dir=cache, seed=3)


def test_an_image_changed_under_its_name_is_degraded_anew(folder8, tmp_path):
    """The cache is keyed by content: new pixels under an old name never meet old results."""
    cache = tmp_path / "cache"
    test = DegradedImageFolder(folder8, "C", split="test", cache_dir=cache, seed=3)
    before, clean = test[0]
    Image.fromarray(255 - scene8(7)).save(test.files[0])  # same name, other pixels
    again = DegradedImageFolder(folder8, "C", split="test", cache_dir=cache, seed=3)
    after, new_clean = again[0]
    assert not torch.equal(new_clean, clean)
    assert torch.equal(after, again[0][0]) and not torch.equal(after, before)
    # the degradation of the new image is the one a fresh cache gives
    fresh = DegradedImageFolder(folder8, "C", split="test", cache_dir=tmp_path / "c2", seed=3)
    assert torch.equal(fresh[0][0], after)


def test_16_bit_folder(tmp_path):
    root = tmp_path / "raw16"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        raw = (7000 + 2000 * rng.random((24, 24))).astype(np.uint16)
        Image.fromarray(raw).save(root / f"{i}.tif")
    data = DegradedImageFolder(root, "N", split="all", crop_size=16, normalize=(6000, 10000))
    d, c = data[0]
    assert d.shape == (1, 16, 16) and 0.2 <= float(c.min()) and float(c.max()) <= 0.8


def test_bad_folders(tmp_path, folder8):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no image .* in '.*empty' \(it is empty\)"):
        DegradedImageFolder(empty, "C")
    (empty / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"it holds only \['.txt'\]"):
        DegradedImageFolder(empty, "C")
    with pytest.raises(DatasetError, match="is not a folder"):
        DegradedImageFolder(tmp_path / "missing", "C")
    with pytest.raises(
        DatasetError,
        match=r"`crop_size` 64x64 is larger than 8 image\(s\).*"
        r"img00.png \(40x48\)",
    ):
        DegradedImageFolder(folder8, "C", crop_size=64)
    with pytest.raises(DatasetError, match="the 'test' split .* is empty"):
        DegradedImageFolder(folder8, "C", split="test", test_fraction=0.0, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="`split` must be 'train', 'test' or 'all'; got 'val'"):
        DegradedImageFolder(folder8, "C", split="val")
    with pytest.raises(ValueError, match="unknown degradation"):
        DegradedImageFolder(folder8, "CX")


def test_corrupt_file_raises_or_is_skipped(folder8):
    (folder8 / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageFileError, match=r"cannot read image '.*broken.png'"):
        DegradedImageFolder(folder8, "C", crop_size=8)
    with pytest.raises(OSError, match="broken.png"):  # also an OSError
        read_image(folder8 / "broken.png")
    with pytest.warns(UserWarning, match=r"skipping cannot read image '.*broken.png'"):
        data = DegradedImageFolder(folder8, "C", crop_size=8, split="all", on_error="skip")
    assert len(data) == 10


def test_truncated_pixels_raise_when_loaded(tmp_path):
    root = tmp_path / "trunc"
    root.mkdir()
    Image.fromarray(scene8(0)).save(root / "a.png")
    Image.fromarray(scene8(1)).save(root / "b.png")
    data = (root / "b.png").read_bytes()
    (root / "b.png").write_bytes(data[: len(data) // 2])  # the header still reads
    folder = DegradedImageFolder(root, "C", split="all", crop_size=8)
    with pytest.raises(ImageFileError, match=r"cannot decode image '.*b.png'"):
        folder[1]


@pytest.fixture
def pairs(tmp_path) -> tuple[Path, Path]:
    d, c = tmp_path / "hard", tmp_path / "imgs"
    d.mkdir()
    c.mkdir()
    for i in range(3):
        Image.fromarray(scene8(i)).save(c / f"s{i}.png")
        Image.fromarray(scene8(i) // 2).save(d / f"s{i}.png")
    return d, c


def test_paired_folders(pairs):
    d, c = pairs
    data = PairedImageFolder(d, c)
    assert data.names == ["s0", "s1", "s2"] and len(data) == 3
    deg, clean = data[1]
    assert torch.equal(deg, torch.from_numpy(scene8(1) // 2)[None] / 255.0)
    crops = PairedImageFolder(d, c, crop_size=16, flips=True, seed=2)
    deg, clean = crops[0]
    assert deg.shape == (1, 16, 16)
    assert torch.equal(deg, quantize(torch.floor(clean * 255 / 2) / 255))  # the same window


def test_paired_folder_errors(pairs):
    d, c = pairs
    (c / "s0.png").rename(c / "other.png")
    with pytest.raises(DatasetError, match=r"1 only in '.*hard' \['s0'\], 1 only in '.*imgs'"):
        PairedImageFolder(d, c)
    (c / "other.png").unlink()
    Image.fromarray(scene8(0, (30, 30))).save(c / "s0.png")
    with pytest.raises(DatasetError, match=r"pair 's0' differs in size: degraded \(40, 48\)"):
        PairedImageFolder(d, c)
    Image.fromarray(scene8(0)).save(d / "s1.bmp")
    with pytest.raises(DatasetError, match="has two images named 's1'"):
        PairedImageFolder(d, c)


def test_synthetic_dataset():
    train = SyntheticThermalDataset("CB", length=4, size=(24, 32), seed=5)
    test = SyntheticThermalDataset("CB", length=4, size=(24, 32), seed=5, split="test")
    d, c = train[1]
    assert d.shape == c.shape == (1, 24, 32)
    assert torch.equal(train[1][0], d) and not torch.equal(test[1][1], c)
    train.set_epoch(2)
    assert not torch.equal(train[1][1], c)
    test.set_epoch(2)
    assert torch.equal(
        test[1][1],
        SyntheticThermalDataset("CB", length=4, size=(24, 32), seed=5, split="test")[1][1],
    )  # fixed test set
    with pytest.raises(IndexError, match="index 4 out of range"):
        train[4]


def test_make_dataset(folder8):
    assert isinstance(make_dataset(folder8, "C", crop_size=16), DegradedImageFolder)
    synthetic = make_dataset(None, "C", crop_size=16)
    assert isinstance(synthetic, SyntheticThermalDataset) and len(synthetic) == 256
    assert synthetic[0][0].shape == (1, 16, 16)


def test_dataloader_batches(folder8):
    loader = torch.utils.data.DataLoader(
        DegradedImageFolder(folder8, "CBND", crop_size=16), batch_size=4, shuffle=False
    )
    degraded, clean = next(iter(loader))
    assert degraded.shape == clean.shape == (4, 1, 16, 16)


# ------------------------------------------------------------------ frames and windows


def test_procedural_windows_are_cut_from_one_degraded_frame():
    data = SyntheticThermalDataset("N", length=3, size=16, frame_size=(32, 48), stride=16, seed=4)
    assert len(data) == 3 * 2 * 3 and data.frame_items == [6, 6, 6]
    data.set_epoch(2)
    for f in range(3):
        degraded, clean = data.frame(f, epoch=2)
        assert degraded.shape == clean.shape == (1, 32, 48)
        for k, (top, left) in enumerate([(t, l) for t in (0, 16) for l in (0, 16, 32)]):
            d, c = data[6 * f + k]
            assert torch.equal(d, degraded[:, top : top + 16, left : left + 16])
            assert torch.equal(c, clean[:, top : top + 16, left : left + 16])
    # a new epoch degrades every frame anew; the test split ignores frames
    assert not torch.equal(data.frame(0, epoch=3)[0], data.frame(0, epoch=2)[0])
    test = SyntheticThermalDataset("N", length=2, size=16, split="test", frame_size=(32, 48))
    assert test[0][0].shape == (1, 16, 16) and len(test) == 2


def test_frames_are_degraded_whole_before_the_cut():
    """A window's non-uniformity belongs to the frame: it differs from degrading the crop."""
    data = SyntheticThermalDataset("N", length=1, size=16, frame_size=(48, 48), stride=32)
    degraded, clean = data.frame(0)
    window, window_clean = data[3]  # the bottom-right window
    assert torch.equal(window, degraded[:, 32:, 32:])
    crop_first = SyntheticThermalDataset("N", length=1, size=16, seed=0)[0][0]
    assert not torch.equal(window, crop_first)


def test_folder_windows_come_from_the_whole_degraded_image(folder8):
    data = DegradedImageFolder(folder8, "CN", crop_size=16, stride=16, flips=False, seed=2)
    # 40 x 48 images: 2 x 3 windows each, 8 training images
    assert len(data) == 8 * 6 and data.frame_items == [6] * 8
    data.set_epoch(1)
    degraded, clean = data.frame(5, epoch=1)
    assert torch.equal(clean, read_image(data.files[5]))
    d, c = data[5 * 6 + 4]  # window (16, 16) of image 5
    assert torch.equal(d, degraded[:, 16:32, 16:32]) and torch.equal(c, clean[:, 16:32, 16:32])
    crops = DegradedImageFolder(folder8, "CN", crop_size=16, repeat=2, flips=False, seed=2)
    assert crops.frame_items == [2] * 8
    d, c = crops[3]  # the second random crop of image 1, cut from its degraded whole
    whole, whole_clean = crops.frame(1)
    at = [
        (t, l)
        for t in range(40 - 16 + 1)
        for l in range(48 - 16 + 1)
        if torch.equal(c, whole_clean[:, t : t + 16, l : l + 16])
    ]
    assert len(at) == 1
    t, l = at[0]
    assert torch.equal(d, whole[:, t : t + 16, l : l + 16])


def test_window_options_are_checked(folder8):
    with pytest.raises(ValueError, match=r"`stride` must be None or a positive int; got 0"):
        DegradedImageFolder(folder8, "C", crop_size=16, stride=0)
    with pytest.raises(ValueError, match=r"`stride` cuts sliding windows .*repeat=2"):
        DegradedImageFolder(folder8, "C", crop_size=16, stride=8, repeat=2)
    with pytest.raises(
        ValueError, match=r"`stride` cuts windows from frames: it needs `frame_size`"
    ):
        SyntheticThermalDataset("C", length=2, size=16, stride=8)
    with pytest.raises(ValueError, match=r"`frame_size` \(16, 16\) must be at least `size`"):
        SyntheticThermalDataset("C", length=2, size=24, frame_size=16)
    with pytest.raises(ValueError, match=r"a folder's frames are its images"):
        make_dataset(folder8, "C", frame_size=64)
