"""ECMRNet on one GPU: training throughput, inference latency, SEP time, memory traffic.

One run measures, in this order, and prints Markdown tables:

1. the bandwidth of a large device-to-device copy (the memory-traffic yardstick);
2. per stage, each grouped-convolution algorithm (forward + backward of one 3x3 grouped
   convolution at that stage's shape, bf16 autocast, channels-last), and the fastest;
3. training images/s of the paper preset at 256 x 256, batch 24, Adam, L1: fp32 eager
   (the baseline) and the tuned configuration (bf16 autocast + channels-last +
   ``torch.compile`` + fused Adam + the per-stage convolution choice), then, while the
   time budget lasts, the switches one at a time (the rows of the issue's anchor table);
   peak memory of each;
4. the memory-traffic bound of a training step, computed from the model's tensor sizes,
   and the fraction of it each configuration achieves;
5. inference latency at 640 x 512, batch 1, for a single task and for CBN (SKMM over
   three branches): fp32 eager, bf16 eager, and bf16 + channels-last + compile (CUDA
   graphs on a GPU);
6. SEP scoring of a pool of N = 300 full-resolution images against the 300 forward
   passes it needs.

    python -m benchmarks.gpu                  # on a CUDA machine: about 5-8 minutes
    python -m benchmarks.gpu --device cpu     # the same measurements, tiny preset, small sizes

Without CUDA (or with ``--device cpu``) the tiny preset runs at small sizes so that the
code path is exercised (the test suite does this with ``--compile-backend eager``: the
graphs are captured as by ``torch.compile``, but no code is generated). Any error exits non-zero;
a target that is missed is reported in the table, not as an error.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from sepkit_torch import ECMRNet
from sepkit_torch.continual.pruning import select_groups
from sepkit_torch.models.backbone import GROUPED_CONV_IMPLS, STAGE_NAMES, GroupedConv2d
from sepkit_torch.speed import autocast, quiet_numba_threads, set_grouped_conv, to_channels_last
from sepkit_torch.training import make_optimizer, train_step

GiB = 2**30


@dataclass(frozen=True)
class Sizes:
    """What one run measures, and how often."""

    preset: str
    crop: int  # training patches crop x crop
    batch: int
    image: tuple[int, int]  # inference and SEP images (H, W)
    sep_pool: int
    sep_batch: int
    warmup: int  # untimed steps (compilation happens here)
    steps: int  # timed training steps
    reps: int  # timed inference calls
    conv_reps: int
    copy_bytes: int
    budget_s: float  # the optional training rows run only while time is left


CUDA_SIZES = Sizes("paper", 256, 24, (512, 640), 300, 4, 3, 20, 50, 20, 1 * GiB, 420.0)
CPU_SIZES = Sizes("tiny", 16, 2, (32, 40), 4, 2, 2, 2, 3, 3, 16 * 2**20, 600.0)


@dataclass(frozen=True)
class Setting:
    """One training/inference configuration."""

    name: str
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    optimizer: str = "default"
    grouped_conv: tuple[str, ...] = ("native",) * 6


BASELINE = Setting("fp32 eager")
SWITCHES = [
    Setting("bf16 autocast", amp="bf16"),
    Setting("bf16 + channels_last", amp="bf16", channels_last=True),
    Setting("bf16 + torch.compile", amp="bf16", compile=True),
    Setting("bf16 + channels_last + torch.compile", amp="bf16", channels_last=True, compile=True),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, reps: int) -> list[float]:
    """Seconds of each of `reps` calls of `fn` (the device synchronised around each)."""
    out = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - start)
    return out


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None


def build_model(preset: str, tasks, device: torch.device, seed: int = 0) -> ECMRNet:
    """A model with `tasks` whose blocks are active (trained-like, ``beta != 0``)."""
    torch.manual_seed(seed)
    model = ECMRNet.from_preset(preset)
    for task in tasks:
        name, parts = (task, None) if len(task) == 1 else (task, list(task))
        model.add_task(name, parts=parts)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.to(device)


def _prepared(model: nn.Module, setting: Setting, backend: str, mode: str | None = None):
    set_grouped_conv(model, setting.grouped_conv)
    if setting.channels_last:
        to_channels_last(model)
    if setting.compile:
        # modes are inductor's; other backends (aot_eager in tests) take none
        use_mode = mode if backend == "inductor" else None
        return torch.compile(model, backend=backend, mode=use_mode)
    return model


# ----------------------------------------------------------------------------- measurements


def copy_bandwidth(device: torch.device, nbytes: int, reps: int = 10) -> float:
    """Bytes per second of a device-to-device copy (each byte read once, written once)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    seconds = float(np.median(_timed(lambda: dst.copy_(src), device, reps)))
    return 2 * nbytes / seconds


