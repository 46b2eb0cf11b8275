"""The ``"detailed"`` style of procedural thermal scenes: the structure of thermal footage.

A scene is a view over flat ground from about head height, white-hot, drawn from a seed
alone (CPU, float64), in the order a painter would (far to near):

- sky: cold, darker upwards, often with warmer clouds of fractal texture;
- ground: a horizon with a vanishing point, the ground's texture in perspective (finer
  towards the horizon), often a road with lane markings converging to the vanishing point,
  and a distant skyline or tree line along the horizon;
- buildings: a front facade and often a side face in perspective, floors, window grids
  with frames (glass mostly mirrors the cold sky; some windows are warm), cornices, pitched
  roofs, chimneys; sometimes an elevated deck on pillars with a railing (a bridge);
- vegetation: trees and bushes with ragged outlines and leaf texture at every scale;
- thin structures: poles and lamps; warm vehicles (hot engine and wheels, cool glass) and
  hot people, smaller towards the horizon;
- the sensor: sharp edges (anti-aliased over 0.3-0.7 px), a slight optical blur, automatic
  gain control (a percentile stretch blended with histogram equalization, then a gamma),
  and a faint grain.

Object sizes are relative to the frame, edges and textures to the pixel: a scene reads
like a 640 x 512 camera frame at that size, and like a thumbnail at 48 px (cut training
windows from larger frames instead). Each object is drawn within its bounding box only.
``docs/data.md`` measures how close these scenes come to real thermal images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sepkit_torch.data.degradations import gaussian_filter
from sepkit_torch.data.sampling import coin, randint, uniform
from sepkit_torch.data.shapes import box_sdf, coverage, ellipse_sdf, paint, power_law_field

__all__ = ["detailed_scene"]


@dataclass
class _Canvas:
    """What every drawing step shares: the image, the generator, the view's geometry and
    two texture fields that objects sample at random offsets (cheaper than one each)."""

    img: torch.Tensor
    g: torch.Generator
    edge: float  # anti-aliasing width of sharp edges, pixels
    horizon: float  # row of the horizon
    vx: float  # column of the vanishing point
    fine: torch.Tensor  # texture with a natural-image spectrum (f^-2)
    ragged: torch.Tensor  # outlines of vegetation (f^-2)

    @property
    def h(self) -> int:
        return self.img.shape[0]

    @property
    def w(self) -> int:
        return self.img.shape[1]

    def u(self, lo: float, hi: float) -> float:
        return uniform(self.g, lo, hi)

    def nearness(self, row: float) -> float:
        """0 at the horizon, 1 at the bottom row: how near a thing standing at `row` is."""
        return min(max((row - self.horizon) / max(self.h - self.horizon, 1.0), 0.0), 1.0)

    def cover(self, sdf: torch.Tensor) -> torch.Tensor:
        return coverage(sdf, self.edge)

    def region(self, top: float, bottom: float, left: float, right: float):
        """Rows and columns of a bounding box (with a margin), clipped; None if empty."""
        y0, y1 = max(int(math.floor(top)) - 2, 0), min(int(math.ceil(bottom)) + 3, self.h)
        x0, x1 = max(int(math.floor(left)) - 2, 0), min(int(math.ceil(right)) + 3, self.w)
        if y0 >= y1 or x0 >= x1:
            return None
        return _Region(self, y0, y1, x0, x1)


class _Region:
    """A window of the canvas: its coordinates, its pixels (a view) and texture samples."""

    def __init__(self, c: _Canvas, y0: int, y1: int, x0: int, x1: int):
        self.c = c
        self.rows, self.cols = slice(y0, y1), slice(x0, x1)
        self.yy = torch.arange(y0, y1, dtype=torch.float64)[:, None].expand(y1 - y0, x1 - x0)
        self.xx = torch.arange(x0, x1, dtype=torch.float64)[None, :].expand(y1 - y0, x1 - x0)
        self.pixels = c.img[self.rows, self.cols]

    def texture(self, field: torch.Tensor) -> torch.Tensor:
        """`field` (periodic) at this window's size, from a random offset."""
        h, w = field.shape
        oy, ox = randint(self.c.g, 0, h - 1), randint(self.c.g, 0, w - 1)
        iy = (torch.arange(self.rows.start, self.rows.stop) + oy) % h
        ix = (torch.arange(self.cols.start, self.cols.stop) + ox) % w
        return field[iy[:, None], ix[None, :]]

    def paint(self, sdf: torch.Tensor, value) -> None:
        paint(self.pixels, self.c.cover(sdf), value)


