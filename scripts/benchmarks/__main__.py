"""`python -m benchmarks` (with scripts/ on sys.path) is scripts/bench."""

from benchmarks.main import main

main()
