"""Compare the digests scripts/repro_digests.py wrote under each interpreter; exit 1 on any difference."""

import json
import sys
from pathlib import Path


def main() -> None:
    """Compare every FOLDER/*.json (argv[1]) with the first by name; exit 1 naming it on a difference."""
    results = {p.stem: json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("*.json"))}
    if not results:
        sys.exit("compare-digests: no results: did the repro-py3* environments run?")
    reference_env, reference = next(iter(results.items()))
    failed = False
    for env, result in results.items():
        same = result["index_digest"] == reference["index_digest"] and result["images"] == reference["images"]
        verdict = "same" if same else "DIFFERENT"
        print(f"{env} (python {result['python']}): index {result['index_digest']} {verdict}")
        failed |= not same
    if len(results) == 1:
        print("only one interpreter was available: nothing to compare across versions")
    if failed:
        sys.exit(f"compare-digests: builds differ from {reference_env}")
    print(f"{len(results)} interpreter(s): identical digests")


if __name__ == "__main__":
    main()
