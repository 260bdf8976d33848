"""``python -m emovox``: the command line (also what ``torchrun -m emovox train ...`` runs)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
