"""The paper's Tables 5 and 6 on a finished SEP-study cell: pool size N and threshold rho.

Reads the trained branches of a ``benchmarks/sep_table7.py`` cell (its folder holds
``results.json`` and ``trained-<task>.pt``) and prunes each with the published SEP at
every ``rho`` of ``--rhos`` (pool of ``--rho-pool`` frames, the paper's N = 300) and at
every pool size of ``--pools`` (``rho = 0.1``), each beside MP at the same counts.
Params and MACs are the task's path at 1 x 1 x 512 x 640, as the paper counts them;
PSNR / SSIM are on the cell's test frames, without fine-tuning; with ``--finetune`` the
SEP rows also after the cell's fine-tuning (20% of its training steps, its recipe).
"unpruned" is the raw weights that pruning reads (for the code recipe, not its average).
Every finished row is saved to ``--results`` (rerun to resume):

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_sensitivity \\
        runs/sep-study-tiny/tiny-paper-8000-s0 \\
        --results docs/results/sep-study/sensitivity-tiny-paper-8000-s0.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numba
import numpy as np
import torch

from benchmarks import sep_table7 as study
from sepkit_torch import ECMRNet
from sepkit_torch._files import atomic_write_text
from sepkit_torch.continual.pruning import magnitude_scores, select_groups, top_groups
from sepkit_torch.data import SyntheticThermalDataset
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.models.backbone import STAGE_NAMES

log = logging.getLogger("sep_sensitivity")

#: The paper's grids (Table 6: rho at N = 300; Table 5: N at rho = 0.1).
RHOS = (0.05, 0.1, 0.15, 0.2)
POOLS = (100, 300)


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise SystemExit(f"error: {name} must be comma-separated numbers; got {text!r}") from None
    if not values:
        raise SystemExit(f"error: {name} is empty")
    return values


def _save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")


def settings(rhos, pools, rho_pool) -> list[tuple[str, float, int]]:
    """(row name, rho, pool size) of every SEP row: Table 6's, then Table 5's."""
    rows = [(f"rho {rho:g}, N {rho_pool}", rho, rho_pool) for rho in rhos]
    rows += [(f"rho 0.1, N {n}", 0.1, n) for n in pools]
    return list({row[0]: row for row in rows}.values())  # Table 6's rho 0.1 row once


def run(cell: Path, out: Path, rhos, pools, rho_pool: int, tasks, finetune: bool) -> dict:
    config = json.loads((cell / "results.json").read_text())["config"]
    args = argparse.Namespace(**config)
    args.frame = tuple(args.frame)
    results = json.loads(out.read_text()) if out.is_file() else {"cell": config, "tasks": {}}
    # a cell run task by task has one folder per part: their rows share one file
    if study.cell_settings(results["cell"]) != study.cell_settings(config):
        raise SystemExit(f"error: {out} holds the rows of another cell; use another --results")
    results["cell"]["tasks"] = study.union(results["cell"]["tasks"], config["tasks"])
    for task in tasks:
        path = cell / f"trained-{task}.pt"
        if not path.is_file():
            raise SystemExit(f"error: the cell {cell} has no trained branch for task {task!r}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = ECMRNet.from_state_dict(state["model"])
        seed = mix_seed(args.seed, ord(task[0]))
        test_data = SyntheticThermalDataset(
            task, length=args.test, size=args.frame, split="test", seed=args.test_seed
        )
        items = [test_data[i] for i in range(len(test_data))]
        test = (torch.stack([d for d, _ in items]), torch.stack([c for _, c in items]))
        rows = results["tasks"].setdefault(task, {})
        if "unpruned" not in rows:
            rows["unpruned"] = {
                "kept": list(model.config.groups),
                **study.evaluate(model, task, test),
                **study.size(model, task),
            }
        pools_made: dict[int, torch.Tensor] = {}
        for name, rho, n in settings(rhos, pools, rho_pool):
            if name in rows and (not finetune or "finetuned" in rows[name]["SEP"]):
                continue
            if n not in pools_made:
                args.pool = n
                pools_made[n] = study.pool_frames(task, args, seed)
            start = time.perf_counter()
            sel = select_groups(model, task, pools_made[n], rho=rho, seed=args.seed)
            counts = {s: int(sel.keep[s].sum()) for s in STAGE_NAMES}
            mp = top_groups(magnitude_scores(model.branches[task], model.config), counts)
            row = rows.get(name) or {
                method: {
                    **study.scored(model, task, keep, test),
                    "keep": {s: np.flatnonzero(keep[s]).tolist() for s in STAGE_NAMES},
                }
                for method, keep in (("SEP", sel.keep), ("MP", mp))
            }
            if finetune:
                row["SEP"]["finetuned"] = _finetuned(model, task, row["SEP"], test, args)
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows[name] = row
            _save(out, results)
            sep, mp = row["SEP"]["psnr"], row["MP"]["psnr"]
            log.info("%s / %s: SEP %.2f, MP %.2f", task, name, sep, mp)
    return results


def _finetuned(model, task, row, test, args) -> dict:
    """The cell's fine-tuning (its recipe, 20% of its steps, its data) of this selection."""
    keep = {s: np.asarray(row["keep"][s]) for s in STAGE_NAMES}
    m = study.pruned(model, task, keep)
    seed = mix_seed(args.seed, ord(task[0]))
    torch.manual_seed(seed)
    data = study.training_frames(task, args, mix_seed(seed, 2))
    result = study.fit(
        m, task, data, args.finetune_steps, args.finetune_lr, args, mix_seed(seed, 3), epochs=20
    )
    return {"steps": result.steps, **study.evaluate(m, task, test)}


