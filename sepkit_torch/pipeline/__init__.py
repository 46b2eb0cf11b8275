"""ECMRNet's task sequence from one command: pretrain, then expand, train, SEP-prune,
fine-tune and evaluate each task (or a NAFNet baseline), with a checkpoint after every
stage and a report at the end.

The run layer, one concern per module:

- :mod:`~sepkit_torch.pipeline.config`: :class:`PipelineConfig`, the presets, validation;
- :mod:`~sepkit_torch.pipeline.data`: training, test and validation sets, stage seeds;
- :mod:`~sepkit_torch.pipeline.stages`: the stages and the runners that carry them out;
- :mod:`~sepkit_torch.pipeline.recognizer`: the degradation recognizer's stage;
- :mod:`~sepkit_torch.pipeline.state`: the run folder and what its checkpoint holds (the
  resume rules; the file format is :mod:`sepkit_torch.checkpoint`);
- :mod:`~sepkit_torch.pipeline.runner`: :func:`run`, the loop over the stages;
- :mod:`~sepkit_torch.pipeline.report`: :class:`Report` and every rendering of it;
- :mod:`~sepkit_torch.pipeline.comparison`: several methods on one sequence;
- :mod:`~sepkit_torch.pipeline.weights`: exporting a finished run's weights file;
- :mod:`~sepkit_torch.pipeline.cli`: the command line (``python -m sepkit_torch.pipeline``).
"""

from sepkit_torch._errors import CheckpointError, ConfigError, RunFolderError
from sepkit_torch.pipeline.comparison import compare
from sepkit_torch.pipeline.config import PRESETS, PipelineConfig
from sepkit_torch.pipeline.data import stage_seed, test_set, train_set
from sepkit_torch.pipeline.report import Report
from sepkit_torch.pipeline.runner import run

__all__ = [
    "PRESETS",
    "CheckpointError",
    "ConfigError",
    "PipelineConfig",
    "Report",
    "RunFolderError",
    "compare",
    "run",
    "stage_seed",
    "test_set",
    "train_set",
]
