"""The registry that names tasks, and the parameter presets of the built-in degradations.

A task is named by its parts: ``"C"`` (low contrast), ``"B"`` (blur), ``"N"`` (TIR noise),
``"D"`` (dead/hot pixels) and compounds such as ``"CB"`` or ``"CBND"``, whose parts are
applied in the canonical order C, B, N, D. :func:`register_degradation` adds a new part
that composes with the others. The four built-ins are registered when
:mod:`sepkit_torch.data.degradations` is imported (the package does so), with the presets
of :data:`BUILTIN_PRESETS`: the one place their parameter ranges are written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from sepkit_torch._errors import InvalidInputError, UnknownDegradationError
from sepkit_torch.data.sampling import as_batch, as_generator

__all__ = [
    "APPENDIX_TASKS",
    "BUILTIN_PRESETS",
    "DEFAULT_PRESET",
    "DEGRADATION_PRESETS",
    "HMTIR_FITTED",
    "PAPER_TASKS",
    "Degradation",
    "UnknownDegradationError",
    "check_preset",
    "degrade",
    "get_degradation",
    "list_degradations",
    "list_tasks",
    "parse_task",
    "preset_defaults",
    "register_degradation",
    "task_name",
    "unregister_degradation",
]

#: The seven tasks of the paper, in its order.
PAPER_TASKS = ("C", "B", "N", "CB", "CN", "BN", "CBN")

#: The tasks its appendix adds.
APPENDIX_TASKS = ("D", "CBND")

#: The parameter presets of the built-in degradations: ECMRNet's public code (default),
#: PPFN's harsher ranges, ``broad``, the two together (each range from the lower of their
#: lows to the higher of their highs), which covers the low contrast, blur and noise of
#: both published HM-TIR severities up to a few values (``docs/data.md``), and ``hmtir``,
#: ``broad`` widened to every parameter fitted to the ten published HM-TIR pairs
#: (:data:`HMTIR_FITTED`; the stripe gains of the strongest ``hard`` frame lie outside
#: ``broad``). A registered degradation may add presets of its own.
DEGRADATION_PRESETS = ("ecmrnet", "ppfn", "broad", "hmtir")

#: The preset used when none is named, and the ranges of a built-in function's unset arguments.
DEFAULT_PRESET = "ecmrnet"


def _hull(*presets: Mapping[str, Any]) -> dict[str, Any]:
    """Per keyword, the smallest range holding every preset's (equal scalars stay scalars)."""
    out = {}
    for key in presets[0]:
        values = [p[key] for p in presets]
        if all(v == values[0] for v in values):
            out[key] = values[0]
        else:
            out[key] = (min(v[0] for v in values), max(v[1] for v in values))
    return out


_PUBLISHED = {
    "C": {
        "ecmrnet": {"contrast": (0.2, 0.6), "brightness": (25.5, 51.0)},
        "ppfn": {"contrast": (0.2, 0.8), "brightness": (51.0, 102.0)},
    },
    "B": {
        "ecmrnet": {"kernel_size": (7, 17), "sigma": (1.0, 2.0)},
        "ppfn": {"kernel_size": (7, 23), "sigma": (1.0, 3.0)},
    },
    "N": {
        "ecmrnet": {
            "delta": (15, 55),
            "gain_std": (0.03, 0.07),
            "offset_std": (0.0, 3.0),
            "sigma": (5.0, 15.0),
        },
        "ppfn": {
            "delta": (15, 75),
            "gain_std": (0.03, 0.10),
            "offset_std": (0.0, 5.0),
            "sigma": (5.0, 20.0),
        },
    },
    # PPFN has no D: both presets use the public code's fractions.
    "D": {"ecmrnet": {"dead": 0.002, "hot": 0.001}, "ppfn": {"dead": 0.002, "hot": 0.001}},
}

