"""Continual learning on the ECMRNet backbone: SCGE expansion (pruning and mining follow)."""

from sepkit_torch.continual.expansion import ECMRNet, TaskInfo

__all__ = ["ECMRNet", "TaskInfo"]
