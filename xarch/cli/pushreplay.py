"""`xarch push` answered from a push record (xarch.registry.pushrecord) when nothing it read changed
and the registry still holds what it pushed.

`main` asks `replay` first, before click loads: when the command line is a plain push (only the
options in REPLAYED) and its record's inputs are all as recorded, the registry is asked what the
full push asks first (its scheme, /v2/), whether it holds the top manifest and whether the tag
names it (xarch.registry.pushrecord.registry_still_has). When it does, the push is done:
the same lines are printed as a full re-push prints (every blob already there), and requests,
pydantic and click are never loaded. Otherwise `begin` starts recording, and the full push calls
`finish` with its result.

The command line is read by hand, as xarch.cli.replay reads a build's; anything else, or an
option this reading does not know, runs the full push. tests/unit/test_push_record_parts.py
checks the table against push_command's options.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xarch.records import Recording
    from xarch.registry.pushrecord import PushRecord
    from xarch.registry.result import PushResult

# option → takes a value. These change nothing a re-push of an unchanged layout asks or says:
# --chunk-size and --jobs shape uploads, and there are none; --format and --insecure are in the key.
REPLAYED = {"--format": True, "--chunk-size": True, "--jobs": True, "-j": True, "--insecure": False,
            "--json": False, "-q": False, "--quiet": False}
# What a replayed push says on stderr, after the layout's name.
REPLAYED_NOTE = "checked by digest and by tag"
# What these do needs the full push: credentials (typed, or a CA of their own) and mounts.
NOT_REPLAYED = frozenset({"--mount-from", "--ca-cert", "--username", "-u", "--password-stdin"})


@dataclass
class PushRequest:
    """A replayable `xarch push` command line: ARGV as typed (the record's key), LAYOUT and REF,
    and the flags that change how it is asked and said."""

    argv: list[str]
    layout: str
    ref: str
    insecure: bool = False
    as_json: bool = False
    quiet: bool = False
    docker_format: bool = False  # --format docker: manifests rewritten, not the layout's files
    config_probe: list[list[object]] | None = None  # where the Docker config was, when recording began


def parse(argv: list[str]) -> PushRequest | None:
    """The PushRequest of ARGV (the arguments after `xarch`), or None when it is not a plain push."""
    if not argv or argv[0] != "push":
        return None
    positional: list[str] = []
    flags: set[str] = set()
    docker = False
    tokens = iter(argv[1:])
    for token in tokens:
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, equals, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        takes_value = REPLAYED.get(name)
        if takes_value is None or (equals and not takes_value):
            return None  # `--`, a bundle of short flags, an option not replayed or unknown
        value = attached if equals else (next(tokens, None) if takes_value else "")
        if value is None:
            return None
        flags.add(name)
        if name == "--format":
            docker = value == "docker"  # the last one counts, as with click
    if len(positional) != 2:
        return None
    return PushRequest(list(argv), positional[0], positional[1], "--insecure" in flags, "--json" in flags,
                       bool(flags & {"-q", "--quiet"}), docker)


_pending: Recording[PushRequest] | None = None


def replay(argv: list[str]) -> bool:
    """Do what `xarch push ARGV` would, from its push record, when ARGV is a plain push, every input
    is as recorded and the registry answers as the record expects: report the push. True when done.

    False when the full push must run; then this process records what it reads (begin), for
    `finish`. Nothing is raised: any doubt means the full push.
    """
    request = parse(argv)
    if request is None:
        _debug("not replayed or recorded: the command line asks for more than a plain push "
               "(xarch.cli.pushreplay.NOT_REPLAYED) or has an option this reading does not know")
        return False
    from xarch.cachedir import default_root
    from xarch.records import RecordError, RecordStore, record_key
    from xarch.registry.pushrecord import (
        PushRecord,
        blob_files_differ,
        config_probe,
        mismatch,
        proxied,
        registry_still_has,
    )

    root = default_root()
    key = ""
    try:
        key = record_key(request.argv)
        record = RecordStore(root, PushRecord.from_json).get(key)
        if record is None:
            raise RecordError("no record")
        from xarch.registry.imageref import OCI, OCI_ARCHIVE, parse_image_ref

        source = parse_image_ref(request.layout, (OCI, OCI_ARCHIVE), "push")
        why = (mismatch(record, request.ref, source.kind == OCI and not request.docker_format)
               or proxied(record.origin)
               or ("the Docker config is found elsewhere" if config_probe() != record.config_probe else "")
               or (blob_files_differ(Path(str(source.path)), record) if source.kind == OCI else ""))
        if why:
            raise RecordError(why)
        record.witness.check()
        label = source.label
        why = registry_still_has(record, request.insecure)
        if why:
            raise RecordError(why)
    except Exception as error:  # noqa: BLE001 - a record that does not apply, for any reason: push
        _debug(f"not replayed: {error}")
        if key:
            _begin(request, key, root)
        return False
    _report(record, label, request)
    return True


def _report(record: PushRecord, label: str, request: PushRequest) -> None:
    """Say what a full re-push says: which layout, every blob already there, the result."""
    from xarch.registry.progress import progress_for, show_skipped
    from xarch.registry.result import PushResult, TransferStats, print_result
    from xarch.visible import visible

    quiet = request.quiet or request.as_json
    if not quiet and sys.stderr is not None:  # None: started without stderr (print would use stdout)
        print(visible(f"pushing {label}"), file=sys.stderr)
        print(f"no input changed since the last push, and the registry still holds it ({REPLAYED_NOTE})",
              file=sys.stderr, flush=True)
    progress = progress_for(quiet=quiet)
    stats = TransferStats()
    try:
        show_skipped(stats, [(digest, size) for digest, size in record.blobs], progress)
    finally:
        progress.close()
    result = PushResult(record.reference, record.digest, record.media_type, dict(record.manifests), stats)
    print_result(result, request.as_json, "pushed")


def _begin(request: PushRequest, key: str, store_root: Path) -> None:
    global _pending
    from xarch.records import Recording
    from xarch.registry.pushrecord import config_probe

    request.config_probe = config_probe()
    _pending = Recording.begin(request, key, store_root, "push record")
    if _pending is None:
        return
    from xarch.registry.imageref import OCI, OCI_ARCHIVE, parse_image_ref
    from xarch.registry.pushrecord import blob_folder

    try:
        source = parse_image_ref(request.layout, (OCI, OCI_ARCHIVE), "push")
    except Exception:  # noqa: BLE001 - the full push says what is wrong with LAYOUT
        return
    layout = str(source.path)
    # content-addressed inputs: hashed once, when the record is made (Recorder.defer_hashing)
    _pending.recorder.defer_hashing(
        [blob_folder(Path(layout)), blob_folder(Path(os.path.realpath(layout)))] if source.kind == OCI
        else [os.path.abspath(layout), os.path.realpath(layout)])


def finish(result: PushResult) -> None:
    """Record the push that gave RESULT, when `replay` began recording and the push may be
    replayed: no credentials sent, no attachments, nothing read below the cache. Recording that
    fails leaves no record; never an error."""
    global _pending
    pending, _pending = _pending, None
    if pending is None:
        return
    pending.recorder.stop()
    from xarch.records import RecordError, RecordStore
    from xarch.registry.pushrecord import PushRecord, config_probe, layer_files, mismatch, proxied
    from xarch.registry.reference import parse_reference

    try:
        probe = config_probe()  # an existence test leaves no audit event: compared with the start's
        if probe != pending.request.config_probe:
            raise RecordError("not recorded: the Docker config appeared or went during the push")
        if result.authenticated or result.referrers or not result.origin:
            raise RecordError("not recorded: credentials were sent, or attachments pushed")
        routed = proxied(result.origin)
        if routed:
            raise RecordError(f"not recorded: {routed}")
        from xarch.registry.imageref import OCI, OCI_ARCHIVE, parse_image_ref

        source = parse_image_ref(pending.request.layout, (OCI, OCI_ARCHIVE), "push")
        layout = source.path
        cache = os.path.realpath(pending.store_root) + "/"
        if any((os.path.realpath(path) + "/").startswith(cache) for path in (str(layout), os.getcwd())):
            # what is read below the cache is not witnessed (xarch.records.CACHE_PARTS)
            raise RecordError("not recorded: the layout or the working folder is inside the cache")
        blobs = [[digest, size] for digest, size in result.blobs]
        left_out = (layer_files(Path(str(layout)), pending.recorder.opened_files(), blobs)
                    if source.kind == OCI else set())
        witness = pending.recorder.witness([], left_out)
        pushed = parse_reference(result.reference)
        record = PushRecord(witness, result.origin, pushed.repository, pushed.tag or "latest", result.digest,
                            result.media_type, result.reference, dict(result.manifests), blobs, probe)
        # what could not be read back, or would not be replayed, is not written
        request = pending.request
        why = mismatch(PushRecord.from_json(record.to_json()), request.ref,
                       source.kind == OCI and not request.docker_format)
        if why:
            raise RecordError(f"not recorded: {why}")
        RecordStore(pending.store_root, PushRecord.from_json).put(pending.key, record)
    except (RecordError, OSError, ValueError) as error:
        _debug(str(error) if str(error).startswith("not recorded") else f"not recorded: {error}")
    except Exception as error:  # noqa: BLE001 - an odd reference or record: no record, never an error
        _debug(f"not recorded: {type(error).__name__}: {error}")


def _debug(message: str) -> None:
    from xarch.records import say_why

    say_why("push record", message)
