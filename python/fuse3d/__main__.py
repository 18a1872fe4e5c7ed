"""`python -m fuse3d ARGS`: the same as the `fuse3d` console script (for `pip install --target` folders)."""
import sys

from ._cli import main

sys.exit(main())
