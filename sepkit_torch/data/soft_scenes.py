"""The ``"soft"`` style of procedural thermal scenes: simple shapes with soft edges.

The first generator of the project, kept selectable so that earlier runs can be reproduced:

- sky: cold, darker upwards, with faint low-frequency cloud structure;
- ground below a slightly tilted, undulating horizon: warmer, brighter towards the camera,
  with a fractal (1/f-like) texture and sometimes a warm road converging to the horizon;
- buildings standing on the horizon (warm walls, a grid of warmer or cooler windows,
  sometimes a pitched roof), trees as clusters of soft textured blobs;
- vehicles (warm body, hot engine and wheels) and people (hot head and body, smaller
  near the horizon) on the ground;
- soft edges everywhere (a logistic fall-off of each shape's signed distance, 0.6-1.8 px),
  a slight optical blur, a sensor-like low-frequency gain and offset field, and an
  automatic-gain-control style stretch of the 0.5-99.5 percentiles.

Limits: no perspective texture, no reflections, occlusion only by painting order, no
real radiometry; objects are simple shapes. Good enough to exercise the pipeline and to
train toy models; real thermal data (``docs/data.md`` shows both) has far richer structure,
and numbers measured on these scenes say nothing about real images.
"""

from __future__ import annotations

import torch

from sepkit_torch.data.degradations import gaussian_filter
from sepkit_torch.data.sampling import coin, randint, uniform
from sepkit_torch.data.shapes import (
    box_sdf,
    coverage,
    ellipse_sdf,
    fractal_field,
    paint,
    smooth_field,
)

__all__ = ["soft_scene"]


