"""Build records: a finished `xarch build` remembered by the bytes of everything it read (and the
parts push records share: the Recorder, the Witness, the key and the store of records).

The image cache (xarch.build.imagecache) saves the work of a build whose inputs did not change,
but finding that out still means loading and validating the recipe and the lock: most of an
unchanged rebuild's time. A build record sits one level above it, as ninja's deps log and
Bazel's action cache do. While a build runs, a PEP 578 audit hook (Recorder) notes every file
Python opens for reading and every folder it lists. When the build succeeds, the record keeps
the sha256 and mode of each such file, the listing (names, modes, link targets) of each such
folder and of every folder holding such a file, and the images the build made. Its key is the
command line (outputs aside), the working folder, the environment, xarch's code, the
interpreter and the host. The next build with that key replays the record when every file and
listing is as recorded: the images come from the store, checked, without loading the recipe.

What keeps a replay equal to a build (each rule drops the record, never guesses):
- a build that ran a program (a step, `git` for the epoch) or changed folder records nothing:
  the hook cannot see what a program reads;
- a file that changed while the build ran (its stat differs from when it was opened), that the
  build wrote, or that is gone, records nothing;
- left out as inputs: the cache (content-addressed, checked when read), what the build itself
  created (its temporary folders), the outputs, xarch's code and the interpreter's libraries
  (both in the key), /proc, /sys and /dev;
- only plain builds are recorded (see xarch.cli.replay): no push, load, signing, SBOM,
  provenance, secret, --no-cache, -v, docker-archive output or Dockerfile stage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

from xarch.oci.digest import file_sha256, hex_of

FORMAT = 1
R = TypeVar("R")
Q = TypeVar("Q")
# Environment variables that say where a shell is, not what a build reads.
# XARCH_SERVER: whether a build server may run the command (xarch.server), never what it builds.
_VOLATILE_ENV = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "XARCH_SERVER"})
_RACY_NS = 2_000_000_000  # a file changed this close before the build began is not recorded
# A command that reads more than this is not recorded: its replay would hash all of it again, as
# much as a build answered by the image cache hashes anyway, and recording it would hash it twice
# more (when first opened, and for the witness). Content-addressed inputs (defer_hashing) aside.
MAX_HASHED_BYTES = 256 << 20
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Audit events (CPython's audit events table) that create a path: the index of the new path.
_CREATE_EVENTS = {"os.mkdir": 0, "tempfile.mkdtemp": 0, "tempfile.mkstemp": 0, "os.rename": 1,
                  "os.symlink": 1, "os.link": 1, "shutil.copyfile": 1, "shutil.copytree": 1, "shutil.move": 1}
# The folders of XARCH_CACHE xarch writes (xarch.oci.store and the caches beside it): content-
# addressed or keyed by what they hold, and checked when read; never a build's input.
CACHE_PARTS = ("sha256", "images", "parsed", "records", "server", "steps", "trees", "uploads")
# The files of /dev, /proc and /sys a build reads that hold no input of it (`/dev/null`; the
# user namespace map, read to tell root from not). Any other read there (`-f /dev/stdin`, a
# project in /dev/shm, `/proc/self/cwd/…`) keeps the build from being recorded.
_PSEUDO = ("/dev/", "/proc/", "/sys/")
_HARMLESS = frozenset({"/dev/null", "/proc/self/uid_map", "/proc/self/gid_map"})
# Events after which the hook cannot know what was read.
_BLIND_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                           "os.fork", "os.forkpty", "os.chdir", "os.fchdir", "os.chroot"})


class RecordError(ValueError):
    """A record that cannot be used: an image record (xarch.build.imagerecord) whose blobs the store
    does not hold intact, or a build or push record that is malformed or whose inputs changed.
    Never shown to users: the build or push runs instead."""


def _by_the_import_system() -> bool:
    """Whether the read or listing being audited is the import system's (a module or its bytecode
    read, a folder of sys.path searched, entry points looked up): the interpreter's, in the key,
    not the build's. io.open_code raises the same event as open(), so the caller tells."""
    frame: FrameType | None = sys._getframe(3)  # past this function, _note and _hook
    for _ in range(12):
        if frame is None:
            return False
        if str(frame.f_globals.get("__name__", "")).startswith(("importlib", "zipimport")):
            return True
        frame = frame.f_back
    return False