def conv_choice(sizes: Sizes, device: torch.device, reps: int) -> tuple[list[dict], tuple]:
    """Forward + backward ms of each algorithm at each stage's shape; the fastest per stage."""
    config = ECMRNet.from_preset(sizes.preset).config
    rows, choice = [], []
    for s, name in enumerate(STAGE_NAMES):
        width, groups = config.widths[s], config.groups[s]
        side = sizes.crop // (1, 2, 4, 4, 2, 1)[s]
        torch.manual_seed(s)
        conv = GroupedConv2d(width, width, 3, padding=1, groups=groups).to(device)
        to_channels_last(conv)
        x = torch.randn(sizes.batch, width, side, side, device=device)
        x = x.to(memory_format=torch.channels_last).requires_grad_()
        times = {}
        for impl in GROUPED_CONV_IMPLS:
            conv.set_impl(impl)

            def step(conv=conv, x=x):
                with autocast(device, "bf16"):
                    y = conv(x)
                y.float().sum().backward()

            step()
            times[impl] = 1e3 * float(np.median(_timed(step, device, reps)))
        best = min(times, key=times.get)
        choice.append(best)
        rows.append(
            {
                "stage": name,
                "shape": (sizes.batch, width, side, side),
                "groups": groups,
                **times,
                "best": best,
            }
        )
    return rows, tuple(choice)


def train_rate(sizes: Sizes, setting: Setting, device: torch.device, backend: str) -> dict:
    """ms/step, images/s and peak memory of training task C's branch with `setting`."""
    model = build_model(sizes.preset, ["C"], device)
    forward = _prepared(model, setting, backend)
    optimizer = make_optimizer(model, 1e-4, impl=setting.optimizer)
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(sizes.batch, 1, sizes.crop, sizes.crop, generator=g).to(device)
    degraded = (0.5 * clean + 0.1).clamp(0, 1)

    def step():  # a non-finite loss raises TrainingDivergedError
        return train_step(
            model,
            optimizer,
            degraded,
            clean,
            task="C",
            amp=setting.amp,
            forward=lambda x: forward(x, task="C"),
        )

    start = time.perf_counter()
    for _ in range(sizes.warmup):
        step()
    warm_s = time.perf_counter() - start
    _peak_reset(device)
    seconds = float(np.median(_timed(step, device, sizes.steps)))
    return {
        "setting": setting,
        "ms": 1e3 * seconds,
        "images_s": sizes.batch / seconds,
        "peak_gib": _peak_gib(device),
        "warmup_s": warm_s,
    }


def step_traffic(sizes: Sizes, setting: Setting, device: torch.device) -> dict:
    """Bytes a training step must move at least, from the model's tensor sizes.

    Forward: every leaf module (convolutions, norms, activations, pools, shuffles) reads
    its inputs and writes its output once. Backward: it reads the saved input and the
    output gradient and writes the input gradient, twice the forward's activation
    bytes. Parameters: read in the forward and in the backward, the gradient written,
    then Adam reads parameter, gradient and two moments and writes three: 10 x the
    trainable bytes, plus two reads of the frozen weights on the path. Element-wise
    python operations (residual sums, scales, the attention product) are not counted,
    as a fused implementation would not store them.
    """
    model = build_model(sizes.preset, ["C"], device)
    if setting.channels_last:
        to_channels_last(model)
    activation = 0

    def hook(module, args, output):
        nonlocal activation
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + [output]
        activation += sum(t.numel() * t.element_size() for t in tensors)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    x = torch.rand(sizes.batch, 1, sizes.crop, sizes.crop, device=device)
    try:
        with torch.no_grad(), autocast(device, setting.amp):
            model(x, task="C")
    finally:
        for h in handles:
            h.remove()
    trainable = sum(p.numel() * p.element_size() for p in model.trainable_parameters())
    shared = model.backbone
    frozen = sum(
        p.numel() * p.element_size()
        for m in (shared.stem, shared.bottom, shared.out)
        for p in m.parameters()
    )
    total = 3 * activation + 10 * trainable + 2 * frozen
    return {"activation": activation, "trainable": trainable, "total": total}


def inference_latency(
    sizes: Sizes, model: ECMRNet, task: str, setting: Setting, device: torch.device, backend: str
) -> float:
    """Median ms of one restoration of a (1, 1, H, W) image along `task`."""
    mode = "reduce-overhead" if setting.compile and device.type == "cuda" else None
    forward = _prepared(model, setting, backend, mode)
    x = torch.rand(1, 1, *sizes.image, generator=torch.Generator().manual_seed(2)).to(device)

    def call():
        with torch.no_grad(), autocast(device, setting.amp):
            return forward(x, task=task)

    for _ in range(max(3, sizes.warmup)):  # CUDA graphs record on the second or third call
        y = call()
    if not torch.isfinite(y).all():
        raise FloatingPointError(f"{setting.name}: the restoration of {task} is not finite")
    return 1e3 * float(np.median(_timed(call, device, sizes.reps)))


