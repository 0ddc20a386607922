"""`python -m gridseq ...` is the `gridseq` command (torchrun launches it this way)."""

import sys

from gridseq.cli import main

if __name__ == "__main__":
    sys.exit(main())
