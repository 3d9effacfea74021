"""Profile one xarch command: `python -m benchmarks.profile_xarch STATS_FILE ARGS...`.

cProfile covers xarch.cli.main() only (the imports before it are not in the profile); the
statistics go to STATS_FILE (pstats format) even when the command exits with an error code.
"""

from __future__ import annotations

import cProfile
import sys


def main() -> None:
    stats_file, *args = sys.argv[1:]
    from xarch.cli import main as xarch_main  # imported before profiling starts

    sys.argv = ["xarch", *args]
    profiler = cProfile.Profile()
    try:
        profiler.runcall(xarch_main)
    except SystemExit:  # click ends every command with one
        pass
    finally:
        profiler.dump_stats(stats_file)


if __name__ == "__main__":
    main()