def _sky(c: _Canvas) -> None:
    yy = torch.arange(c.h, dtype=torch.float64)[:, None].expand(c.h, c.w)
    top = c.u(0.0, 0.12)
    low = top + c.u(0.08, 0.3)
    t = (yy / max(c.horizon, 1.0)).clamp(0, 1)
    c.img.copy_(top + (low - top) * t ** c.u(0.7, 2.5))
    if coin(c.g, 0.55):  # clouds: warmer than clear sky, ragged, thinning towards the horizon
        shape = power_law_field(c.g, c.h, c.w, 3.2)
        density = torch.sigmoid((shape - c.u(0.0, 1.2)) / c.u(0.08, 0.3))
        texture = 1.0 + 0.3 * c.fine
        c.img.add_(c.u(0.04, 0.2) * density * texture * (1.0 - t**3))


def _ground(c: _Canvas) -> None:
    """Ground below the horizon, its texture mapped in perspective onto the ground plane."""
    r = c.region(c.horizon - 2, c.h, 0, c.w)
    if r is None:
        return
    d = (r.yy - c.horizon).clamp_min(0.5)
    span = max(c.h - c.horizon, 1.0)
    near = (d / span).clamp(0, 1)
    far_value, near_value = c.u(0.12, 0.45), c.u(0.2, 0.6)
    ground = far_value + (near_value - far_value) * near ** c.u(0.5, 1.5)
    # Ground-plane coordinates (camera height 1, focal length h): lateral X = (x - vx) / d
    # and distance Z = h / d, d the rows below the horizon. The texture's texels are
    # `texel` pixels wide at the bottom row and shrink with distance.
    texel = c.u(0.5, 2.0)
    tx = (r.xx - c.vx) * span / d / texel
    tz = span**2 / d / texel
    texture = _periodic(power_law_field(c.g, 256, 256, c.u(1.6, 2.6)), tz, tx)
    fade = d / (d + 0.03 * c.h)  # texture too fine to resolve near the horizon averages out
    ground = ground + c.u(0.015, 0.06) * texture * fade
    ground = ground + c.u(0.0, 0.05) * r.texture(c.ragged)  # large patches
    r.paint(c.horizon - r.yy, ground)
    if coin(c.g, 0.55):
        _road(c, r, (r.xx - c.vx) / d, c.h / d, d)


