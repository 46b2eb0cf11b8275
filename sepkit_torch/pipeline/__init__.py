"""ECMRNet's task sequence from one command: pretrain, then expand, train, SEP-prune,
fine-tune and evaluate each task (or a NAFNet baseline), with a checkpoint after every
stage and a report at the end.

The run layer, one concern per module:

- :mod:`~sepkit_torch.pipeline.config`: :class:`PipelineConfig`, the presets, validation;
- :mod:`~sepkit_torch.pipeline.data`: training, test and validation sets, stage seeds;
- :mod:`~sepkit_torch.pipeline.strategies`: one strategy class per method (its stages, its
  model, how it does a stage) and their registry;
- :mod:`~sepkit_torch.pipeline.recognition_stage`: the degradation recognizer's stage;
- :mod:`~sepkit_torch.pipeline.state`: the run folder and what its checkpoint holds (the
  resume rules; the file format is :mod:`sepkit_torch.checkpoint`);
- :mod:`~sepkit_torch.pipeline.runner`: :func:`run`, the loop over the stages;
- :mod:`~sepkit_torch.pipeline.report`: :class:`Report`, the restored-image strip, the
  real-image examples and every rendering;
- :mod:`~sepkit_torch.pipeline.comparison`: several methods on one sequence;
- :mod:`~sepkit_torch.pipeline.weights`: exporting a finished run's weights file;
- :mod:`~sepkit_torch.pipeline.cli`: the command line (``python -m sepkit_torch.pipeline``).
"""

from sepkit_torch._errors import CheckpointError, ConfigError, RunFolderError
from sepkit_torch.pipeline.comparison import compare
from sepkit_torch.pipeline.config import RUN_PRESETS, PipelineConfig
from sepkit_torch.pipeline.data import stage_seed, test_set, train_set
from sepkit_torch.pipeline.report import Report
from sepkit_torch.pipeline.runner import run
from sepkit_torch.pipeline.strategies import METHODS, STRATEGIES, Stage, Strategy, strategy_class

__all__ = [
    "METHODS",
    "RUN_PRESETS",
    "STRATEGIES",
    "CheckpointError",
    "ConfigError",
    "PipelineConfig",
    "Report",
    "RunFolderError",
    "Stage",
    "Strategy",
    "compare",
    "run",
    "stage_seed",
    "strategy_class",
    "test_set",
    "train_set",
]
