"""Blind restoration: tiling, the Restorer, 16-bit round trips and the restore command."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import sepkit_torch
from sepkit_torch import (
    ECMRNet,
    InvalidInputError,
    Restorer,
    TaskStateError,
    UnknownTaskError,
    make_optimizer,
    train_step,
)
from sepkit_torch.__main__ import main as package_main
from sepkit_torch.data import read_grey, thermal_scenes, write_grey
from sepkit_torch.inference import tile_windows, tiled_apply
from sepkit_torch.models import DegradationRecognizer
from sepkit_torch.pipeline.state import save_checkpoint
from sepkit_torch.restore_cli import main as restore_main

from .conftest import images, pretend_pretrained

TASKS = ("C", "B", "CB")


@pytest.fixture(scope="module")
def trained():
    """A tiny ECMRNet with tasks C, B, CB and a recognizer for C and B (random heads).

    The backbone gets a few steps of clean-to-clean pretraining, so that outputs are
    images (a random network's clamp to [0, 1] is mostly 0) and the tests compare pixels.
    """
    torch.manual_seed(0)
    model = pretend_pretrained(ECMRNet.from_preset("tiny"))
    optimizer = make_optimizer(model, lr=5e-3)
    for step in range(30):
        x = thermal_scenes(4, 24, seed=step)
        train_step(model, optimizer, x, x)
    model.add_task("C")
    model.add_task("B")
    model.add_task("CB", parts=["C", "B"])
    pretend_pretrained(model, seed=1)
    recognizer = DegradationRecognizer(width=4)
    for letter in ("C", "B"):
        recognizer.add_letter(letter)
    return model.eval(), recognizer.eval()


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory):
    """A checkpoint laid out as the pipeline writes it."""
    model, recognizer = trained
    out = tmp_path_factory.mktemp("run")
    save_checkpoint(
        out / "checkpoint.pt",
        {
            "model": model.state_dict(),
            "report": {"tasks": list(TASKS)},
            "recognizer": recognizer.state_dict(),
        },
    )
    return out


# ----------------------------------------------------------------------------- tiling


def _coverage(h, w, tile, overlap):
    count = torch.zeros(h, w, dtype=torch.int64)
    for t, b, left, r in tile_windows(h, w, tile=tile, overlap=overlap):
        count[t:b, left:r] += 1
    return count


@pytest.mark.parametrize("h, w", [(100, 70), (64, 64), (131, 97)])
def test_tiles_cover_the_image_aligned_and_overlapping(h, w):
    windows = tile_windows(h, w, tile=32, overlap=8)
    assert _coverage(h, w, 32, 8).min() >= 1
    for t, b, left, r in windows:
        assert t % 4 == 0 and left % 4 == 0
        assert 32 <= b - t <= 35 or b - t == h
        assert 32 <= r - left <= 35 or r - left == w
    rows = sorted({(t, b) for t, b, _, _ in windows})
    for (_, b0), (t1, _) in zip(rows, rows[1:], strict=False):
        assert b0 - t1 >= 8  # neighbours overlap by at least `overlap`


def test_tiled_equals_untiled_for_a_local_operator():
    torch.manual_seed(0)
    # three 3x3 convolutions see 3 pixels around each output: within overlap // 4 = 4
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.GELU(),
        nn.Conv2d(4, 1, 3, padding=1),
    )
    x = images(2, 1, 100, 70, seed=5)
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_apply(net, x, tile=32, overlap=16, batch_size=3)
    single = _coverage(100, 70, 32, 16) == 1
    assert single.any() and (~single).any()
    assert torch.equal(tiled[..., single], whole[..., single])  # exact away from seams
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)  # to rounding on them
    # too small an overlap for the receptive field: the seams show
    rough = tiled_apply(net, x, tile=32, overlap=4)
    assert (rough - whole).abs().max() > 1e-3


def test_an_image_that_fits_one_tile_is_restored_untiled(trained):
    model, _ = trained
    restorer = Restorer(model, tile=64)
    x = images(3, 1, 60, 44, seed=6)
    with torch.no_grad():
        direct = model(x, task="CB").clamp(0, 1)
    assert torch.equal(restorer(x, task="CB"), direct)
    # the same image in 32-pixel tiles: ECMRNet's norms see each tile alone, so close only
    tiled = Restorer(model, tile=32, overlap=16)(x, task="CB")
    assert tiled.shape == direct.shape and not torch.equal(tiled, direct)
    assert (tiled - direct).abs().mean() < 0.1


# ----------------------------------------------------------------------------- restorer


def test_batches_stacks_and_containers_agree(trained):
    model, recognizer = trained
    restorer = Restorer(model, recognizer, tasks=TASKS, batch_size=2)
    x = images(5, 1, 20, 28, seed=7)
    batch = restorer(x, task="C")
    assert batch.shape == x.shape and batch.dtype == torch.float32
    for i in range(5):
        torch.testing.assert_close(restorer(x[i, 0], task="C"), batch[i, 0], rtol=0, atol=1e-6)
    stack = restorer(x[:, 0].numpy(), task="C")
    assert isinstance(stack, np.ndarray) and stack.shape == (5, 20, 28)
    np.testing.assert_allclose(stack, batch[:, 0].numpy(), atol=1e-6)
    # blind: every image goes to the task its recognition names
    restored, routes = restorer.restore(x)
    verdicts = restorer.recognize(x)
    assert routes == [v.task for v in verdicts]
    for i, task in enumerate(routes):
        expected = x[i] if task is None else restorer(x[i : i + 1], task=task)[0]
        torch.testing.assert_close(restored[i], expected, rtol=0, atol=1e-6)
    assert all(set(v.probabilities) == {"C", "B"} for v in verdicts)


def test_uint16_round_trip(trained):
    model, _ = trained
    restorer = Restorer(model, tasks=TASKS)
    frame = (images(1, 1, 30, 26, seed=8)[0, 0].numpy() * 65535).round().astype(np.uint16)
    out = restorer(frame, task="B")
    assert out.dtype == np.uint16 and out.shape == frame.shape
    with torch.no_grad():
        expected = model(torch.from_numpy(frame / 65535.0).float()[None, None], task="B")
    expected = np.round(expected.clamp(0, 1)[0, 0].double().numpy() * 65535).astype(np.uint16)
    assert np.abs(out.astype(np.int64) - expected.astype(np.int64)).max() <= 1
    # 16-bit files: written and read back bit for bit
    for suffix in (".png", ".tif"):
        path = Path(__import__("tempfile").mkdtemp()) / f"frame{suffix}"
        write_grey(path, out)
        back = read_grey(path)
        assert back.dtype == np.uint16 and np.array_equal(back, out), suffix


@pytest.mark.parametrize(
    "image, error, match",
    [
        ([[0.5]], TypeError, r"`image` must be a numpy array or a torch tensor; got list"),
        (np.zeros((4, 4), np.int32), TypeError, r"uint8 or uint16 values; got dtype int32"),
        (
            np.full((4, 4), 1.5),
            InvalidInputError,
            r"values in \[0, 1\].*got values in \[1.5, 1.5\]",
        ),
        (torch.zeros(2, 3, 8, 8), InvalidInputError, r"got shape \(2, 3, 8, 8\)"),
        (np.full((4, 4), np.nan), InvalidInputError, r"NaN or infinite"),
    ],
)
def test_bad_images_are_refused(trained, image, error, match):
    restorer = Restorer(trained[0], tasks=TASKS)
    with pytest.raises(error, match=match):
        restorer(image, task="C")


def test_bad_tasks_and_options(trained):
    model, recognizer = trained
    restorer = Restorer(model, tasks=TASKS)
    with pytest.raises(UnknownTaskError, match=r"one of \['C', 'B', 'CB'\] or None; got 'N'"):
        restorer(np.zeros((8, 8)), task="N")
    with pytest.raises(TaskStateError, match="no recognizer"):
        restorer(np.zeros((8, 8)))
    with pytest.raises(InvalidInputError, match="`tile` must be a multiple of 4"):
        Restorer(model, tile=30)
    with pytest.raises(InvalidInputError, match=r"`tasks` must name the model's tasks"):
        Restorer(model, tasks=("C", "B"))


def test_load_a_run_folder(run_dir, trained, tmp_path):
    restorer = sepkit_torch.load(run_dir, tile=64)
    assert restorer.tasks == TASKS and restorer.recognizer.letters == ("C", "B")
    assert restorer.routable == TASKS
    x = images(1, 1, 20, 20, seed=9)
    assert torch.equal(restorer(x, task="CB"), Restorer(trained[0], tile=64)(x, task="CB"))
    with pytest.raises(FileNotFoundError, match="a folder without checkpoint.pt"):
        sepkit_torch.load(tmp_path)


# ----------------------------------------------------------------------------- command


def _save(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    scene = images(1, 1, 36, 44, seed=10)[0, 0].numpy()
    _save(folder / "a.png", (scene * 255).round().astype(np.uint8))
    _save(folder / "b.png", (scene * 65535).round().astype(np.uint16))
    _save(folder / "c.tif", (scene * 65535).round().astype(np.uint16))
    Image.fromarray((scene * 255).round().astype(np.uint8)).save(folder / "d.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_command_restores_a_folder_with_a_corrupt_file(run_dir, photo_folder, tmp_path, capsys):
    (photo_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    out = tmp_path / "out"
    code = package_main(
        ["restore", str(photo_folder), "--checkpoint", str(run_dir), "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png" in captured.err and "4 restored, 1 failed" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.tif", "d.jpg"]
    for name in ("a.png", "b.png", "c.tif", "d.jpg"):
        assert f"{name}: recognized" in captured.out + captured.err
    depth = {p.name: read_grey(p).dtype for p in out.iterdir()}
    assert depth == {"a.png": np.uint8, "b.png": np.uint16, "c.tif": np.uint16, "d.jpg": np.uint8}
    assert read_grey(out / "b.png").shape == (36, 44)


def test_command_with_a_known_task_and_no_failures(
    run_dir, photo_folder, trained, tmp_path, capsys
):
    out = tmp_path / "out"
    files = [str(photo_folder / "a.png"), str(photo_folder / "b.png")]
    code = restore_main([*files, "--checkpoint", str(run_dir), "--out", str(out), "--task", "B"])
    printed = capsys.readouterr().out
    assert code == 0 and "a.png: task B" in printed and "2 restored" in printed
    expected = Restorer(trained[0], tasks=TASKS)(read_grey(photo_folder / "b.png"), task="B")
    assert np.array_equal(read_grey(out / "b.png"), expected)
    # a second run does not overwrite silently
    again = restore_main([*files, "--checkpoint", str(run_dir), "--out", str(out), "--task", "B"])
    assert again == 1 and "pass --overwrite" in capsys.readouterr().err


def test_command_usage_errors(run_dir, tmp_path, capsys):
    args = ["--checkpoint", str(run_dir), "--out", str(tmp_path / "o")]
    assert restore_main([str(tmp_path), *args, "--task", "N"]) == 2
    assert "one of ['C', 'B', 'CB']" in capsys.readouterr().err
    assert restore_main([str(tmp_path / "missing.png"), *args]) == 1
    assert "missing.png: no such file or folder" in capsys.readouterr().err
    assert restore_main([str(tmp_path), "--checkpoint", str(tmp_path), "--out", "o"]) == 2
    assert "without checkpoint.pt" in capsys.readouterr().err
    assert package_main(["unknown"]) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_restores_like_the_cpu(trained):
    model, recognizer = trained
    x = images(2, 1, 70, 52, seed=11)
    on_cpu, routes_cpu = Restorer(model, recognizer, tasks=TASKS, tile=32).restore(x)
    gpu = Restorer(
        copy.deepcopy(model), copy.deepcopy(recognizer), tasks=TASKS, tile=32, device="cuda"
    )
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # float32 as on the CPU
        on_gpu, routes_gpu = gpu.restore(x.cuda())
    assert on_gpu.device.type == "cuda" and routes_gpu == routes_cpu
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)