def sep_time(sizes: Sizes, device: torch.device) -> dict:
    """SEP over a pool of ``sizes.sep_pool`` images, and the forward passes alone."""
    model = build_model(sizes.preset, ["C"], device)
    g = torch.Generator().manual_seed(3)
    pool = torch.rand(sizes.sep_pool, 1, *sizes.image, generator=g).to(device)
    select_groups(model, "C", pool[:2], batch_size=sizes.sep_batch)  # numba, allocator
    model.eval()

    def forwards():
        with torch.no_grad():
            for batch in pool.split(sizes.sep_batch):
                model(batch, task="C")

    forwards()
    forward_s = _timed(forwards, device, 1)[0]
    start = time.perf_counter()
    selection = select_groups(model, "C", pool, batch_size=sizes.sep_batch)
    _sync(device)
    total_s = time.perf_counter() - start
    return {
        "forward_only_s": forward_s,
        "total_s": total_s,
        **{f"{k}_s": v for k, v in selection.seconds.items()},
        "kept": selection.kept_counts,
    }


# ----------------------------------------------------------------------------- report


def _fmt(value, digits=1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available"
    )
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend (eager: capture only, for tests)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", help="also write the tables to this Markdown file")
    parser.add_argument("--crop", type=int, help="training patch side (default: by device)")
    parser.add_argument("--batch", type=int, help="training batch (default: by device)")
    parser.add_argument("--pool", type=int, help="SEP pool images (default: by device)")
    args = parser.parse_args(argv)
    for option in ("threads", "crop", "batch", "pool"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option} must be >= 1; got {value}")
    if args.crop is not None and args.crop % 4:
        parser.error(f"--crop must be a multiple of 4 (two 2x down-samplings); got {args.crop}")
    name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(name)
    sizes = CUDA_SIZES if name == "cuda" else CPU_SIZES
    overrides = {"crop": args.crop, "batch": args.batch, "sep_pool": args.pool}
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    torch.set_num_threads(args.threads)
    quiet_numba_threads()  # else SEP's numba workers spin and slow every later torch call
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    lines: list[str] = []

    def emit(text: str = "") -> None:
        lines.append(text)
        print(text, flush=True)

    card = torch.cuda.get_device_name(device) if name == "cuda" else platform.processor() or "CPU"
    emit(f"# benchmarks/gpu.py, {datetime.date.today().isoformat()}")
    emit()
    emit(
        f"Device: {card} ({name}); torch {torch.__version__}; python {platform.python_version()}; "
        f"preset `{sizes.preset}`, training {sizes.crop} x {sizes.crop} batch {sizes.batch}, "
        f"inference {sizes.image[1]} x {sizes.image[0]} batch 1, SEP pool {sizes.sep_pool}; "
        f"compile backend `{args.compile_backend}`"
        + (f"; {args.threads} CPU thread(s)" if name == "cpu" else "")
    )
    bandwidth = copy_bandwidth(device, sizes.copy_bytes)
    emit(
        f"\nCopy bandwidth (read + write of {sizes.copy_bytes / GiB:.2f} GiB): "
        f"{bandwidth / 1e9:,.1f} GB/s"
    )

    # -- grouped convolutions
    conv_rows, choice = conv_choice(sizes, device, sizes.conv_reps)
    emit("\n## Grouped 3x3 convolution, forward + backward, bf16, channels_last (ms)\n")
    emit("| stage | input | groups | " + " | ".join(GROUPED_CONV_IMPLS) + " | fastest |")
    emit("|---|---|---:|" + "---:|" * len(GROUPED_CONV_IMPLS) + "---|")
    for r in conv_rows:
        emit(
            f"| {r['stage']} | {'x'.join(map(str, r['shape']))} | {r['groups']} | "
            + " | ".join(f"{r[i]:.3f}" for i in GROUPED_CONV_IMPLS)
            + f" | {r['best']} |"
        )

    # -- training
    tuned = Setting(
        "tuned: bf16 + channels_last + compile + fused Adam + conv choice",
        amp="bf16",
        channels_last=True,
        compile=True,
        optimizer="fused",
        grouped_conv=choice,
    )
    results = [
        train_rate(sizes, BASELINE, device, args.compile_backend),
        train_rate(sizes, tuned, device, args.compile_backend),
    ]
    skipped = []
    for setting in SWITCHES:
        if time.perf_counter() - started > sizes.budget_s - 150:
            skipped.append(setting.name)
            continue
        results.append(train_rate(sizes, setting, device, args.compile_backend))
    traffic = {
        amp: step_traffic(sizes, replace(BASELINE, amp=amp), device) for amp in ("none", "bf16")
    }
    base = results[0]
    emit(
        f"\n## Training, task C's branch, {sizes.crop} x {sizes.crop}, batch {sizes.batch}, "
        "Adam, L1\n"
    )
    emit(
        "| configuration | ms/step | images/s | x fp32 eager | peak GiB | traffic bound ms "
        "| achieved fraction of the bound |"
    )
    emit("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s = r["setting"]
        bound_ms = 1e3 * traffic[s.amp]["total"] / bandwidth
        emit(
            f"| {s.name} | {r['ms']:.1f} | {r['images_s']:.1f} | "
            f"{r['images_s'] / base['images_s']:.2f} | {_fmt(r['peak_gib'])} | "
            f"{bound_ms:.2f} | {bound_ms / r['ms']:.1%} |"
        )
    for s in skipped:
        emit(f"| {s} | skipped: time budget | | | | | |")
    fastest = max(results, key=lambda r: r["images_s"])
    t = traffic[fastest["setting"].amp]
    emit(
        f"\nTraffic of a step (fp32 / bf16 activations): "
        f"{traffic['none']['total'] / 1e9:.2f} / {traffic['bf16']['total'] / 1e9:.2f} GB "
        f"(activations {t['activation'] / 1e9:.2f} GB per forward at {fastest['setting'].amp}, "
        f"trainable parameters {t['trainable'] / 1e6:.1f} MB); first steps incl. compilation: "
        + ", ".join(f"{r['setting'].name.split(':')[0]} {r['warmup_s']:.0f} s" for r in results)
    )

    # -- inference
    emit(f"\n## Inference, {sizes.image[1]} x {sizes.image[0]}, batch 1 (median ms)\n")
    emit("| path | fp32 eager | bf16 eager | bf16 + channels_last + compile | speed-up |")
    emit("|---|---:|---:|---:|---:|")
    fast_inference = Setting("fast", amp="bf16", channels_last=True, compile=True)
    latency = {}
    for task, tasks in (("C", ["C"]), ("CBN", ["C", "B", "N", "CBN"])):
        ms = []
        for setting in (BASELINE, Setting("bf16", amp="bf16"), fast_inference):
            model = build_model(sizes.preset, tasks, device).eval()
            ms.append(inference_latency(sizes, model, task, setting, device, args.compile_backend))
            del model
        latency[task] = ms
        emit(f"| {task} | {ms[0]:.2f} | {ms[1]:.2f} | {ms[2]:.2f} | {ms[0] / min(ms):.2f} |")

    # -- SEP
    sep = sep_time(sizes, device)
    scoring = sep["similarity_s"] + sep["graph_s"]
    emit(
        f"\n## SEP, pool of {sizes.sep_pool} images {sizes.image[1]} x {sizes.image[0]}, "
        f"batch {sizes.sep_batch}\n"
    )
    emit(
        "| forward passes alone s | SEP total s | of which forward s | similarity s | "
        "sepkit s | scoring / forward passes |"
    )
    emit("|---:|---:|---:|---:|---:|---:|")
    emit(
        f"| {sep['forward_only_s']:.3g} | {sep['total_s']:.3g} | {sep['forward_s']:.3g} | "
        f"{sep['similarity_s']:.3g} | {sep['graph_s']:.3g} | "
        f"{scoring / sep['forward_only_s']:.1%} |"
    )

    # -- targets
    speedup = fastest["images_s"] / base["images_s"]
    fraction = (1e3 * traffic[fastest["setting"].amp]["total"] / bandwidth) / fastest["ms"]
    inference_speedup = latency["C"][0] / min(latency["C"][1:])
    emit("\n## Targets\n")
    emit("| target | measured | |")
    emit("|---|---|---|")
    emit(
        f"| training >= 3x fp32 eager | {speedup:.2f}x ({fastest['setting'].name}) "
        f"| {_met(speedup >= 3)} |"
    )
    emit(
        f"| training >= 30% of the memory-traffic bound | {fraction:.1%} "
        f"| {_met(fraction >= 0.3)} |"
    )
    emit(
        f"| single-task inference >= 2x fp32 eager | {inference_speedup:.2f}x "
        f"| {_met(inference_speedup >= 2)} |"
    )
    emit(
        f"| SEP scoring faster than its {sizes.sep_pool} forward passes | "
        f"{scoring:.3g} s vs {sep['forward_only_s']:.3g} s | "
        f"{_met(scoring < sep['forward_only_s'])} |"
    )
    emit("| two-GPU DDP >= 1.7x one GPU | not measured by this script (one device) | - |")
    emit(f"\nWall time {time.perf_counter() - started:.0f} s.")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
