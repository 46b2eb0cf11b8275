"""Exceptions raised by sepkit; each is also catchable as the matching builtin."""


class SepkitError(Exception):
    """Base class of every error sepkit raises on purpose."""


class InvalidGraphError(SepkitError, ValueError):
    """The graph is not an undirected graph with finite, non-negative weights."""


class InvalidLabelsError(SepkitError, ValueError):
    """The labels do not describe a partition of the graph's nodes."""


class InvalidOptionError(SepkitError, ValueError):
    """An option (keyword argument) outside its allowed values."""