#: Smallest and largest value of each parameter that ``estimate_degradation`` fits to the
#: five ``normal`` and five ``hard`` HM-TIR pairs (their statistics, not their pixels; the
#: table of ``docs/data.md``, ``benchmarks/thermal_realism.py``). Not the kernel size, which
#: the estimator cannot identify, nor D, which the pairs lack.
HMTIR_FITTED: Mapping[str, Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "C": {"contrast": (0.304, 0.695), "brightness": (38.21, 98.01)},
        "B": {"sigma": (1.05, 2.7)},
        "N": {
            "delta": (14, 62),
            "gain_std": (0.0338, 0.123),
            "offset_std": (0.0, 5.45),
            "sigma": (7.56, 18.87),
        },
    }
)


def _widen(preset: Mapping[str, Any], fitted: Mapping[str, tuple]) -> dict[str, Any]:
    """`preset`'s ranges, each widened to hold the fitted values of its keyword."""
    out = dict(preset)
    for key, (lo, hi) in fitted.items():
        out[key] = (min(out[key][0], lo), max(out[key][1], hi))
    return out


def _presets(published: Mapping[str, Any], fitted: Mapping[str, tuple]) -> dict[str, Any]:
    broad = _hull(published["ecmrnet"], published["ppfn"])
    return {**published, "broad": broad, "hmtir": _widen(broad, fitted)}


#: Keyword arguments of the built-in degradations per preset (ranges in grey levels, as on
#: the design page).
BUILTIN_PRESETS: Mapping[str, Mapping[str, Mapping[str, Any]]] = MappingProxyType(
    {
        name: _presets(published, HMTIR_FITTED.get(name, {}))
        for name, published in _PUBLISHED.items()
    }
)


def preset_defaults(name: str, **given) -> dict[str, Any]:
    """`given` keyword arguments of built-in `name`, each None replaced by the default preset's.

    Examples
    --------
    >>> from sepkit_torch.data.registry import preset_defaults
    >>> preset_defaults("C", contrast=None, brightness=(0.0, 10.0))
    {'contrast': (0.2, 0.6), 'brightness': (0.0, 10.0)}
    """
    table = BUILTIN_PRESETS[name][DEFAULT_PRESET]
    return {key: table[key] if value is None else value for key, value in given.items()}