def _stat_sig(path: str) -> tuple[int, ...] | None:
    """What tells a changed file from an unchanged one between two moments of one build."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


class Recorder:
    """The audit hook of one build process: files opened for reading (with their stat then),
    folders listed, paths the build created or wrote, and whether it went blind (see the module).

    One per process (audit hooks cannot be removed): `Recorder.start()` installs it, and it
    records until `stop()`. Paths are absolute, as text (os.fsdecode)."""

    _current: Recorder | None = None
    _installed = False

    def __init__(self, skip: Iterable[str]) -> None:
        self.skip = tuple(skip)
        self.start_ns = time.time_ns()
        # path → its stat when first opened or listed (None: not there); the folder holding an
        # opened file is stat'ed then too (it is an input when that file is)
        self.opened: dict[str, tuple[int, ...] | None] = {}
        self.listed: dict[str, tuple[int, ...] | None] = {}
        self.parents: dict[str, tuple[int, ...] | None] = {}
        self.created: set[str] = set()
        self.written: set[str] = set()
        # path as given → os.path.realpath of it (Path.resolve): a symlink on the way changes it
        self.resolved: dict[str, str] = {}
        # path → sha256 of its bytes when first opened: a file changed during the build without
        # its times changing (a write through a shared memory mapping) differs at the end
        self.first: dict[str, str | None] = {}
        self.inside = threading.local()  # set while the hook reads a file itself
        self.blind = ""
        # Paths (and folders, ending in "/") whose files are not hashed when first opened: a push's
        # layout blobs and archive (see defer_hashing).
        self.deferred: tuple[str, ...] = ()
        self.hashed_bytes = 0  # bytes of the files hashed when first opened (MAX_HASHED_BYTES)

    @classmethod
    def start(cls, store_root: Path) -> Recorder:
        """Begin recording this process's reads; STORE_ROOT (the cache) is not an input."""
        here = Path(__file__).resolve().parent  # xarch/
        # The cache's own folders only: a user's file that lies elsewhere in XARCH_CACHE is read
        # like any other. Code the interpreter runs is opened with io.open_code (see _note).
        skip = {str(here), str(here.parent / "platforms")}
        for root in {os.path.abspath(store_root), os.path.realpath(store_root)}:
            skip.update(os.path.join(root, part) for part in CACHE_PARTS)
        recorder = cls(f"{path.rstrip('/')}/" for path in skip)
        if not cls._installed:
            sys.addaudithook(cls._hook)
            # Path.resolve and os.path.realpath follow symlinks with lstat and readlink, which raise
            # no audit event: a source reached through `current -> v1` would be witnessed as
            # v1/… only. Every resolution made while recording is kept, and checked again.
            real = os.path.realpath

            def realpath(path: Any, *args: Any, **kwargs: Any) -> Any:
                result = real(path, *args, **kwargs)
                current = cls._current
                if current is not None:
                    current._resolving(path, result)
                return result

            os.path.realpath = realpath  # type: ignore[assignment]
            import pathlib

            accessor = getattr(pathlib, "_NormalAccessor", None)  # CPython 3.10 bound realpath early
            if accessor is not None:
                accessor.realpath = staticmethod(realpath)
            cls._installed = True
        cls._current = recorder
        return recorder

    def stop(self) -> None:
        """Stop recording (the hook stays installed and does nothing until the next start)."""
        if Recorder._current is self:
            Recorder._current = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        recorder = Recorder._current
        if recorder is None:
            return
        try:
            recorder._note(event, args)
        except Exception as error:  # a hook that raises would fail the build's own call
            recorder.blind = f"audit hook: {type(error).__name__}"

    def _absolute(self, path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        text = os.path.abspath(os.fsdecode(path))
        if text.startswith(_PSEUDO) and text not in _HARMLESS:
            self.blind = f"read {text}"  # what it holds is no file the record could check again
        return None if (text + "/").startswith(self.skip) or text in _HARMLESS else text

    def _resolving(self, path: Any, result: Any) -> None:
        try:
            given = os.path.abspath(os.fsdecode(path))
            if not (given + "/").startswith(self.skip):
                self.resolved.setdefault(given, os.fsdecode(result))
        except Exception as error:  # never fail the build's own call
            self.blind = f"realpath: {type(error).__name__}"

    def _note(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, _, flags = args
            if isinstance(path, int) or getattr(self.inside, "busy", False):
                return  # an open descriptor (its file was seen when opened), or the hook's own read
            text = self._absolute(path)
            if text is None:
                return
            if (flags or 0) & _WRITE_FLAGS:
                self._made(text)
            elif text not in self.opened and not _by_the_import_system():
                # (modules and their bytecode are the interpreter's: in the key, not inputs)
                self.opened[text] = then = _stat_sig(text)
                folder = os.path.dirname(text)
                if folder not in self.parents:
                    self.parents[folder] = _stat_sig(folder)
                if then is not None and stat.S_ISREG(then[5]) and not self._made_here(text) \
                        and not self._is_deferred(text):
                    self.hashed_bytes += then[2]
                    if self.hashed_bytes > MAX_HASHED_BYTES:
                        self.blind = f"it read more than {MAX_HASHED_BYTES >> 20} MiB"
                        self.stop()  # nothing more to note: no record will be made
                        return
                    self.inside.busy = True
                    try:
                        self.first[text] = file_sha256(Path(text))
                    except OSError:
                        self.first[text] = None
                    finally:
                        self.inside.busy = False
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else None
            if isinstance(path, int):
                # By descriptor: shutil.rmtree deleting what the build made (xarch lists its inputs by
                # path; a deleted input is caught as gone when the record is made).
                return
            text = self._absolute("." if path is None else path)
            if text is not None and text not in self.listed and not _by_the_import_system():
                self.listed[text] = _stat_sig(text)
        elif event in _CREATE_EVENTS:
            text = self._absolute(args[_CREATE_EVENTS[event]])
            if text is not None:
                self._made(text)
        elif event in _BLIND_EVENTS:
            self.blind = event

    def defer_hashing(self, paths: Iterable[str]) -> None:
        """Hash the files at PATHS (a file, or a folder given with a trailing "/") only when the
        witness is made, not when first opened as well. For content-addressed inputs only (a
        layout's blobs, whose names are their sha256, and the archive holding them): a change to
        one during the command that leaves its times alone still shows, as a name that is not the
        sha256 of its bytes (xarch.registry.pushrecord.mismatch). A push reads hundreds of MB of
        layers; hashing them twice more would cost more than a replay saves."""
        self.deferred = tuple(paths)

    def _is_deferred(self, path: str) -> bool:
        return any(path == item or (item.endswith("/") and path.startswith(item)) for item in self.deferred)

    def _made(self, path: str) -> None:
        """PATH is about to be created or written (the hook runs before the call)."""
        if os.path.lexists(path):
            self.written.add(path)  # an existing path: `mkdir(exist_ok=True)`, or its bytes replaced
        else:
            self.created.add(path)  # new: made by this build, never an input

    def _made_here(self, path: str) -> bool:
        """Whether PATH, or a folder above it, was created or written by this build."""
        current = path
        while True:
            if current in self.created:
                return True
            parent = os.path.dirname(current)
            if parent == current:
                return False
            current = parent

    def opened_files(self) -> list[str]:
        """Every path opened for reading so far (absolute, as text), in the order first opened."""
        return list(self.opened)

    def witness(self, outputs: Iterable[Path], leave_out: Iterable[str] = ()) -> Witness:
        """What the build read, as it is now (call it before the outputs are written: writing one
        lists the folder it goes into): raises RecordError (the build is not recorded) when the
        build went blind, or a file it read changed since, was written by it, or is gone, or an
        output lies in a folder the build walked (which files are sources then depends on it).
        LEAVE_OUT: files read that the caller witnesses otherwise (a push's layers, by size)."""
        self.stop()
        if self.blind:
            raise RecordError(f"not recorded: {self.blind}")
        outputs = list(outputs)
        out = tuple(f"{os.path.abspath(path)}/" for path in outputs)
        files: dict[str, list[Any]] = {}
        folders = {path: then for path, then in self.listed.items() if not (path + "/").startswith(out)}
        left_out = set(leave_out)
        for path, then in sorted(self.opened.items()):
            if self._made_here(path) or path in left_out:
                continue
            if then is None:
                continue  # opening failed (a probe for a file that is not there): its folder says
            if stat.S_ISDIR(then[5]):
                continue  # a folder opened to fsync or delete it: nothing was read
            if path in self.written:
                raise RecordError(f"not recorded: {path} was read and written by the command")
            self._unchanged(path, then)
            files[path] = file_witness(path)
            if files[path][1] != self.first.get(path) and not self._is_deferred(path):
                raise RecordError(f"not recorded: {path} is not what the command first read")
            folder = os.path.dirname(path)
            folders.setdefault(folder, self.parents[folder])
        listings = {}
        for folder, then in sorted(folders.items()):
            if self._made_here(folder):
                continue
            self._unchanged(folder, then)
            listings[folder] = listing_digest(folder)
        walked = sorted(folder for folder in self.listed if folder in listings)
        resolved = {given: real for given, real in sorted(self.resolved.items())
                    if not self._made_here(given) and not (given + "/").startswith(out)}
        witness = Witness(files, listings, resolved, walked)
        witness.check_resolved()  # as they are now: a link changed during the build is caught
        crossing = witness.overlaps(outputs)
        if crossing:
            raise RecordError(f"not recorded: {crossing}")
        return witness

    def _unchanged(self, path: str, then: tuple[int, ...] | None) -> None:
        """RecordError when PATH's stat differs from THEN, or when PATH changed so shortly before
        the build began that a change during it could leave the same times: file times come from
        a clock that ticks in milliseconds (the "racily clean" files of git's index)."""
        now = _stat_sig(path)
        if now != then:
            raise RecordError(f"not recorded: {path} changed while the command ran")
        if now is not None and max(now[3], now[4]) >= self.start_ns - _RACY_NS:
            raise RecordError(f"not recorded: {path} changed just before the command began")


def file_witness(path: str) -> list[Any]:
    """[st_mode, sha256 hex, [st_dev, st_ino, st_nlink], [[xattr name, value hex]…]] of the file
    PATH (symlinks followed): what an image takes from a file (bytes, mode, hard links, file
    capabilities). RecordError when it is not a regular file."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{path}: not a regular file")
        attributes: list[list[Any]] = []
        try:
            names = sorted(os.listxattr(path))
        except OSError:  # a file system without extended attributes
            names = []
        for name in names:
            try:
                attributes.append([name, os.getxattr(path, name).hex()])
            except OSError:
                attributes.append([name, None])
        digest = file_sha256(Path(path))
        after = os.stat(path)
        if (after.st_mtime_ns, after.st_ctime_ns, after.st_size, after.st_ino) != (
                info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino):
            raise RecordError(f"{path}: changed while it was hashed")
        return [info.st_mode, digest, [info.st_dev, info.st_ino, info.st_nlink], attributes]
    except OSError as error:
        raise RecordError(f"{path}: {error.strerror}") from None


def listing_digest(folder: str) -> str:
    """sha256 hex of FOLDER's entries: every name (bytes), its lstat mode and, for a symbolic
    link, its target; sorted. "absent" when there is no such folder (a build may look for one:
    the import system does); RecordError when FOLDER cannot be listed otherwise."""
    hasher = hashlib.sha256()
    try:
        with os.scandir(os.fsencode(folder)) as entries:
            rows = []
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                target = os.readlink(entry.path) if stat.S_ISLNK(mode) else b""
                rows.append((entry.name, mode, target))
    except (FileNotFoundError, NotADirectoryError):
        return "absent"
    except OSError as error:
        raise RecordError(f"{folder}: {error.strerror}") from None
    for name, mode, target in sorted(rows):
        hasher.update(b"%s\0%o\0%s\0" % (name, mode, target))
    return hasher.hexdigest()


@dataclass(frozen=True)
class Witness:
    """The inputs of a build as they were when it finished: {path: file_witness} of every file
    read, {folder: listing_digest} of every folder listed or holding such a file, {path as given:
    its real path} of every path resolved, and the folders the build walked (listed)."""

    files: dict[str, list[Any]] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)
    resolved: dict[str, str] = field(default_factory=dict)
    walked: list[str] = field(default_factory=list)

    def check_resolved(self) -> None:
        """Raise RecordError naming the first path resolved that now leads elsewhere."""
        for given, real in self.resolved.items():
            if os.path.realpath(given) != real:
                raise RecordError(f"{given}: now leads to another path")

    def check(self) -> None:
        """Raise RecordError naming the first input that is not as recorded."""
        self.check_resolved()
        for folder, digest in self.folders.items():
            if listing_digest(folder) != digest:
                raise RecordError(f"{folder}: its entries changed")
        for path, recorded in self.files.items():
            if file_witness(path) != recorded:
                raise RecordError(f"{path}: changed")

    def fields(self) -> dict[str, Any]:
        """The witness as a record's JSON holds it: files, folders, resolved, walked."""
        return {"files": self.files, "folders": self.folders, "resolved": self.resolved,
                "walked": self.walked}

    @classmethod
    def from_fields(cls, raw: dict[str, Any]) -> Witness:
        """The witness in RAW (a record's parsed JSON, see fields); RecordError when malformed."""
        files, folders = raw.get("files"), raw.get("folders")
        resolved, walked = raw.get("resolved"), raw.get("walked")
        if not (isinstance(files, dict) and isinstance(folders, dict) and isinstance(resolved, dict)
                and isinstance(walked, list)
                and all(isinstance(v, list) and len(v) == 4 for v in files.values())
                and all(isinstance(v, str) for v in [*folders.values(), *resolved.values(), *walked])
                and all(folder in folders for folder in walked)):
            raise RecordError("malformed inputs")
        return cls(files, folders, resolved, walked)

    def overlaps(self, outputs: Iterable[Path]) -> str:
        """Why OUTPUTS and this build's inputs meet, or "" when they do not: an output that lies in
        (or is) a folder the build walked (an output inside a source folder is no source,
        never_source, so the files a build takes depend on where its outputs go), or an input
        file or folder that lies in (or is) an output (writing it replaces what was read)."""

        def inside(path: str, folder: str) -> bool:
            return path == folder or path.startswith(folder.rstrip("/") + "/")

        real_walked = [os.path.realpath(folder) for folder in self.walked]
        real_inputs = [os.path.realpath(path) for path in [*self.files, *self.folders]]
        for output in outputs:
            where = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(output))),
                                 os.path.basename(os.path.abspath(output)))
            if any(inside(where, folder) for folder in real_walked):
                return f"the output {output} is in a folder the build walked"
            if any(inside(path, where) for path in real_inputs):
                return f"the output {output} holds what the build read"
        return ""