def render(results: dict) -> str:
    """Markdown: per task, each setting's counts, path cut, MACs and PSNR / SSIM."""
    cfg = results["cell"]
    lines = [
        f"Cell: {cfg['model']} preset, {cfg['recipe']} recipe, {cfg['steps']} steps, "
        f"seed {cfg['seed']}; no fine-tuning unless stated.",
        "",
        "| task | setting | groups kept e1..d3 | path params (M) | path cut | MACs (G) | "
        "SEP PSNR / SSIM | MP PSNR / SSIM | SEP - MP | SEP fine-tuned - unpruned |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, rows in results["tasks"].items():
        base = rows["unpruned"]
        lines.append(
            f"| {task} | unpruned | {'/'.join(map(str, base['kept']))} | "
            f"{base['activated_params'] / 1e6:.3f} | - | {base['macs'] / 1e9:.2f} | "
            f"{base['psnr']:.2f} / {base['ssim']:.4f} | | | |"
        )
        for name, row in rows.items():
            if name == "unpruned":
                continue
            sep, mp = row["SEP"], row["MP"]
            cut = 1 - sep["activated_params"] / base["activated_params"]
            tuned = ""
            if "finetuned" in sep:
                tuned = f"{sep['finetuned']['psnr'] - base['psnr']:+.2f}"
            lines.append(
                f"| {task} | {name} | {'/'.join(map(str, sep['kept']))} | "
                f"{sep['activated_params'] / 1e6:.3f} | -{100 * cut:.1f}% | "
                f"{sep['macs'] / 1e9:.2f} | {sep['psnr']:.2f} / {sep['ssim']:.4f} | "
                f"{mp['psnr']:.2f} / {mp['ssim']:.4f} | {sep['psnr'] - mp['psnr']:+.2f} | "
                f"{tuned} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", type=Path, help="a finished sep_table7 cell's folder")
    parser.add_argument("--results", type=Path, required=True, help="the rows' JSON (resumable)")
    parser.add_argument("--rhos", default=",".join(map(str, RHOS)), help="Table 6's thresholds")
    parser.add_argument("--pools", default=",".join(map(str, POOLS)), help="Table 5's pool sizes")
    parser.add_argument("--rho-pool", type=int, default=300, help="pool size of Table 6's rows")
    parser.add_argument("--tasks", default="C,B,N")
    parser.add_argument("--finetune", action="store_true", help="also fine-tune every SEP row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    rhos = _floats(args.rhos, "--rhos")
    if not all(0 < r < 1 for r in rhos):
        parser.error(f"--rhos: every threshold must lie in (0, 1); got {args.rhos!r}")
    pools = [int(n) for n in _floats(args.pools, "--pools")]
    if not all(n >= 1 for n in [*pools, args.rho_pool]):
        parser.error(f"--pools, --rho-pool must be positive; got {args.pools!r}, {args.rho_pool}")
    if not (args.cell / "results.json").is_file():
        parser.error(f"cell: {args.cell} holds no results.json of a sep_table7 study")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    numba.config.THREADING_LAYER = "workqueue"  # as in sep_table7
    tasks = [t for t in args.tasks.split(",") if t]
    results = run(args.cell, args.results, rhos, pools, args.rho_pool, tasks, args.finetune)
    print(render(results))


if __name__ == "__main__":
    main()