def soft_scene(h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """One scene of the ``"soft"`` style, ``(H, W)`` float64 in ``[0, 1]`` (module docstring)."""
    yy = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    xx = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    soft = uniform(g, 0.6, 1.8)

    # Horizon: tilted, undulating.
    horizon = uniform(g, 0.28, 0.6) * h
    tilt = uniform(g, -0.12, 0.12)
    wave = smooth_field(g, 1, w, 3)[0] * uniform(g, 0.0, 0.03) * h
    horizon_at = horizon + tilt * (xx[0] - w / 2) + wave  # (w,)
    below = coverage(horizon_at[None, :] - yy, soft)  # 1 on the ground

    # Sky: cold, darker upwards, faint clouds.
    sky_top, sky_low = uniform(g, 0.02, 0.15), uniform(g, 0.15, 0.35)
    t = (yy / max(horizon, 1.0)).clamp(0, 1)
    sky = sky_top + (sky_low - sky_top) * t**1.5
    sky = sky + uniform(g, 0.0, 0.05) * smooth_field(g, h, w, 4).clamp(-2, 2)

    # Ground: warmer towards the camera, fractal texture.
    ground_far, ground_near = uniform(g, 0.25, 0.45), uniform(g, 0.35, 0.6)
    depth = ((yy - horizon) / max(h - horizon, 1.0)).clamp(0, 1)
    ground = ground_far + (ground_near - ground_far) * depth
    ground = ground + uniform(g, 0.02, 0.07) * fractal_field(g, h, w)
    img = sky * (1 - below) + ground * below

    # A road converging to a point on the horizon.
    if coin(g, 0.5):
        vx = uniform(g, 0.2, 0.8) * w
        half_bottom = uniform(g, 0.15, 0.4) * w
        frac = depth.clamp_min(1e-3)
        sdf = (xx - vx).abs() - half_bottom * frac
        road = coverage(sdf, soft) * below * (yy > horizon).double()
        paint(img, road, uniform(g, 0.4, 0.6) + 0.02 * fractal_field(g, h, w, 3))

    # Buildings and trees on the horizon.
    for _ in range(randint(g, 0, 4)):
        cx = uniform(g, 0.0, 1.0) * w
        hw = uniform(g, 0.04, 0.15) * w
        height = uniform(g, 0.1, 0.45) * h
        base = float(horizon_at[min(int(cx), w - 1)]) + uniform(g, 0.0, 0.05) * h
        top = base - height
        wall = uniform(g, 0.4, 0.7)
        sdf = box_sdf(yy, xx, (top + base) / 2, cx, height / 2, hw)
        if coin(g, 0.4):  # pitched roof
            roof_h = uniform(g, 0.2, 0.6) * hw
            dx = (xx - cx).abs()
            roof = torch.maximum(yy - top, top - roof_h * (1 - dx / hw) - yy)
            sdf = torch.minimum(sdf, torch.maximum(roof, dx - hw))
        shade = wall + 0.05 * (xx - cx) / hw * uniform(g, -1.0, 1.0)
        paint(img, coverage(sdf, soft), shade)
        # Windows: one periodic rounded box per cell, each cell warmer, cooler or absent.
        rows, cols = randint(g, 2, 8), randint(g, 2, 6)
        cell_h, cell_w = height / rows, 2 * hw / cols
        offset = uniform(g, -0.25, 0.3)
        temps = wall + offset + 0.05 * (2 * torch.rand((rows, cols), generator=g) - 1)
        lit = torch.rand((rows, cols), generator=g) >= 0.2
        r = ((yy - top) / cell_h).floor().clamp(0, rows - 1).long()
        c = ((xx - cx + hw) / cell_w).floor().clamp(0, cols - 1).long()
        wy = top + (r + 0.5) * cell_h
        wx = cx - hw + (c + 0.5) * cell_w
        win = box_sdf(yy, xx, wy, wx, 0.25 * cell_h, 0.25 * cell_w)
        inside = (sdf < 0).double() * lit[r, c].double()
        paint(img, coverage(win, soft) * inside, temps.double()[r, c])
    for _ in range(randint(g, 0, 3)):
        cx = uniform(g, 0.0, 1.0) * w
        base = float(horizon_at[min(int(cx), w - 1)])
        size_t = uniform(g, 0.03, 0.1) * h
        leaves = uniform(g, 0.25, 0.45) + 0.05 * fractal_field(g, h, w)
        for _ in range(randint(g, 3, 7)):
            by = base - size_t * uniform(g, 0.5, 2.0)
            bx = cx + size_t * uniform(g, -1.0, 1.0)
            r = size_t * uniform(g, 0.5, 1.0)
            paint(img, coverage(ellipse_sdf(yy, xx, by, bx, r, r), soft * 1.5), leaves)

    # Vehicles and people on the ground, smaller near the horizon.
    for _ in range(randint(g, 0, 3)):
        cy = horizon + uniform(g, 0.1, 0.9) * (h - horizon)
        scale = 0.2 + 0.8 * (cy - horizon) / max(h - horizon, 1.0)
        hw, hh = uniform(g, 0.06, 0.12) * w * scale, uniform(g, 0.025, 0.05) * w * scale
        cx = uniform(g, 0.0, 1.0) * w
        body = uniform(g, 0.5, 0.7)
        paint(img, coverage(box_sdf(yy, xx, cy, cx, hh, hw, radius=0.4 * hh), soft), body)
        front = cx + hw * (0.7 if coin(g, 0.5) else -0.7)
        engine = ellipse_sdf(yy, xx, cy, front, 0.6 * hh, 0.3 * hw)
        paint(img, coverage(engine, 2 * soft), uniform(g, 0.75, 0.95))
        for side in (-0.6, 0.6):
            wheel = ellipse_sdf(yy, xx, cy + hh, cx + side * hw, 0.45 * hh, 0.45 * hh)
            paint(img, coverage(wheel, soft), uniform(g, 0.65, 0.85))
    for _ in range(randint(g, 0, 4)):
        feet = horizon + uniform(g, 0.05, 0.95) * (h - horizon)
        tall = (0.05 + 0.25 * (feet - horizon) / max(h - horizon, 1.0)) * h
        cx = uniform(g, 0.0, 1.0) * w
        warm = uniform(g, 0.75, 0.95)
        body = box_sdf(yy, xx, feet - 0.42 * tall, cx, 0.42 * tall, 0.13 * tall, radius=0.08 * tall)
        head = ellipse_sdf(yy, xx, feet - 0.9 * tall, cx, 0.09 * tall, 0.075 * tall)
        person = coverage(torch.minimum(body, head), soft)
        paint(img, person, warm - 0.1 * ((yy - feet + tall) / tall).clamp(0, 1))

    # Sensor: slight optical blur, low-frequency gain and offset, AGC-style stretch.
    img = gaussian_filter(img[None, None], 5, uniform(g, 0.4, 0.9))[0, 0]
    gain = 1 + uniform(g, 0.0, 0.06) * smooth_field(g, h, w, 2)
    offset = uniform(g, 0.0, 0.04) * smooth_field(g, h, w, 2)
    img = img * gain + offset
    sample = img.flatten()[:: max(1, h * w // 65536)]
    lo, hi = torch.quantile(sample, torch.tensor([0.005, 0.995], dtype=torch.float64))
    out_lo, out_hi = uniform(g, 0.0, 0.08), uniform(g, 0.85, 1.0)
    img = out_lo + (img - lo) / max(float(hi - lo), 1e-6) * (out_hi - out_lo)
    return img.clamp(0.0, 1.0)
