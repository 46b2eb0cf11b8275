"""Exceptions raised by sepkit; each is also catchable as the matching builtin."""


class SepkitError(Exception):
    """Base class of every error sepkit raises on purpose."""


class InvalidGraphError(SepkitError, ValueError):
    """The graph is not an undirected graph with finite, non-negative weights."""


class InvalidLabelsError(SepkitError, ValueError):
    """The labels do not describe a partition of the graph's nodes."""


class InvalidOptionError(SepkitError, ValueError):
    """An option (``base``, ``method``, ``seed``, ...) has a value outside its allowed range."""


class InvalidTypeError(SepkitError, TypeError):
    """An argument of a kind sepkit does not take: a list for a graph, a directed graph or a
    multigraph, a non-bool flag."""


# Shown as sepkit.InvalidGraphError etc. in tracebacks: the public name, not this module's.
for _cls in (
    SepkitError,
    InvalidGraphError,
    InvalidLabelsError,
    InvalidOptionError,
    InvalidTypeError,
):
    _cls.__module__ = "sepkit"
del _cls
