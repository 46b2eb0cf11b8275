"""Exceptions raised by sepkit_torch; each is also catchable as the matching builtin."""


class SepkitTorchError(Exception):
    """Base class of every error sepkit_torch raises on purpose."""


class InvalidInputError(SepkitTorchError, ValueError):
    """An image batch, shape, preset or configuration that the model cannot take."""


class UnknownTaskError(SepkitTorchError, ValueError):
    """A task name that is not one of the model's tasks."""


class TaskStateError(SepkitTorchError, RuntimeError):
    """A continual-learning step called in the wrong state.

    For example adding a task that already exists, a compound task before its parts,
    or a training step with an optimizer built before the last ``add_task``.
    """
