"""``restore``, ``sepkit_torch.load`` and the Restorer under hostile input: inputs are
never written over, unreadable or oversized images are reported while the others are
restored, non-finite models and outputs fail loudly, and every bad argument is named."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import sepkit_torch
from sepkit_torch import CheckpointError, ECMRNet, ImageFileError, InvalidInputError
from sepkit_torch.__main__ import main as package_main
from sepkit_torch.checkpoint import WEIGHTS_KIND, save_checkpoint
from sepkit_torch.data import read_image
from sepkit_torch.data.image_io import write_grey
from sepkit_torch.inference import Restorer
from sepkit_torch.models.recognizer import DegradationRecognizer


def _error(capsys, code) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    return captured.err


# ----------------------------------------------------------------------------- restore


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG whose header claims `width` x `height` pixels (its data is tiny)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _model(seed: int = 0) -> ECMRNet:
    torch.manual_seed(seed)
    model = ECMRNet.from_preset("tiny")
    model.add_task("C")
    return model


def _weights(path: Path, model: ECMRNet) -> Path:
    payload = {"kind": WEIGHTS_KIND, "model": model.state_dict(), "recognizer": None}
    save_checkpoint(path, {**payload, "tasks": list(model.task_names), "config": {}})
    return path


@pytest.fixture
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(g.integers(0, 255, (40, 36), dtype=np.uint8)).save(folder / f"f{i}.png")
    return folder


def _restore(*args) -> int:
    return package_main(["restore", *map(str, args), "--task", "C", "--quiet"])


def test_restore_never_writes_over_its_inputs(tmp_path, frames, capsys):
    weights = _weights(tmp_path / "w.pt", _model())
    before = {p: p.read_bytes() for p in frames.iterdir()}
    for out in (frames, tmp_path / "link"):
        if out.name == "link":
            out.symlink_to(frames)  # the same folder under another name
        code = _restore(frames, "--out", out, "--overwrite", "--checkpoint", weights)
        err = _error(capsys, code)
        assert "would write over 3 input image(s)" in err and "f0.png" in err
    # one file given alone, its own folder as --out, without --overwrite
    code = _restore(frames / "f1.png", "--out", frames, "--checkpoint", weights)
    assert "would write over 1 input image(s)" in _error(capsys, code)
    assert {p: p.read_bytes() for p in frames.iterdir()} == before


def test_restore_into_an_existing_file_is_named(tmp_path, frames, capsys):
    (tmp_path / "taken").write_text("mine")
    weights = _weights(tmp_path / "w.pt", _model())
    err = _error(capsys, _restore(frames, "--out", tmp_path / "taken", "--checkpoint", weights))
    assert f"`--out` must be a folder; {str(tmp_path / 'taken')!r} is a file" in err
    assert "Errno" not in err and (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize(
    "size, match", [(100_000, "exceeds limit"), (10_000, "claims 10000 x 10000 pixels")]
)
def test_an_oversized_image_is_reported_and_the_others_restored(
    tmp_path, frames, capsys, size, match
):
    (frames / "f1_huge.png").write_bytes(_png_header(size, size))
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "f1_huge.png" in captured.err and match in captured.err
    assert "3 restored, 1 failed" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    # the data sets' reader refuses it the same way
    with pytest.raises(ImageFileError, match="f1_huge.png"):
        read_image(frames / "f1_huge.png")


def test_nan_weights_are_refused_when_loaded(tmp_path, frames, capsys):
    model = _model()
    with torch.no_grad():
        model.branches["C"].e1.exit.weight[0, 0, 0, 0] = float("nan")
    weights = _weights(tmp_path / "nan.pt", model)
    with pytest.raises(CheckpointError, match=r"model with NaN or infinite weights \(model\."):
        sepkit_torch.load(weights)
    err = _error(capsys, _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights))
    assert "NaN or infinite weights" in err and not (tmp_path / "out").exists()


def test_a_restoration_that_is_not_finite_fails_loudly(tmp_path, frames, capsys):
    model = _model()
    with torch.no_grad():  # finite weights whose output overflows float32
        for p in model.branches["C"].parameters():
            p.fill_(3e38)
    restorer = Restorer(model)
    with pytest.raises(InvalidInputError, match="gives NaN or infinite values"):
        restorer(np.full((24, 24), 0.5, np.float32), task="C")
    weights = _weights(tmp_path / "big.pt", model)
    code = _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "3 restored" not in captured.err and "0 restored, 3 failed" in captured.err
    assert "f0.png: the model of task 'C'" in captured.err
    assert not any((tmp_path / "out").glob("*.png"))


def test_a_file_restore_cannot_write_is_reported_before_restoring(tmp_path, capsys):
    image = tmp_path / "frame.bmp"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(image)
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(image, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "got the ending '.bmp'" in captured.err
    with pytest.raises(ImageFileError, match=r"got the ending '\.bmp'"):
        write_grey(tmp_path / "x.bmp", np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_a_channels_last_image_is_refused_not_restored_as_a_stack(channels, kind):
    image = np.random.default_rng(0).random((48, 64, channels)).astype(np.float32)
    image = image if kind == "numpy" else torch.from_numpy(image)
    with pytest.raises(InvalidInputError, match=rf"shape \(48, 64, {channels}\) looks like an"):
        Restorer(_model()).restore(image, "C")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=4))
def test_a_restored_image_keeps_its_shape_or_is_refused_by_name(shape):
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    try:
        out, routes = RESTORER.restore(image, "C")
    except InvalidInputError as err:
        assert "`image`" in str(err)
        assert len(shape) == 3 and shape[-1] in (1, 3, 4) or len(shape) == 4 and shape[1] != 1
        return
    assert out.shape == image.shape and out.dtype == image.dtype
    assert len(routes) == (1 if len(shape) == 2 else shape[0])
    assert np.isfinite(out).all()


RESTORER = Restorer(_model())


# ----------------------------------------------------------------------------- load


@pytest.mark.parametrize("value", [123, 1.5, b"runs/demo", ["runs/demo"]])
def test_load_names_a_checkpoint_that_is_not_a_path(value):
    with pytest.raises(TypeError, match=r"`checkpoint` must be a path \(str or os.PathLike\)"):
        sepkit_torch.load(value)


def test_load_refuses_an_empty_name_rather_than_the_current_folder():
    with pytest.raises(CheckpointError, match="`checkpoint` must name a file or folder; got ''"):
        sepkit_torch.load("")


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_are_not_a_checkpoint_and_not_called_code(data):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            sepkit_torch.load(path)
    message = str(info.value)
    assert "could run code" not in message
    assert "not a readable sepkit_torch checkpoint" in message


@pytest.mark.parametrize("threshold", ["0.5", None, True, float("nan"), 1.0])
def test_a_threshold_that_is_not_a_number_in_0_1_is_named(threshold):
    with pytest.raises(InvalidInputError, match=r"`threshold` must be a number in \(0, 1\)"):
        Restorer(_model(), threshold=threshold)


def _weights_with(path: Path, **changes) -> Path:
    model = _model()
    recognizer = DegradationRecognizer()
    recognizer.add_letter("C")
    payload = {"kind": WEIGHTS_KIND, "model": model.state_dict(), "tasks": ["C"], "config": {}}
    payload["recognizer"] = recognizer.state_dict()
    save_checkpoint(path, {**payload, **changes})
    return path


def _without(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(model=_without(_model().state_dict(), "branches.C.e1")), r"model that does not "),
        (dict(model={}), r"holds no ECMRNet model"),
        (dict(tasks=["B"]), r"lists the tasks \['B'\], but its model holds \['C'\]"),
        (dict(tasks="C"), r"lists the tasks 'C', but its model holds \['C'\]"),
        (dict(recognizer={"x": torch.zeros(1)}), r"holds a recognizer that does not load"),
    ],
)
def test_a_weights_file_whose_parts_do_not_fit_is_named(tmp_path, capsys, changes, match):
    weights = _weights_with(tmp_path / "w.pt", **changes)
    with pytest.raises(CheckpointError, match=match):
        sepkit_torch.load(weights)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(image)
    err = _error(capsys, _restore(image, "--out", tmp_path / "out", "--checkpoint", weights))
    assert str(weights) in err


@pytest.mark.parametrize("dtype", [">u2", "<u2", ">u1", ">f4", ">f8"])
def test_an_image_of_either_byte_order_restores_as_the_native_one(dtype):
    native = np.dtype(dtype).newbyteorder("=")
    top = 65535 if native.itemsize == 2 and native.kind == "u" else 255
    values = np.random.default_rng(2).integers(0, top, (20, 18))
    values = values / top if native.kind == "f" else values
    image = values.astype(dtype)
    out = RESTORER(image, task="C")
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, RESTORER(values.astype(native), task="C"))


def test_a_multi_page_file_is_reported_not_cut_to_its_first_page(tmp_path, capsys):
    pages = [Image.fromarray(np.full((24, 24), v, np.uint8)) for v in (10, 200)]
    stack = tmp_path / "in" / "stack.tif"
    stack.parent.mkdir()
    pages[0].save(stack, save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "in" / "single.tif")
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(tmp_path / "in", "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "stack.tif' holds 2 frames" in captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["single.tif"]
