"""Continual learning on the ECMRNet backbone: SCGE expansion, SEP pruning, SKMM mining."""

from sepkit_torch.continual.expansion import ECMRNet, TaskInfo

__all__ = ["ECMRNet", "TaskInfo"]
