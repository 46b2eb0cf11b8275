"""``benchmarks/real_chain.py``: single-task branches in sequence, and what an output holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import real_chain
from benchmarks.blind_restoration import scores
from sepkit_torch import ECMRNet, Restorer
from sepkit_torch.data import read_image, thermal_scene

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hm-tir-examples"
TASKS = ("C", "B", "N", "CBN")


@pytest.fixture(scope="module")
def restorer():
    torch.manual_seed(0)
    model = ECMRNet.from_preset("tiny")
    for task in ("C", "B", "N"):
        model.add_task(task)
    model.add_task("CBN", parts=["C", "B", "N"])
    with torch.no_grad():  # a new branch starts as the identity: make each one act
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Restorer(model, tasks=TASKS)


def test_chains_are_parsed_and_unknown_tasks_refused():
    assert real_chain.parse_chains("C,C>B,CBN", TASKS) == {
        "C": ("C",),
        "C>B": ("C", "B"),
        "CBN": ("CBN",),
    }
    with pytest.raises(ValueError, match=r"`chains` must be .* \(C, B, N, CBN\) .* got 'C>X'"):
        real_chain.parse_chains("C,C>X", TASKS)
    with pytest.raises(ValueError, match=r"`chains` must be .* got '' in 'C,,B'"):
        real_chain.parse_chains("C,,B", TASKS)


def test_a_chain_feeds_each_branch_the_previous_output_and_restores_a_prefix_once(restorer):
    calls = []

    def counting(image, task):
        calls.append(task)
        return restorer(image, task=task)

    x = thermal_scene((48, 64), 3)[None]
    chains = real_chain.parse_chains("C,C>B,C>B>N,CBN", TASKS)
    out = real_chain.run_chains(counting, x, chains)
    assert calls == ["C", "B", "N", "CBN"]
    by_hand = restorer(restorer(restorer(x, task="C"), task="B"), task="N")
    assert torch.equal(out["C>B>N"], by_hand)
    assert torch.equal(out["C"], restorer(x, task="C"))
    assert not torch.equal(out["C"], out["C>B"])
    assert torch.equal(out["CBN"], restorer(x, task="CBN"))


def test_the_striped_profile_is_the_mean_of_each_line_over_the_kept_pixels():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(6, 5, generator=g, dtype=torch.float64)
    keep = torch.rand(6, 5, generator=g) > 0.3
    keep[0] = True  # every column and row keeps a pixel
    keep[:, 0] = True
    columns = real_chain.striped_profile(r, keep, "column")
    rows = real_chain.striped_profile(r, keep, "row")
    for j in range(5):
        assert torch.allclose(columns[:, j], r[keep[:, j], j].mean())
    for i in range(6):
        assert torch.allclose(rows[i], r[i, keep[i]].mean())


def _striped(clean, gain, offset, spread, g):
    offsets = torch.randn(clean.shape[-1], generator=g, dtype=torch.float64) * spread / 255
    return (gain * clean.double() + offset / 255 + offsets[None]).clamp(0, 1), offsets


def test_the_breakdown_finds_the_contrast_and_stripes_an_image_was_given():
    clean = thermal_scene((96, 128), 0).double().reshape(96, 128)
    y, offsets = _striped(clean, 0.6, 50.0, 4.0, torch.Generator().manual_seed(1))
    left = real_chain.breakdown(clean, y, "column")
    assert left["a"] == pytest.approx(0.6, abs=0.02)
    assert left["b"] == pytest.approx(50.0, abs=2.0)
    spread = float((offsets - offsets.mean()).std(correction=0)) * 255
    assert left["stripes"] == pytest.approx(spread, rel=0.1)
    assert left["psnr"] == pytest.approx(float(scores(y[None, None], clean[None, None])[0]))
    assert left["rms"] == pytest.approx(float((y - clean).square().mean().sqrt()) * 255)
    parts = left["parts"]
    # the gain and offset are the error; the stripes are the striped part of it
    assert parts["gain_offset"][0] > 0.9 * left["rms"]
    assert parts["stripes"][0] == pytest.approx(left["stripes"], rel=1e-6)
    for part in ("nonuniformity", "blur", "rest"):
        assert parts[part][0] < 0.5 * spread, part
    # taking the gain and offset out leaves the stripes: the PSNR of 4 grey levels' offsets
    assert parts["gain_offset"][1] == pytest.approx(20 * np.log10(255 / spread), abs=1.0)
    # the other orientation holds no line pattern
    across = real_chain.breakdown(clean, y, "row")
    assert across["stripes"] < 0.2 * spread
    # an exact output has nothing left
    same = real_chain.breakdown(clean, clean, "column")
    assert same["a"] == pytest.approx(1.0) and same["stripes"] < 1e-6 and same["psnr"] == 80.0


def test_the_error_parts_add_up_to_the_error():
    from benchmarks.stripe_spectra import residual
    from sepkit_torch.data import degrade, quantize

    clean = thermal_scene((96, 128), 2).reshape(96, 128)
    y = quantize(degrade(clean, "CBN", 4, preset="hmtir"))
    r, keep, fit = residual(clean, y)
    parts = real_chain.error_parts(clean, y, r, keep, fit, fit.stripes)
    assert set(parts) == set(real_chain.PARTS)
    total = sum(parts.values())
    assert torch.allclose(total, y.double() - clean.double(), atol=1e-12)
    # the contrast loss dominates a CBN frame; the bump has no mean of its own
    rms = {k: float(v.square().mean().sqrt()) for k, v in parts.items()}
    assert max(rms, key=rms.get) == "gain_offset"
    assert abs(float(parts["nonuniformity"].mean())) < 1e-12


def test_procedural_frames_get_the_same_breakdown(capsys):
    from types import SimpleNamespace

    import sepkit_torch

    restorer = sepkit_torch.load()  # trained: an untrained branch's output is all clipped
    from sepkit_torch.data import degrade, quantize
    from sepkit_torch.data.sampling import mix_seed

    config = SimpleNamespace(scene_style="detailed", degradation_preset="hmtir")
    rows = real_chain.procedural(restorer, config, [(48, 64), (64, 80)], 2)
    assert [r["size"] for r in rows] == [(48, 64), (48, 64), (64, 80), (64, 80)]
    # frame i of a size is the scene and degradation of (seed, i), restored by CBN
    clean = thermal_scene((64, 80), mix_seed(real_chain._SCENE_SEED, 0, 1), style="detailed")
    g = torch.Generator().manual_seed(mix_seed(real_chain._SCENE_SEED, 1, 1))
    degraded = quantize(degrade(clean, "CBN", g, preset="hmtir"))
    restored = restorer(degraded[None], task="CBN")[0]
    assert rows[3]["left"]["input"]["psnr"] == pytest.approx(scores(degraded, clean)[0])
    assert rows[3]["left"]["CBN"]["psnr"] == pytest.approx(scores(restored, clean)[0])
    real_chain.print_procedural(rows, config)
    out = capsys.readouterr().out
    assert "| 2 x 64 x 48 | input |" in out and "| 2 x 80 x 64 | CBN |" in out


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs ../shared/data/hm-tir-examples")
def test_the_benchmark_runs_on_a_crop_of_a_real_pair(tmp_path, capsys):
    from PIL import Image

    import sepkit_torch

    crop = (slice(200, 296), slice(256, 384))  # 96 x 128 from the middle
    for folder in ("imgs", "hard", "normal", "enh_hard"):
        (tmp_path / folder).mkdir()
        image = np.asarray(Image.open(EXAMPLES / folder / "Villa.png").convert("L"))
        Image.fromarray(image[crop]).save(tmp_path / folder / "Villa.png")
    figure = tmp_path / "chain.png"
    argv = ["--examples", str(tmp_path), "--chains", "C,C>B,CBN", "--figure", str(figure)]
    assert real_chain.main(argv) == 0
    out = capsys.readouterr().out
    builtin = sepkit_torch.load()
    degraded = read_image(tmp_path / "hard" / "Villa.png")[None]
    clean = read_image(tmp_path / "imgs" / "Villa.png")[None]
    p, s = scores(builtin(degraded, task="CBN"), clean)
    assert "| Villa | " in out and f" {p:.2f} / {s:.4f} |" in out
    assert "| C>B | " in out and "| PPFN | " in out and "#### `normal`" in out
    assert "| output | PSNR | error RMS | gain & offset | non-uniformity |" in out
    assert figure.stat().st_size > 0
    with pytest.raises(SystemExit):
        real_chain.main(["--examples", str(tmp_path), "--chains", "C>Q"])