@dataclass(frozen=True)
class Degradation:
    """One registered degradation (read-only).

    Attributes
    ----------
    name : str
        Its name in task names: one character (``"C"``) composes by concatenation
        (``"CB"``); a longer name composes with ``+`` (``"C+haze"``).
    fn : callable
        ``fn(image, generator, **kwargs) -> image``, as the functions of
        :mod:`sepkit_torch.data.degradations`.
    order : float
        Its place in the canonical order (C 10, B 20, N 30, D 40).
    description : str
        One line for listings.
    presets : mapping of str to mapping
        Keyword arguments of `fn` per preset; a preset not listed calls `fn` with none.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    order: float
    description: str = ""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def kwargs(self, preset: str = DEFAULT_PRESET) -> dict[str, Any]:
        """The keyword arguments `fn` gets under `preset`."""
        return dict(self.presets.get(check_preset(preset), {}))

    def __call__(self, image, generator, *, preset: str = DEFAULT_PRESET) -> torch.Tensor:
        """Apply it with the parameters of `preset`."""
        out = self.fn(image, generator, **self.kwargs(preset))
        if not isinstance(out, torch.Tensor) or out.shape != image.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(
                f"degradation {self.name!r} must return a tensor of the input's shape "
                f"{tuple(image.shape)}; got {got}"
            )
        return out


_REGISTRY: dict[str, Degradation] = {}


def _known() -> str:
    return ", ".join(repr(n) for n in list_degradations()) or "none"


def check_preset(preset) -> str:
    """`preset` itself if a built-in or registered degradation has it, else an error.

    Examples
    --------
    >>> from sepkit_torch.data.registry import check_preset
    >>> check_preset("ppfn")
    'ppfn'
    """
    known = set(DEGRADATION_PRESETS)
    for d in _REGISTRY.values():
        known.update(d.presets)
    if preset not in known:
        raise InvalidInputError(f"`preset` must be one of {sorted(known)}; got {preset!r}")
    return preset


def register_degradation(
    name: str,
    fn: Callable[..., torch.Tensor],
    *,
    order: float | None = None,
    description: str = "",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    replace: bool = False,
) -> Degradation:
    """Add a degradation that composes with the registered ones in task names.

    Parameters
    ----------
    name : str
        One character (composes by concatenation: ``"CV"``) or a longer identifier
        (composes with ``+``: ``"C+haze"``). A longer name may not consist only of
        registered single-character names (``"CB"`` is a compound, not a name).
    fn : callable
        ``fn(image, generator, **kwargs)``: a single-channel image or batch in ``[0, 1]``
        and a CPU :class:`torch.Generator`, returning a tensor of the same shape. Draw all
        randomness from the generator, on the CPU, so that results are reproducible.
    order : float, optional
        Place in the canonical order (C 10, B 20, N 30, D 40); default: after all others.
        Must differ from every registered order.
    description : str
        One line for listings.
    presets : mapping, optional
        ``{preset: {keyword: value}}``, the keyword arguments of `fn` per preset.
    replace : bool
        Allow replacing a registered degradation of the same name.

    Returns
    -------
    Degradation
        The registered record.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import (
    ...     degrade, list_degradations, register_degradation, unregister_degradation)
    >>> def invert(image, generator):
    ...     return 1.0 - image
    >>> _ = register_degradation("I", invert, order=15)  # between C and B
    >>> list_degradations()
    ('C', 'I', 'B', 'N', 'D')
    >>> degrade(torch.zeros(4, 4), "CIB", 0).shape
    torch.Size([4, 4])
    >>> unregister_degradation("I")
    """
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
        raise InvalidInputError(
            f"`name` must be a non-empty string of letters, digits or '_'; got {name!r}"
        )
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}")
    if name in _REGISTRY and not replace:
        raise InvalidInputError(
            f"degradation {name!r} is already registered; pass replace=True to replace it"
        )
    letters = {n for n in _REGISTRY if len(n) == 1}
    if len(name) > 1 and set(name) <= letters:
        raise InvalidInputError(
            f"`name` {name!r} would read as the compound of {', '.join(name)}; choose another"
        )
    others = {d.order: n for n, d in _REGISTRY.items() if n != name}
    if order is None:
        order = max(others, default=0.0) + 10.0
    if not isinstance(order, (int, float)) or isinstance(order, bool) or not math.isfinite(order):
        raise InvalidInputError(f"`order` must be a finite number; got {order!r}")
    if order in others:
        raise InvalidInputError(
            f"`order` {order!r} is taken by {others[order]!r}; choose another (C 10, B 20, "
            "N 30, D 40)"
        )
    frozen = MappingProxyType(
        {str(k): MappingProxyType(dict(v)) for k, v in (presets or {}).items()}
    )
    record = Degradation(name, fn, float(order), description, frozen)
    _REGISTRY[name] = record
    return record


def unregister_degradation(name: str) -> None:
    """Remove a registered degradation (built-ins included; re-register to restore)."""
    if name not in _REGISTRY:
        raise UnknownDegradationError(
            f"`name` must be a registered degradation ({_known()}); got {name!r}"
        )
    del _REGISTRY[name]


def list_degradations() -> tuple[str, ...]:
    """Names of the registered degradations, in canonical order.

    Examples
    --------
    >>> from sepkit_torch.data import list_degradations
    >>> list_degradations()
    ('C', 'B', 'N', 'D')
    """
    return tuple(sorted(_REGISTRY, key=lambda n: _REGISTRY[n].order))


def get_degradation(name: str) -> Degradation:
    """The :class:`Degradation` registered as `name`."""
    if name not in _REGISTRY:
        raise UnknownDegradationError(
            f"`name` must be a registered degradation ({_known()}); got {name!r}"
        )
    return _REGISTRY[name]


def parse_task(task: str) -> tuple[str, ...]:
    """The degradations of `task`, in the order they are applied.

    ``"CBN"`` is read letter by letter; a registered longer name stands alone (``"haze"``)
    or joins others with ``+`` (``"C+haze"``). The parts must be registered, distinct and
    written in canonical order (``"BC"`` is refused, not reordered).

    Examples
    --------
    >>> from sepkit_torch.data import parse_task
    >>> parse_task("CBND")
    ('C', 'B', 'N', 'D')
    >>> parse_task("BC")
    Traceback (most recent call last):
    ...
    sepkit_torch.InvalidInputError: `task` 'BC' must list its parts ...; write 'CB'
    """
    if not isinstance(task, str):
        raise TypeError(f"`task` must be a string such as 'CBN'; got {type(task).__name__}")
    if "+" in task:
        parts = tuple(p.strip() for p in task.split("+"))
    elif task in _REGISTRY:
        parts = (task,)
    else:
        parts = tuple(task)
    if not parts or not all(parts):
        raise InvalidInputError(f"`task` must name at least one degradation; got {task!r}")
    unknown = [p for p in parts if p not in _REGISTRY]
    if unknown:
        raise UnknownDegradationError(
            f"`task` {task!r} has unknown degradation(s) {', '.join(map(repr, unknown))}; "
            f"known: {_known()} (compose single letters as 'CBN', longer names with '+')"
        )
    if len(set(parts)) != len(parts):
        raise InvalidInputError(f"`task` {task!r} repeats a degradation")
    canonical = tuple(sorted(parts, key=lambda n: _REGISTRY[n].order))
    if parts != canonical:
        raise InvalidInputError(
            f"`task` {task!r} must list its parts in the canonical order "
            f"({', '.join(list_degradations())}); write {task_name(canonical)!r}"
        )
    return parts


def task_name(parts) -> str:
    """The task name of registered `parts` (in canonical order): ``("C", "B")`` -> ``"CB"``."""
    parts = tuple(sorted(parts, key=lambda n: get_degradation(n).order))
    return "".join(parts) if all(len(p) == 1 for p in parts) else "+".join(parts)


def list_tasks(max_parts: int | None = None) -> tuple[str, ...]:
    """Every task made of registered degradations: singles first, then pairs, ...

    Examples
    --------
    >>> from sepkit_torch.data import list_tasks
    >>> list_tasks(2)
    ('C', 'B', 'N', 'D', 'CB', 'CN', 'CD', 'BN', 'BD', 'ND')
    >>> len(list_tasks())
    15
    """
    names = list_degradations()
    top = len(names) if max_parts is None else min(int(max_parts), len(names))
    return tuple(
        task_name(combo) for r in range(1, top + 1) for combo in itertools.combinations(names, r)
    )


def degrade(image, task: str, generator, *, preset: str = DEFAULT_PRESET) -> torch.Tensor:
    """Apply `task`'s degradations in canonical order, one generator running through them.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    task : str
        ``"C"``, ``"CB"``, ``"CBND"``, ... (see :func:`parse_task`).
    generator : torch.Generator or int
        CPU generator, or an int seed (one generator is made from it for the whole task).
    preset : str
        ``"ecmrnet"`` (the public code's ranges, default), ``"ppfn"`` (harsher),
        ``"broad"`` (both) or ``"hmtir"`` (``broad`` widened to the published pairs).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import degrade, gaussian_blur, low_contrast
    >>> x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> y = degrade(x, "CB", torch.Generator().manual_seed(7))
    >>> g = torch.Generator().manual_seed(7)
    >>> torch.equal(y, gaussian_blur(low_contrast(x, g), g))  # compound = composition
    True
    >>> torch.equal(degrade(x, "CB", 7), y)  # an int seed works the same
    True
    """
    g = as_generator(generator)
    parts = parse_task(task)
    check_preset(preset)
    as_batch(image)
    y = image
    for name in parts:
        y = _REGISTRY[name](y, g, preset=preset)
    return y
