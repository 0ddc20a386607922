"""`python -m gridseq.cli ...` is the `gridseq` command too (as `python -m gridseq` is)."""

import sys

from gridseq.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
