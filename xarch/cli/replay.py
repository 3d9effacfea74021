"""`xarch build` answered from a build record (xarch.records) when nothing it read changed.

`xarch build` with nothing changed spends most of its time loading the recipe's schema, the
lock and the command table, only to find every image in the image cache. `main` asks `replay`
first: when the command line is a plain build (only the options below) and its record's inputs
are all as recorded, the recorded images are written to the outputs and summarized as a build
would, and the recipe is never loaded. Otherwise `begin` starts recording, and the full build
calls `finish` when it has written its outputs.

The command line is read here by hand, without click: loading click's command table is part of
the cost this saves. It accepts only the options in REPLAYED, in the forms `--name value`,
`--name=value` and `-x value`; anything else runs the full build.
tests/unit/test_build_record_parts.py checks this table against build_command's options, so an option
added there must be placed here (replayed, or not) before the tests pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xarch.build.outputs import OutputSpec
    from xarch.oci.layout import Artifact
    from xarch.records import Recording

# option → takes a value. What these do is all in the images and the outputs.
REPLAYED = {"-f": True, "--file": True, "--platform": True, "-o": True, "--output": True, "--strategy": True,
            "-t": True, "--tag": True, "--build-arg": True, "--label": True, "--log-lines": True,
            "--docker-platform": True, "--json": False, "--locked": False, "-q": False, "--quiet": False}
# What these do is more than writing outputs (a push, a load, a signature, attachments), or they
# ask for the full build (--no-cache) or for what only a build says (-v, --show-scripts), or read
# what no record may hold (--secret).
NOT_REPLAYED = frozenset({"--no-cache", "--push", "--insecure", "--ca-cert", "--sign-key",
                          "--password-stdin", "--load", "-v", "--verbose", "--show-scripts", "--sbom",
                          "--provenance", "--secret"})
REPLAYED_KINDS = ("oci", "oci-archive")


@dataclass
class Request:
    """A replayable `xarch build` command line: KEY_ARGV (with each output's path left out, its kind
    kept), the outputs as typed, and --json / -q."""

    key_argv: list[str] = field(default_factory=lambda: ["build"])
    outputs: list[str] = field(default_factory=list)
    as_json: bool = False
    quiet: bool = False


def parse(argv: list[str]) -> Request | None:
    """The Request of ARGV (the arguments after `xarch`), or None when it is not a plain build."""
    if not argv or argv[0] != "build":
        return None
    request = Request()
    tokens = iter(argv[1:])
    for token in tokens:
        name, equals, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        takes_value = REPLAYED.get(name)
        if takes_value is None or (equals and not takes_value):
            return None
        if not takes_value:
            request.key_argv.append(name)
            request.as_json |= name == "--json"
            request.quiet |= name in ("-q", "--quiet")
            continue
        value = attached if equals else next(tokens, None)
        if value is None:
            return None
        if name in ("-o", "--output"):
            kind = value.partition(":")[0]
            if kind not in REPLAYED_KINDS:
                return None
            request.outputs.append(value)
            request.key_argv += ["-o", kind]
        else:
            request.key_argv += [name, value]
    return request


_pending: Recording[Request] | None = None


def replay(argv: list[str]) -> bool:
    """Do what `xarch build ARGV` would from its build record, when ARGV is a plain build and
    every input is as recorded: write the outputs, report, print the summary. True when done.

    False when the full build must run; then this process records what it reads (begin), for
    `finish`. Until the first output is written nothing is raised: any doubt means the full build.
    """
    request = parse(argv)
    if request is None:
        _debug("not replayed or recorded: the command line asks for more than a plain build "
               "(xarch.cli.replay.NOT_REPLAYED) or has an option this reading does not know")
        return False
    from xarch.oci.store import Store
    from xarch.records import BuildRecord, RecordError, RecordStore, record_key

    store = Store()
    key = ""
    try:
        key = record_key(request.key_argv)
        records = RecordStore(store.root, BuildRecord.from_json)
        record = records.get(key)
        if record is None:
            raise RecordError("no record")
        from xarch.build.imagerecord import images_from_records, read_blob
        from xarch.build.outputs import OutputSpec, check_targets
        from xarch.oci.layout import Artifact

        record.witness.check()
        images = images_from_records(store, record.images)
        artifact = Artifact(read_blob(store, record.index), images, record.tag)
        _check_result(artifact, record.epoch)
        specs = ([OutputSpec.parse(text) for text in request.outputs]
                 or [OutputSpec("oci", Path(record.default_output))])
        overlap = record.witness.overlaps(spec.path for spec in specs)
        if overlap:
            raise RecordError(overlap)
        recipe = Path(record.recipe)
        check_targets(specs, recipe)
    except Exception as error:  # noqa: BLE001 - a record that does not apply, for any reason: build
        _debug(f"not replayed: {error}")
        if key:  # else the key itself could not be made (xarch's files unreadable): no record
            _begin(request, key, store.root)
        return False
    _write(artifact, specs, record.epoch, recipe, request)
    return True


def _check_result(artifact: Artifact, epoch: int) -> None:
    """RecordError unless ARTIFACT's index names exactly its images' manifests, in order, and each
    image was made at EPOCH (its config's `created`): a record put together from two builds must
    not write a layout whose index and blobs, or whose archive times and images, disagree."""
    import json

    from xarch.oci.digest import sha256_digest
    from xarch.oci.image import rfc3339
    from xarch.records import RecordError

    if any(json.loads(image.config_bytes).get("created") != rfc3339(epoch) for image in artifact.images):
        raise RecordError("an image was not made at the record's epoch")

    entries = json.loads(artifact.index_bytes)["manifests"]
    named = [(entry.get("digest"), entry.get("size")) for entry in entries]
    held = [(sha256_digest(image.manifest_bytes), len(image.manifest_bytes)) for image in artifact.images]
    if named != held:
        raise RecordError("the index names other manifests than the record's images")


def _begin(request: Request, key: str, store_root: Path) -> None:
    global _pending
    from xarch.records import Recording

    _pending = Recording.begin(request, key, store_root, "build record")


def _write(artifact: Artifact, specs: list[OutputSpec], epoch: int, recipe: Path, request: Request) -> None:
    from xarch.build.outputs import write_output
    from xarch.cli.console import terminal
    from xarch.progress import Reporter
    from xarch.summary import print_summary, summarize_artifact

    reporter = Reporter(quiet=request.quiet or request.as_json)
    reporter.info("no input changed since the last build: its images, from the cache")
    for spec in specs:
        write_output(artifact, spec, epoch, [], None, recipe)
        reporter.info(f"wrote {spec}")
    summary = summarize_artifact(artifact, str(specs[0]), specs[0].kind)
    print_summary(summary, request.as_json, terminal())


def finish(artifact: Artifact, outputs: tuple[str, ...], recipe: Path, epoch: int, default_output: str,
           cacheable: bool) -> None:
    """Record the build that made ARTIFACT for OUTPUTS (as click read them; call it before they are
    written), when `replay` began recording and the build may be replayed: CACHEABLE (no Dockerfile
    stage), no attachments, and OUTPUTS the ones `parse` read. Recording that fails leaves no
    record; never an error."""
    global _pending
    pending, _pending = _pending, None
    if pending is None:
        return
    pending.recorder.stop()
    if not cacheable or artifact.attachments or list(outputs) != pending.request.outputs:
        _debug("not recorded: a Dockerfile stage, attachments, or outputs read otherwise than by click")
        return
    from xarch.build.imagerecord import image_record
    from xarch.build.outputs import OutputSpec
    from xarch.oci.digest import sha256_digest
    from xarch.oci.store import Store
    from xarch.records import BuildRecord, RecordError, RecordStore

    paths = [OutputSpec.parse(text).path for text in outputs] or [Path(default_output)]
    try:
        witness = pending.recorder.witness(paths)
        cache = os.path.realpath(pending.store_root) + "/"
        if any((os.path.realpath(path) + "/").startswith(cache) for path in (recipe, os.getcwd())):
            # what is read below the cache is not recorded (the store is checked when read)
            raise RecordError("not recorded: the recipe or the working folder is inside the cache")
        opened = [name for name in (os.path.abspath(recipe), os.path.realpath(recipe))
                  if name in witness.files]
        if not opened:
            raise RecordError("not recorded: the recipe was not read as a file")
        Store(pending.store_root).put_bytes(artifact.index_bytes)
        records = RecordStore(pending.store_root, BuildRecord.from_json)
        record = BuildRecord(witness, sha256_digest(artifact.index_bytes),
                             [image_record(image) for image in artifact.images], artifact.tag,
                             default_output, opened[0], epoch)
        records.put(pending.key, record)
    except (RecordError, OSError, ValueError) as error:
        _debug(str(error) if str(error).startswith("not recorded") else f"not recorded: {error}")


def _debug(message: str) -> None:
    from xarch.records import say_why

    say_why("build record", message)
