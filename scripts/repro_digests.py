"""Build a fixed, generated recipe with this interpreter and write its digests as JSON.

tox runs this under every CPython it finds (3.10–3.13); scripts/compare_digests.py then
checks that all of them produced the same bytes. The recipe covers what tar headers
and JSON are most likely to encode differently: long and non-ASCII names, symlinks,
hard-to-fit paths, odd modes and owners, empty files, a multi-megabyte file.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPE = """\
name: repro
platforms: [amd64, arm64, arm/v7, riscv64]
epoch: 1700000000
config:
  entrypoint: ["/bin/app"]
  env: {LANG: C.UTF-8, "ÜNICODE": "värde"}
  exposed_ports: [8080, 53/udp]
  labels: {a: "1", b: "2"}
annotations:
  index: {org.opencontainers.image.title: "répro"}
files:
  - {src: "bin/{arch}", dst: /bin/app, mode: "0755"}
  - {src: tree, dst: /srv/tree}
  - {src: big, dst: /data/big, owner: "1000:2000"}
directories:
  - {path: /tmp, mode: "1777"}
  - {path: /home/user, mode: "0700", owner: "65534:65534"}
symlinks:
  - {path: /usr/bin/app, target: ../../bin/app}
layers:
  - {name: base, paths: ["/bin/**", "/usr/**"]}
  - {name: data, paths: ["/data/**"]}
  - {name: rest, paths: ["**"]}
"""


def make_sources(folder: Path) -> None:
    rng = random.Random(20261123)  # fixed seed: the same files on every interpreter
    for arch in ("amd64", "arm64", "arm", "riscv64"):
        (folder / "bin").mkdir(exist_ok=True)
        (folder / "bin" / arch).write_bytes(f"#!/bin/sh\necho {arch}\n".encode())
    (folder / "big").write_bytes(bytes(rng.getrandbits(8) for _ in range(1 << 20)) * 3)
    tree = folder / "tree"
    names = ["a", "ß-straße", "日本語", "x" * 99, "y" * 101, "deep/" * 30 + "leaf", "empty"]
    for name in names:
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if name == "empty" else name.encode() * rng.randint(1, 50))
    (tree / "link").symlink_to("ß-straße")
    # Names that are not UTF-8: stored byte-exact, with PAX hdrcharset=BINARY when too long for ustar.
    for raw in (b"caf\xe9", b"z" * 60 + b"/" + b"\xff" * 110):
        path = tree / os.fsdecode(raw)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    (tree / os.fsdecode(b"link-\xfe")).symlink_to(os.fsdecode(b"\xfe" * 120))
    (tree / "exec.sh").write_text("#!/bin/sh\n")
    os.chmod(tree / "exec.sh", 0o750)


def main() -> None:
    target = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "recipe"
        folder.mkdir()
        make_sources(folder)
        (folder / "xarch.yaml").write_text(RECIPE, encoding="utf-8")
        out = subprocess.run(
            [sys.executable, "-m", "xarch.cli", "build", "--json", "-f", str(folder / "xarch.yaml"),
             "--output", f"oci:{tmp}/out"],
            check=True, capture_output=True, text=True,
        ).stdout
    result = json.loads(out)
    result["python"] = sys.version.split()[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, sort_keys=True))
    print(f"python {result['python']}: index {result['index_digest']}")


if __name__ == "__main__":
    main()
