"""`xarch` from this checkout: `python -m benchmarks.run_xarch ARGS...` is `xarch ARGS...`.

The bench starts xarch this way so the code measured is the checkout's, whatever `xarch` is
on PATH (a pyenv shim or an old virtualenv would add their own start-up time or run other code).
"""

from __future__ import annotations

import sys

from xarch.cli import main

if __name__ == "__main__":
    sys.argv[0] = "xarch"
    main()