def _periodic(texture: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a periodic `texture` at fractional coordinates."""
    th, tw = texture.shape
    y0, x0 = torch.floor(py), torch.floor(px)
    fy, fx = py - y0, px - x0
    y0, x0 = y0.long().remainder(th), x0.long().remainder(tw)
    y1, x1 = (y0 + 1).remainder(th), (x0 + 1).remainder(tw)
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _road(c: _Canvas, r: _Region, lateral, distance, d) -> None:
    """A road to the vanishing point: sharp edges, a dashed centre line, solid edge lines.

    Widths are in camera heights on the ground; times `d` (pixels per ground unit at each
    row) they become pixels.
    """
    half, centre = c.u(0.8, 2.5), c.u(-2.0, 2.0)
    value = c.u(0.2, 0.6)
    off = (lateral - centre).abs()
    on_road = c.cover((off - half) * d) * (r.yy > c.horizon + 1).double()
    paint(r.pixels, on_road, value + c.u(0.01, 0.04) * r.texture(c.fine))
    marking = value + c.u(0.1, 0.3) * (1 if coin(c.g, 0.7) else -1)
    line = c.u(0.04, 0.1)
    period, duty = c.u(2.0, 6.0), c.u(0.3, 0.6)
    dashes = ((distance / period).remainder(1.0) < duty).double()
    paint(r.pixels, on_road * c.cover((off - line) * d) * dashes, marking)
    for side in (-1.0, 1.0):
        edge_line = (lateral - (centre + side * (half - 2 * line))).abs()
        paint(r.pixels, on_road * c.cover((edge_line - line) * d), marking)


def _skyline(c: _Canvas) -> None:
    """Distant buildings (blocks) or trees (a ragged line) standing on the horizon."""
    x = torch.arange(c.w, dtype=torch.float64)
    if coin(c.g, 0.5):
        top = torch.zeros(c.w, dtype=torch.float64)
        for _ in range(randint(c.g, 8, 30)):
            left, width = c.u(-0.05, 1.0) * c.w, c.u(0.01, 0.08) * c.w
            height = torch.tensor(c.u(0.005, 0.09) * c.h, dtype=torch.float64)
            top = torch.where((x >= left) & (x < left + width), torch.maximum(top, height), top)
    else:
        profile = power_law_field(c.g, 1, c.w, 2.2)[0]
        top = (c.u(0.005, 0.04) * c.h * (1.0 + 0.6 * profile)).clamp_min(0.0)
    r = c.region(c.horizon - float(top.max()), c.horizon + 1, 0, c.w)
    if r is None:
        return
    sdf = torch.maximum((c.horizon - top)[None, r.cols] - r.yy, r.yy - c.horizon - 1)
    r.paint(sdf, c.u(0.15, 0.45) + 0.02 * r.texture(c.fine))


def _facade(c: _Canvas, left, right, top_at: Callable, bottom_at: Callable, wall, windows):
    """A wall between columns `left`..`right`, whose top and bottom rows are straight lines
    ``top_at(x)``, ``bottom_at(x)`` (a face in perspective when they slope), with floors and
    a window grid in the face's own coordinates ``(u, v)``."""
    ends = torch.tensor([left, right], dtype=torch.float64)
    r = c.region(float(top_at(ends).min()), float(bottom_at(ends).max()), left, right)
    if r is None:
        return
    top, bottom = top_at(r.xx), bottom_at(r.xx)
    span = (bottom - top).clamp_min(1.0)
    inside = c.cover(
        torch.maximum(
            torch.maximum(left - r.xx, r.xx - right), torch.maximum(top - r.yy, r.yy - bottom)
        )
    )
    v = ((r.yy - top) / span).clamp(0, 1)
    u = ((r.xx - left) / max(right - left, 1.0)).clamp(0, 1)
    shade = wall + c.u(-0.06, 0.06) * (v - 0.5) + c.u(0.005, 0.03) * r.texture(c.fine)
    paint(r.pixels, inside, shade)
    width_px = right - left
    if not windows or width_px < 6:
        return
    floor_px = max(c.u(0.03, 0.07) * c.h * (0.4 + c.nearness(float(bottom_at(ends).max()))), 3.0)
    rows = max(1, round(float(span.mean()) / floor_px))
    cols = max(1, round(width_px / (floor_px * c.u(0.6, 1.6))))
    fill_u, fill_v = c.u(0.3, 0.7), c.u(0.3, 0.65)
    cu, cv = u * cols, v * rows
    cell_w, cell_h = width_px / cols, span / rows
    du = ((cu - cu.floor()) - 0.5).abs() - fill_u / 2  # in cells; negative inside
    dv = ((cv - cv.floor()) - 0.5).abs() - fill_v / 2
    window = torch.maximum(du * cell_w, dv * cell_h)
    col_i = cu.floor().clamp(0, cols - 1).long()
    row_i = cv.floor().clamp(0, rows - 1).long()
    glass = wall + c.u(-0.35, 0.1)  # glass mirrors the cold sky, or shows a warm room
    warm = torch.rand((rows, cols), generator=c.g, dtype=torch.float64) < c.u(0.0, 0.3)
    jitter = 0.04 * torch.randn((rows, cols), generator=c.g, dtype=torch.float64)
    panes = torch.where(warm, wall + c.u(0.1, 0.3), glass + jitter)[row_i, col_i]
    frame = c.u(0.7, 2.0)
    frame_value = wall + c.u(-0.1, 0.15)
    shop_floor = (row_i < rows - 1).double() if rows > 2 and coin(c.g, 0.5) else 1.0
    paint(r.pixels, inside * c.cover(window) * shop_floor, frame_value)
    paint(r.pixels, inside * c.cover(window + frame) * shop_floor, panes)
    if coin(c.g, 0.6):  # floor slabs: a line at every floor
        slab = (cv - cv.round()).abs() * cell_h - c.u(0.4, 1.5)
        paint(r.pixels, inside * c.cover(slab), wall + c.u(-0.12, 0.12))


def _building(c: _Canvas, bottom: float) -> None:
    near = c.nearness(bottom)
    height = c.u(0.15, 1.0) * c.h * (0.35 + near)
    width = c.u(0.1, 0.5) * c.w * (0.35 + near)
    left = c.u(-0.2, 1.0) * c.w - width / 2
    right, top = left + width, bottom - height
    wall = c.u(0.3, 0.75)
    _facade(
        c,
        left,
        right,
        lambda x: torch.full_like(x, top),
        lambda x: torch.full_like(x, bottom),
        wall,
        windows=True,
    )
    # A side face converging to the vanishing point, on the side that faces it.
    if coin(c.g, 0.6) and abs(c.vx - (left + right) / 2) > width / 2:
        start = right if c.vx > right else left
        end = start + c.u(0.1, 0.5) * (c.vx - start)
        k_top = (c.horizon - top) / (c.vx - start)
        k_bottom = (c.horizon - bottom) / (c.vx - start)
        _facade(
            c,
            min(start, end),
            max(start, end),
            lambda x: top + (x - start) * k_top,
            lambda x: bottom + (x - start) * k_bottom,
            wall + c.u(-0.15, 0.1),
            windows=coin(c.g, 0.7),
        )
    centre = (left + right) / 2
    cornice = c.u(0.5, 3.0) * (0.5 + near)
    r = c.region(top - 1, top + cornice, left - cornice, right + cornice)
    if r is not None:
        r.paint(
            box_sdf(r.yy, r.xx, top + cornice / 2, centre, cornice / 2, width / 2 + cornice),
            wall + c.u(-0.15, 0.15),
        )
    if coin(c.g, 0.35):  # pitched roof
        rise = c.u(0.1, 0.5) * width
        r = c.region(top - rise, top, left, right)
        if r is not None:
            dx = (r.xx - centre).abs()
            roof = torch.maximum(r.yy - top, top - rise * (1 - dx / (width / 2)) - r.yy)
            r.paint(torch.maximum(roof, dx - width / 2), wall + c.u(-0.2, 0.05))
    for _ in range(randint(c.g, 0, 3)):  # chimneys, antennas
        cx = c.u(left, right)
        hw, hh = c.u(0.3, 3.0) * (0.5 + near), c.u(0.01, 0.05) * c.h
        r = c.region(top - 2 * hh, top, cx - hw, cx + hw)
        if r is not None:
            r.paint(box_sdf(r.yy, r.xx, top - hh, cx, hh, hw), wall + c.u(-0.1, 0.3))


def _bridge(c: _Canvas) -> None:
    """An elevated deck converging to the vanishing point, on pillars, with a railing."""
    start = c.u(0.0, 1.0) * c.w
    start_top = c.horizon + c.u(0.05, 0.4) * (c.h - c.horizon)
    lift = c.u(0.2, 0.7)  # the deck's height above the ground, in camera heights
    r = c.region(c.horizon - 0.05 * c.h, c.h, min(start, c.vx), max(start, c.vx))
    if r is None:
        return
    slope = (c.horizon - start_top) / (c.vx - start + 1e-6)
    deck_top = start_top + (r.xx - start) * slope
    scale = ((deck_top - c.horizon) / (start_top - c.horizon)).clamp_min(1e-3)  # 1 / distance
    on = ((r.xx - start) * (c.vx - start) >= 0).double() * (scale > 0.01).double()
    deck_bottom = deck_top + c.u(0.02, 0.06) * c.h * scale
    ground = c.horizon + (deck_top - c.horizon) / (1 - lift)
    value = c.u(0.45, 0.8)
    paint(r.pixels, c.cover(torch.maximum(deck_top - r.yy, r.yy - deck_bottom)) * on, value)
    # Pillars and railing posts repeat evenly in distance (1 / scale): the pixels per
    # period follow from d(1/scale)/dx.
    per_px = abs(slope / (start_top - c.horizon)) / scale**2

    def posts(count: float, width: float) -> torch.Tensor:
        phase = count / scale
        return ((phase - phase.round()).abs() - width) / (count * per_px)

    pillars = torch.maximum(
        posts(c.u(0.3, 1.0), 0.06), torch.maximum(deck_bottom - r.yy, r.yy - ground)
    )
    paint(r.pixels, c.cover(pillars) * on, value - c.u(0.05, 0.25))
    rail_top = deck_top - c.u(0.01, 0.03) * c.h * scale
    railing = torch.maximum(
        posts(c.u(4.0, 10.0), 0.1), torch.maximum(rail_top - r.yy, r.yy - deck_top)
    )
    rail = (r.yy - rail_top).abs() - (0.3 + 0.7 * scale)
    paint(r.pixels, c.cover(torch.minimum(railing, rail)) * on, value + c.u(-0.1, 0.15))


def _tree(c: _Canvas, base: float, leaves: torch.Tensor) -> None:
    near = c.nearness(base)
    radius = c.u(0.03, 0.14) * c.h * (0.3 + near)
    cx = c.u(0.0, 1.0) * c.w
    trunk_h = radius * c.u(0.2, 1.0)
    cy = base - trunk_h - radius
    stretch = c.u(0.8, 1.3)
    value = c.u(0.25, 0.6)
    trunk_w = radius * c.u(0.06, 0.15)
    r = c.region(base - trunk_h - 1, base, cx - trunk_w, cx + trunk_w)
    if r is not None:
        r.paint(
            box_sdf(r.yy, r.xx, base - trunk_h / 2, cx, trunk_h / 2 + 1, trunk_w),
            value + c.u(-0.1, 0.1),
        )
    reach = 1.6 * radius
    r = c.region(cy - reach * stretch, cy + reach * stretch, cx - reach, cx + reach)
    if r is None:
        return
    outline = ellipse_sdf(r.yy, r.xx, cy, cx, radius * stretch, radius)
    outline = outline + radius * c.u(0.2, 0.5) * r.texture(c.ragged)
    r.paint(outline, value + c.u(0.05, 0.15) * r.texture(leaves))


def _pole(c: _Canvas, base: float) -> None:
    near = c.nearness(base)
    height = c.u(0.1, 0.5) * c.h * (0.3 + near)
    cx = c.u(0.0, 1.0) * c.w
    half = c.u(0.4, 1.8) * (0.4 + near)
    value = c.u(0.3, 0.75)
    arm = c.u(3.0, 12.0) * (0.4 + near) * (1 if coin(c.g, 0.5) else -1)
    lamp = coin(c.g, 0.5)
    r = c.region(base - height - 4 * half, base, cx - abs(arm) - 4 * half, cx + abs(arm) + 4 * half)
    if r is None:
        return
    r.paint(box_sdf(r.yy, r.xx, base - height / 2, cx, height / 2, half), value)
    if lamp:  # a short arm and a hot head
        r.paint(box_sdf(r.yy, r.xx, base - height, cx + arm / 2, half, abs(arm) / 2), value)
        head = ellipse_sdf(r.yy, r.xx, base - height + 2 * half, cx + arm, 2 * half, 3 * half)
        r.paint(head, c.u(0.7, 1.0))


def _vehicle(c: _Canvas, base: float) -> None:
    near = c.nearness(base)
    length = c.u(0.08, 0.16) * c.w * (0.15 + near)
    height = length * c.u(0.3, 0.45)
    cx = c.u(0.0, 1.0) * c.w
    body_value = c.u(0.45, 0.7)
    r = c.region(base - 1.1 * height, base, cx - length / 2, cx + length / 2)
    if r is None:
        return
    yy, xx = r.yy, r.xx
    body = box_sdf(yy, xx, base - height * 0.45, cx, height * 0.3, length / 2, radius=height * 0.15)
    cabin = box_sdf(
        yy, xx, base - height * 0.85, cx, height * 0.22, length * 0.3, radius=height * 0.1
    )
    r.paint(torch.minimum(body, cabin), body_value)
    r.paint(
        box_sdf(yy, xx, base - height * 0.85, cx, height * 0.15, length * 0.25),
        body_value - c.u(0.15, 0.35),
    )
    front = cx + length * 0.38 * (1 if coin(c.g, 0.5) else -1)
    r.paint(
        ellipse_sdf(yy, xx, base - height * 0.45, front, height * 0.22, length * 0.12),
        c.u(0.75, 1.0),
    )
    for side in (-0.32, 0.32):
        wheel = ellipse_sdf(
            yy, xx, base - height * 0.12, cx + side * length, height * 0.18, height * 0.18
        )
        r.paint(wheel, c.u(0.65, 0.9))


def _person(c: _Canvas, feet: float) -> None:
    near = c.nearness(feet)
    tall = (0.04 + 0.3 * near) * c.h
    cx = c.u(0.0, 1.0) * c.w
    skin = c.u(0.8, 1.0)
    clothes = skin - c.u(0.0, 0.25)
    r = c.region(feet - tall, feet, cx - 0.15 * tall, cx + 0.15 * tall)
    if r is None:
        return
    yy, xx = r.yy, r.xx
    legs = box_sdf(yy, xx, feet - 0.24 * tall, cx, 0.24 * tall, 0.1 * tall)
    gap = box_sdf(yy, xx, feet - 0.18 * tall, cx, 0.18 * tall, 0.015 * tall)
    r.paint(torch.maximum(legs, -gap), clothes - c.u(0.0, 0.1))
    r.paint(
        box_sdf(yy, xx, feet - 0.62 * tall, cx, 0.17 * tall, 0.13 * tall, radius=0.04 * tall),
        clothes,
    )
    r.paint(ellipse_sdf(yy, xx, feet - 0.88 * tall, cx, 0.07 * tall, 0.055 * tall), skin)


def _sensor(c: _Canvas) -> torch.Tensor:
    """Optics, automatic gain control and grain."""
    img = gaussian_filter(c.img[None, None], 5, c.u(0.3, 0.75))[0, 0]
    sample = img.flatten()[:: max(1, c.h * c.w // 65536)]
    lo, hi = torch.quantile(sample, torch.tensor([0.005, 0.998], dtype=torch.float64))
    img = ((img - lo) / max(float(hi - lo), 1e-6)).clamp(0, 1)
    ranks = torch.sort(sample).values
    equalized = torch.searchsorted(ranks, img.contiguous()).double() / len(ranks)
    mix = c.u(0.0, 0.5)
    img = ((1 - mix) * img + mix * equalized) ** c.u(0.8, 1.6)
    out_lo, out_hi = c.u(0.0, 0.06), c.u(0.85, 1.0)
    img = out_lo + img * (out_hi - out_lo)
    grain = c.u(0.2, 0.8) / 255 * torch.randn((c.h, c.w), generator=c.g, dtype=torch.float64)
    return (img + grain).clamp(0.0, 1.0)


_DRAW_THING = {"building": _building, "pole": _pole, "vehicle": _vehicle, "person": _person}


def detailed_scene(h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """One scene of the ``"detailed"`` style, ``(H, W)`` float64 in ``[0, 1]``.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.detailed_scenes import detailed_scene
    >>> x = detailed_scene(64, 80, torch.Generator().manual_seed(0))
    >>> x.shape, float(x.min()) >= 0, float(x.max()) <= 1
    (torch.Size([64, 80]), True, True)
    """
    edge = uniform(g, 0.3, 0.7)
    horizon = uniform(g, 0.3, 0.65) * h
    vx = uniform(g, 0.15, 0.85) * w
    fine = power_law_field(g, h, w, 2.0)
    ragged = power_law_field(g, h, w, 2.0)
    c = _Canvas(torch.zeros((h, w), dtype=torch.float64), g, edge, horizon, vx, fine, ragged)
    _sky(c)
    _ground(c)
    if coin(g, 0.7):
        _skyline(c)
    # Things standing on the ground, far ones first; buildings tend to be nearer.
    things = []
    for kind, count, power in (
        ("building", randint(g, 0, 5), 1.0),
        ("tree", randint(g, 0, 6), 1.5),
        ("pole", randint(g, 0, 5), 1.5),
        ("vehicle", randint(g, 0, 3), 1.5),
        ("person", randint(g, 0, 5), 1.5),
    ):
        for _ in range(count):
            things.append((horizon + (h - horizon) * uniform(g, 0.0, 1.0) ** power, kind))
    if coin(g, 0.25):
        _bridge(c)
    leaves = power_law_field(g, h, w, uniform(g, 1.2, 2.0))
    for base, kind in sorted(things):
        if kind == "tree":
            _tree(c, base, leaves)
        else:
            _DRAW_THING[kind](c, base)
    return _sensor(c)
