"""The SEP study's row names and its Markdown tables (``benchmarks/sep_table7.py`` writes
them: one cell's ``results.md`` and a grid's ``summary-<model>.md``)."""

from __future__ import annotations

import numpy as np

from sepkit_torch.training import RECIPES

# The SEP variants: options of select_groups (method, tie, criterion, budget). The first
# is the published rule with this project's random ties, the second the public code's
# exact selection; the contribution criterion and the budget are this project's.
SEP_VARIANTS = {
    "SEP": {"tie": "random"},
    "SEP (published ties)": {"tie": "published"},
    "SEP, ties by index": {"tie": "index"},
    "SEP, ties by contribution": {"tie": "contribution"},
    "SEP, CoDeSEG game": {"method": "game"},
    "SEP, multilevel": {"method": "multilevel"},
    "SEP (contribution)": {"criterion": "contribution"},
    "SEP (budget)": {"criterion": "contribution", "budget": 0.3},
}
# The selections MP, SRP and random groups are compared with, at the same counts, and the
# suffix of those rows.
REFERENCES = {
    "SEP": "",
    "SEP (published ties)": " @ SEP (published ties) counts",
    "SEP (contribution)": " @ SEP (contribution) counts",
    "SEP (budget)": " @ SEP (budget) counts",
}
# Selections also scored with their exit convolutions refitted on the pool
# (compensate_exits), each beside MP and SRP at its counts, refitted the same way.
COMPENSATED = ("SEP (budget)",)

#: The suffix of the fine-tuned rows whose weights are chosen on validation frames.
VALIDATED = " fine-tuned, validated"
#: The rows of every fine-tuned selection.
TUNED_SUFFIXES = (" fine-tuned", VALIDATED)


def compensated_name(name: str) -> str:
    """The row name of `name`'s selection with refitted exits."""
    head, at, counts = name.partition(" @ ")
    return f"{head}, compensated{at}{counts}"


_LOSS_TEXT = {"paper": "L1 loss", "code": "loss L1 + 0.5 (1 - MS-SSIM) + 0.1 Sobel L1"}


def recipe_text(name: str, lr: float) -> str:
    """What the training recipe `name` of ``training.RECIPES`` does, in a few words."""
    how = RECIPES[name]
    optimizer = {"adam": "Adam", "adamw": "AdamW"}[how.optimizer]
    if how.weight_decay:
        optimizer += f" (weight decay {how.weight_decay:g})"
    parts = [f"{name} recipe: {optimizer} lr {lr:g}"]
    if how.warmup_epochs:
        parts.append(f"{how.warmup_epochs} epoch{'s' * (how.warmup_epochs > 1)} of warm-up")
    end = f"{how.min_lr:g}" if how.min_lr is not None else "lr / 100"
    parts.append(f"cosine to {end}")
    parts.append(_LOSS_TEXT.get(how.loss, f"the {how.loss!r} loss"))
    if how.ema_decay is not None:
        parts.append(f"weight average {how.ema_decay:g}")
    if how.clip_norm is not None:
        parts.append(f"clipping at {how.clip_norm:g}")
    if how.patience is not None:
        parts.append(f"early stopping after {how.patience} validations without gain")
    return ", ".join(parts)


