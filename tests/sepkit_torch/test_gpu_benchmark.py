"""benchmarks/gpu.py in its CPU mode: every measurement runs and the tables are complete."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

gpu = pytest.importorskip("benchmarks.gpu")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cpu_tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "gpu.md"
    try:
        code = gpu.main(["--device", "cpu", "--compile-backend", "eager", "--out", str(out)])
    finally:
        torch._dynamo.reset()
        torch.set_num_threads(1)
    return code, out.read_text()


def _rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]  # no header


def test_cpu_mode_measures_everything(cpu_tables):
    code, text = cpu_tables
    assert code == 0
    assert "preset `tiny`" in text and "compile backend `eager`" in text
    convs = _rows(text, "## Grouped 3x3 convolution")
    assert [r[0] for r in convs] == ["e1", "e2", "e3", "d1", "d2", "d3"]
    for r in convs:
        assert r[-1] in ("native", "dense", "unfold")
        assert min(float(v) for v in r[3:6]) == float(
            r[3 + ("native", "dense", "unfold").index(r[-1])]
        )
    training = _rows(text, "## Training")
    names = [r[0] for r in training]
    assert names[0] == "fp32 eager" and names[1].startswith("tuned")
    assert {s.name for s in gpu.SWITCHES} <= set(names)
    for r in training:
        ms, per_s = float(r[1]), float(r[2])
        assert ms > 0 and math.isclose(per_s * ms / 1e3, gpu.CPU_SIZES.batch, rel_tol=0.02)
        assert float(r[5]) > 0 and r[6].endswith("%")
    assert float(training[0][3]) == 1.0
    inference = _rows(text, "## Inference")
    assert [r[0] for r in inference] == ["C", "CBN"]
    assert all(float(v) > 0 for r in inference for v in r[1:])
    (sep,) = _rows(text, "## SEP")
    assert all(float(v) > 0 for v in sep[:5])
    targets = _rows(text, "## Targets")
    assert len(targets) == 5 and all(t[2] in ("met", "NOT met", "-") for t in targets)


def test_traffic_bound_counts_every_leaf_tensor():
    sizes = gpu.CPU_SIZES
    fp32 = gpu.step_traffic(sizes, gpu.BASELINE, torch.device("cpu"))
    bf16 = gpu.step_traffic(sizes, gpu.SWITCHES[0], torch.device("cpu"))
    model = gpu.build_model(sizes.preset, ["C"], torch.device("cpu"))
    trainable = sum(4 * p.numel() for p in model.trainable_parameters())
    assert fp32["trainable"] == bf16["trainable"] == trainable
    # the stem alone reads the input image and writes base_width channels, float32
    stem = 4 * sizes.batch * sizes.crop**2 * (1 + model.config.base_width)
    assert fp32["activation"] > stem
    assert bf16["activation"] < fp32["activation"]  # convolution outputs in bf16
    shared = model.backbone
    frozen = sum(
        4 * p.numel() for m in (shared.stem, shared.bottom, shared.out) for p in m.parameters()
    )
    assert fp32["total"] == 3 * fp32["activation"] + 10 * trainable + 2 * frozen


def test_bad_options_and_errors_exit_non_zero():
    with pytest.raises(SystemExit) as info:
        gpu.main(["--device", "cpu", "--crop", "18"])
    assert info.value.code == 2
    # an error inside a measurement (an unknown compile backend) ends the process with 1
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--compile-backend", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"nope", result.stderr)