@functools.cache  # read once: a build's record key and its recipe's cache key both use it
def code_fingerprint() -> list[Any]:
    """What identifies this xarch and interpreter: every file of the xarch package and of its
    platform data (relative path, size, mtime in ns), the interpreter's version, executable and
    prefix, and each library folder with its mtime (it changes when a package is installed or
    removed)."""
    here = Path(__file__).resolve().parent  # xarch/
    # The interpreter by what it is (`python` and `python3` of one venv are one), the venv by its prefix.
    rows: list[Any] = [sys.version, os.path.realpath(sys.executable), sys.prefix]
    # xarch/ holds _platforms/ in a wheel; a source checkout has platforms/ beside it.
    for root in (here, here.parent / "platforms"):
        if not root.is_dir():
            continue
        stack = [str(root)]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.name == "__pycache__":
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        st = entry.stat(follow_symlinks=False)
                        rows.append([os.path.relpath(entry.path, root), st.st_size, st.st_mtime_ns])
    for name, value in sorted(sysconfig.get_paths().items()):
        if name in ("purelib", "platlib"):
            try:
                rows.append([name, value, os.stat(value).st_mtime_ns])
            except OSError:
                rows.append([name, value, None])
    return sorted(rows, key=repr)


def record_key(argv: list[str]) -> str:
    """The key (sha256 hex) of a build started as ARGV (its output paths taken out by the caller),
    here: with this working folder, environment, user, host, xarch code and interpreter."""
    env = {name: value for name, value in os.environ.items() if name not in _VOLATILE_ENV}
    material = {"format": FORMAT, "argv": argv, "cwd": os.getcwd(), "env": env, "euid": os.geteuid(),
                "machine": os.uname().machine, "code": code_fingerprint()}
    return hashlib.sha256(record_json(material)).hexdigest()