def render(results: dict) -> str:
    cfg = results["config"]
    lines = [
        f"## Table 7, {cfg['model']} preset (rho {cfg['rho']}, seed {cfg['seed']})",
        "",
        f"Procedural frames {cfg['frame'][0]}x{cfg['frame'][1]} cut into {cfg['crop']}-px windows "
        f"at stride {cfg['stride']}; {cfg['pretrain_steps']} pretraining and {cfg['steps']} "
        f"training steps per task (batch {cfg['batch']}, "
        f"{recipe_text(cfg.get('recipe', 'paper'), cfg['lr'])}); "
        f"SEP pool: {cfg['pool']} whole degraded training frames; test: {cfg['test']} whole "
        f"frames. Params/MACs of the task's path at 1x1x512x640.",
    ]
    for task, rows in results.get("tasks", {}).items():
        full = rows.get("unpruned")
        if full is None:
            continue
        lines += [
            "",
            f"### Task {task}",
            "",
            "Degraded input {psnr:.2f} dB / {ssim:.4f}.".format(**rows["degraded input"]),
            "",
            "| method | groups kept e1..d3 | PSNR | SSIM | dPSNR | activated params | MACs (G) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name in _table_order(rows):
            r = rows[name]
            sd = f" (sd {r['psnr_sd']:.2f})" if "psnr_sd" in r else ""
            lines.append(
                f"| {name} | {'/'.join(map(str, r['kept']))} | {r['psnr']:.2f}{sd} "
                f"| {r['ssim']:.4f} "
                f"| {r['psnr'] - full['psnr']:+.2f} | {r['activated_params']:,} "
                f"({r['activated_params'] / full['activated_params'] - 1:+.1%}) | "
                f"{r['macs'] / 1e9:.2f} ({r['macs'] / full['macs'] - 1:+.1%}) |"
            )
        tuned = {n: r for n, r in rows.items() if n.endswith("fine-tuned")}
        if tuned:
            marks = list(next(iter(tuned.values()))["curve"])
            lines += [
                "",
                "| fine-tuned | "
                + " | ".join(f"{m} steps" for m in marks)
                + " | vs unpruned | best on validation: step, vs unpruned |",
                "|---|" + "---:|" * (len(marks) + 2),
            ]
            for n, r in tuned.items():
                # early stopping can end a fine-tuning before a mark
                cells = [f"{r['curve'][m]['psnr']:.2f}" if m in r["curve"] else "-" for m in marks]
                v = rows.get(n[: -len(" fine-tuned")] + VALIDATED)
                chosen = "-" if v is None else f"{v['step']}, {v['psnr'] - full['psnr']:+.2f}"
                lines.append(
                    f"| {n[: -len(' fine-tuned')]} | "
                    + " | ".join(cells)
                    + f" | {r['psnr'] - full['psnr']:+.2f} | {chosen} |"
                )
    return "\n".join(lines) + "\n"


def mean_sd(values) -> str:
    """'mean ± sd' (sample sd) of the values that are not None; one value alone; '-' for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


#: The summary's comparisons: a selection, then MP, SRP and random groups at its counts.
SUMMARY_COMPARISONS = [
    (n, "MP" + s, "SRP" + s, f"random x5{s}", "exit energy" + s) for n, s in REFERENCES.items()
] + [
    (
        compensated_name(n),
        compensated_name("MP" + REFERENCES[n]),
        compensated_name("SRP" + REFERENCES[n]),
        None,
        None,
    )
    for n in COMPENSATED
]
#: The fine-tuned selections of the summary.
SUMMARY_TUNED = (
    "SEP",
    "SEP (published ties)",
    "MP",
    "SRP",
    "SEP (contribution)",
    "SEP (budget)",
    "SEP (budget), compensated",
)


def render_summary(cells: list[dict]) -> str:
    """The grid's tables: per training length, recipe and task, the mean ± sd over the
    training seeds of the share of the branch SEP removes, of each selection's PSNR
    without fine-tuning (with MP, SRP and random groups at its counts) and after
    fine-tuning."""
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        cfg = cell["config"]
        groups.setdefault((cfg["steps"], cfg["recipe"]), []).append(cell)
    model = cells[0]["config"]["model"] if cells else "?"
    lines = [
        f"## SEP study, {model} preset: training length, recipe and seeds",
        "",
        "Mean ± sd over the training seeds (the test frames are the same for every seed). "
        "Params: the task's path at 1x1x512x640, change against the unpruned branch. "
        "No fine-tuning unless said. 'unpruned': the raw weights that pruning reads; with "
        "the code recipe, fine-tuned rows and their reference are its best weight average, "
        "as the public code reports them.",
    ]
    for selection, mp_name, srp_name, random_name, energy_name in SUMMARY_COMPARISONS:
        lines += [
            "",
            f"### {selection}, and the baselines at its counts (PSNR dB)",
            "",
            "| steps | recipe | task | seeds | path params | unpruned | "
            f"{selection} | MP | SRP | random | exit energy | {selection} - MP | "
            f"{selection} - max(MP, SRP) |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (steps, recipe), group in sorted(groups.items()):
            tasks = list(group[0].get("tasks", {}))
            for task in tasks:
                rows = [c["tasks"][task] for c in group if selection in c["tasks"].get(task, {})]
                if not rows:
                    continue

                def col(name, rows=rows):
                    return [r[name]["psnr"] for r in rows if name in r]

                cut = [
                    100 * (r[selection]["activated_params"] / r["unpruned"]["activated_params"] - 1)
                    for r in rows
                ]
                # pruning reads the raw weights: compare with them (the code recipe
                # reports its weight average as "unpruned")
                raw = [r.get("unpruned, raw weights", r["unpruned"])["psnr"] for r in rows]
                sel, mp, srp = col(selection), col(mp_name), col(srp_name)
                rnd = col(random_name) if random_name else []
                energy = col(energy_name) if energy_name else []
                lines.append(
                    f"| {steps} | {recipe} | {task} | {len(rows)} | {mean_sd(cut)}% | "
                    f"{mean_sd(raw)} | {mean_sd(sel)} | {mean_sd(mp)} | "
                    f"{mean_sd(srp)} | {mean_sd(rnd)} | {mean_sd(energy)} | "
                    f"{mean_sd([a - b for a, b in zip(sel, mp, strict=True)])} | "
                    f"{mean_sd([a - max(b, c) for a, b, c in zip(sel, mp, srp, strict=True)])} |"
                )
    for suffix, title in (
        (" fine-tuned", "After fine-tuning (20% of the training steps)"),
        (
            VALIDATED,
            "After fine-tuning, the weights best on validation frames (the start "
            "included: a fine-tuning that keeps its start unless validation improves)",
        ),
    ):
        lines += [
            "",
            f"### {title}, minus the unpruned branch (dB)",
            "",
            "| steps | recipe | task | " + " | ".join(SUMMARY_TUNED) + " |",
            "|---:|---|---|" + "---:|" * len(SUMMARY_TUNED),
        ]
        for (steps, recipe), group in sorted(groups.items()):
            for task in list(group[0].get("tasks", {})):
                cells_ = [c["tasks"][task] for c in group if "unpruned" in c["tasks"].get(task, {})]
                cols = [
                    mean_sd(
                        [
                            r[name + suffix]["psnr"] - r["unpruned"]["psnr"]
                            for r in cells_
                            if name + suffix in r
                        ]
                    )
                    for name in SUMMARY_TUNED
                ]
                lines.append(f"| {steps} | {recipe} | {task} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def _table_order(rows: dict) -> list[str]:
    """Each reference selection followed by the baselines at its counts, then the other
    SEP variants."""
    order = ["unpruned"]
    for reference, suffix in REFERENCES.items():
        order += [reference] + [n + suffix for n in ("MP", "SRP")]
        order += [
            n
            for n in rows
            if n.startswith("random x") and (n.endswith(suffix) if suffix else " @ " not in n)
        ]
    order += [n for n in SEP_VARIANTS if n not in order]
    extra = [n for n, r in rows.items() if "kept" in r and not n.endswith("fine-tuned")]
    return [n for n in order if n in rows] + [n for n in extra if n not in order]
