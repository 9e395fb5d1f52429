"""``python -m gleitzeit.cli``: the same as ``gleitzeit`` (the original's spelling)."""

import sys

from gleitzeit.cli import main

sys.exit(main())
