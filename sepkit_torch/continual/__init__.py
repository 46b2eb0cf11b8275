"""Continual learning on the ECMRNet backbone: SCGE expansion, SKMM mining (pruning follows)."""

from sepkit_torch.continual.expansion import ECMRNet, TaskInfo

__all__ = ["ECMRNet", "TaskInfo"]
