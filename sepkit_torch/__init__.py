"""sepkit_torch: ECMRNet, continual thermal-image restoration built on sepkit.

Install with the ``[torch]`` extra. The model, data and pipeline modules arrive
in later releases; this package is intentionally empty for now.
"""
