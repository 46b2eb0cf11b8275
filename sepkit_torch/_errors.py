"""Every exception sepkit_torch raises on purpose, in one place; each is also catchable as
the matching builtin. The package exports them all (``from sepkit_torch import
CheckpointError``)."""


class SepkitTorchError(Exception):
    """Base class of every error sepkit_torch raises on purpose."""


class InvalidInputError(SepkitTorchError, ValueError):
    """An image batch, shape, preset or configuration that the model cannot take."""


class ConfigError(InvalidInputError):
    """A pipeline setting out of its allowed values, or a configuration file that cannot be
    read."""


class UnknownTaskError(SepkitTorchError, ValueError):
    """A task name that is not one of the model's tasks."""


class UnknownDegradationError(UnknownTaskError):
    """A task or degradation name that is not registered (also a ``ValueError``)."""


class DatasetError(SepkitTorchError, ValueError):
    """A folder that cannot make a data set: empty, images too small, unmatched pairs."""


class ImageFileError(SepkitTorchError, OSError):
    """An image file that cannot be read (Pillow cannot open or decode it, or its pixels
    are of an unsupported kind) or written where asked; the message names it."""


#: The former name of :class:`ImageFileError` (the same class).
ImageFileError = ImageFileError


class TaskStateError(SepkitTorchError, RuntimeError):
    """A continual-learning step called in the wrong state.

    For example adding a task that already exists, a compound task before its parts,
    or a training step with an optimizer built before the last ``add_task``.
    """


class RunFolderError(TaskStateError):
    """An output folder that cannot take this run: someone else's files, or not writable."""


class CheckpointError(SepkitTorchError, ValueError):
    """A file that is not a readable, safe checkpoint of this format, or a run that cannot
    be resumed or exported from it."""


class TrainingDivergedError(SepkitTorchError, FloatingPointError):
    """The training loss became NaN or infinite; the step was not applied."""


# Shown as sepkit_torch.ConfigError etc. in tracebacks: the public name, not this module's.
for _cls in (
    SepkitTorchError,
    InvalidInputError,
    ConfigError,
    UnknownTaskError,
    UnknownDegradationError,
    DatasetError,
    ImageFileError,
    TaskStateError,
    RunFolderError,
    CheckpointError,
    TrainingDivergedError,
):
    _cls.__module__ = "sepkit_torch"
del _cls
