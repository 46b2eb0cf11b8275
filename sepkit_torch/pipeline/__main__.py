"""``python -m sepkit_torch.pipeline``: the pipeline's command line (nothing imports this)."""

import sys

from sepkit_torch.pipeline.cli import main

sys.exit(main())