def record_json(value: Any) -> bytes:
    """VALUE as sorted, compact JSON in ASCII: a name that is not UTF-8 (a lone surrogate of
    surrogateescape, in a path, the environment or the command line) is kept as its escape."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True)
class BuildRecord:
    """A finished build: its inputs (Witness) and result: the index digest, the images' records
    (xarch.build.imagerecord), the index's ref name (tag), the recipe's default output, the
    recipe file (outputs must not replace it) and the epoch (oci-archive entry times, seconds)."""

    witness: Witness
    index: str
    images: list[dict[str, Any]]
    tag: str
    default_output: str
    recipe: str
    epoch: int

    def to_json(self) -> bytes:
        """The record as sorted, compact ASCII JSON, with its FORMAT."""
        return record_json({"format": FORMAT, **self.witness.fields(), "index": self.index,
                            "images": self.images, "tag": self.tag, "default_output": self.default_output,
                            "recipe": self.recipe, "epoch": self.epoch})

    @classmethod
    def from_json(cls, data: bytes) -> BuildRecord:
        """Parse DATA; RecordError for anything but a record of this FORMAT."""
        try:
            raw = json.loads(data)
            if raw["format"] != FORMAT:
                raise RecordError("another format")
            witness = Witness.from_fields(raw)
            hex_of(raw["index"])
            default = Path(raw["default_output"]) if isinstance(raw["default_output"], str) else Path("/")
            if not (isinstance(raw["images"], list) and isinstance(raw["tag"], str)
                    and len(default.parts) == 2 and default.parts[0] == "dist"
                    and default.parts[1] not in (".", "..")
                    and isinstance(raw["recipe"], str) and raw["recipe"] in witness.files
                    and type(raw["epoch"]) is int):
                raise RecordError("malformed result")
            return cls(witness, raw["index"], raw["images"], raw["tag"],
                       raw["default_output"], raw["recipe"], raw["epoch"])
        except (ValueError, KeyError, TypeError) as error:
            raise RecordError(f"malformed record: {error}") from None


class RecordStore(Generic[R]):
    """Records by key in the cache: `<ROOT>/records/<key>.json`, written atomically. READER
    parses one (BuildRecord.from_json; a push record's, xarch.registry.pushrecord), raising
    RecordError for what is not one of its kind."""

    def __init__(self, root: Path, reader: Callable[[bytes], R]) -> None:
        self.reader = reader
        self.directory = root / "records"

    def _path(self, key: str) -> Path:
        hex_of(f"sha256:{key}")  # a key is a sha256: never a path of its own
        return self.directory / f"{key}.json"

    def get(self, key: str) -> R | None:
        """The record under KEY, or None (absent, unreadable or malformed; capped at 64 MiB)."""
        from xarch.smallfile import SmallFileError, read_small

        try:
            # read_small: a FIFO or device put there is refused, never waited on
            state = os.lstat(self._path(key))
            if not stat.S_ISREG(state.st_mode):  # a symlink put there: never followed, never chmod'ed
                return None
            record = self.reader(read_small(self._path(key), 64 << 20))
            if state.st_mode & 0o077:  # made readable by others since: the user's own again
                os.chmod(self._path(key), 0o600)
            return record
        except (OSError, SmallFileError, RecordError):
            return None

    def put(self, key: str, record: BuildRecord | Any) -> None:
        """Store RECORD (anything with to_json) under KEY; a build record's index bytes must
        already be in the store of the same cache."""
        from xarch.oci.atomic import atomic_file

        # The user's own (0600, in a 0700 folder, as Docker's config is): a record holds the
        # sha256 of what the command read, and a push reads the Docker config, credentials and all.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            self.directory.chmod(0o700)
        with atomic_file(self._path(key), mode=0o600) as handle:
            handle.write(record.to_json())


@dataclass
class Recording(Generic[Q]):
    """A command being recorded for replay (xarch.cli.replay, xarch.cli.pushreplay): its REQUEST
    (the command line as read by hand), the RECORDER, the record's KEY and the cache's root."""

    request: Q
    recorder: Recorder
    key: str
    store_root: Path

    @classmethod
    def begin(cls, request: Q, key: str, store_root: Path, kind: str) -> Recording[Q] | None:
        """Start recording this process for REQUEST under KEY; None (said with XARCH_DEBUG=1, as
        KIND: "build record", "push record") when the cache's records folder cannot be made."""
        try:
            # Made before the command reads anything: making it later would change the listing of
            # the cache folder, an input when a source lies in it (beside xarch's own folders).
            store_root.mkdir(parents=True, exist_ok=True)
            (store_root / "records").mkdir(mode=0o700, exist_ok=True)
        except OSError as error:
            say_why(kind, f"not recorded: {store_root / 'records'}: {error.strerror or error}")
            return None
        return cls(request, Recorder.start(store_root), key, store_root)


def say_why(kind: str, message: str) -> None:
    """MESSAGE on stderr with XARCH_DEBUG=1: why a command was not replayed, or not recorded, as
    `xarch: KIND: MESSAGE`."""
    if os.environ.get("XARCH_DEBUG") == "1" and sys.stderr is not None:  # None: started without one
        print(f"xarch: {kind}: {message}", file=sys.stderr)
