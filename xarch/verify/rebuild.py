"""`xarch verify`: a control build and one build with every variation at once, as reprotest
does; only when they differ are the variations bisected to name the cause.

Each build is a separate process (`python -m xarch.cli build`) on a fresh copy of the
recipe's folder, so nothing is shared but the inputs. Each variation changes one thing a
different machine would bring (folder path, TZ, locale, umask, hostname, user, CPU count,
the creation order and mtimes of the source files, an empty cache); bisection names the
variation behind a changed digest, and `xarch diff` then says what changed inside the image.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xarch.errors import BuildError, InputError, Verdict, XarchError
from xarch.oci.layout import LayoutError, LayoutReader
from xarch.oci.model import ImageIndex, layout_top
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.summary import platform_name
from xarch.visible import visible

TOP_DIFFERENCES = 5
OTHER_HOSTNAME = "xarch-verify-elsewhere"
OLD_MTIME = 1_234_567_890  # 2009: older than most epochs, so an mtime that leaks is not clamped away
REFERENCE_ENV = {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class VerifyError(InputError):
    """`verify` was asked for something it cannot do (an unknown --variations name...) (exit 2)."""

    pass


@dataclass(frozen=True)
class Conditions:
    """How one build runs. The reference is the default; a variation changes one field."""

    folder: str = "reference/recipe"  # where the source copy goes, under the work folder
    env: dict[str, str] = field(default_factory=lambda: dict(REFERENCE_ENV))
    umask: int = 0o022
    strip_group_other: bool = False  # as a checkout under umask 077 leaves the files
    reverse_creation: bool = False  # create the copied source files in reverse order
    mtime: int | None = None  # every copied file's mtime (None: the time of the copy)
    hostname: str | None = None  # run in a new UTS namespace with this hostname
    user: str | None = None  # run as this user (root only)
    one_cpu: bool = False  # pin to CPU 0
    fresh_cache: bool = False  # XARCH_CACHE is a new empty folder


@dataclass(frozen=True)
class Variation:
    """One way a rebuild differs from the reference: its name (for --variations), description, Conditions."""

    name: str
    description: str
    conditions: Conditions


VARIATIONS = (
    Variation("build_path", "source in another, deeper folder",
              Conditions(folder="elsewhere/a/much/deeper/build-path/src")),
    Variation("tz", "TZ=Pacific/Kiritimati (UTC+14)",
              Conditions(env={**REFERENCE_ENV, "TZ": "Pacific/Kiritimati"})),
    Variation("locale", "LANG=LC_ALL=fr_FR.UTF-8, LANGUAGE=fr",
              Conditions(env={**REFERENCE_ENV, "LANG": "fr_FR.UTF-8", "LC_ALL": "fr_FR.UTF-8",
                              "LANGUAGE": "fr"})),
    Variation("umask", "umask 077 and a checkout without group/other permission bits",
              Conditions(umask=0o077, strip_group_other=True)),
    Variation("hostname", f"hostname {OTHER_HOSTNAME} (new UTS namespace)",
              Conditions(hostname=OTHER_HOSTNAME)),
    Variation("user", "run as user nobody, with its own cache", Conditions(user="nobody", fresh_cache=True)),
    Variation("cpus", "one CPU (taskset -c 0)", Conditions(one_cpu=True)),
    Variation("file_order", "source files created in reverse order", Conditions(reverse_creation=True)),
    Variation("mtimes", f"source files' mtimes set to {OLD_MTIME} (2009)", Conditions(mtime=OLD_MTIME)),
    Variation("cache", "a fresh empty XARCH_CACHE instead of the shared one", Conditions(fresh_cache=True)),
)
VARIATION_NAMES = tuple(v.name for v in VARIATIONS)


def parse_variations(text: str | None) -> tuple[str, ...]:
    """--variations a,b,c → the names, checked; None or "all" → every variation.

    VerifyError (exit 2) names unknown names.
    """
    if not text or text.strip() == "all":
        return VARIATION_NAMES
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in VARIATION_NAMES]
    if unknown or not names:
        raise VerifyError(f"--variations {text!r}: unknown variation {', '.join(unknown) or '(none given)'} "
                          f"(known: {', '.join(VARIATION_NAMES)})")
    return names


ACCEPTED = ("same", "skipped", "not applicable")


@dataclass
class VariationResult:
    """What one variation's rebuild gave: status (same, differs, failed, skipped, not applicable), a
    note, {digest name: digest}, the digest names that differ from the reference, the first few
    differences (`xarch diff` JSON entries) and their total count, and the time taken in seconds.
    """

    name: str
    description: str
    status: str  # same, differs, failed (could not rebuild), skipped, not applicable
    note: str = ""
    digests: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # digest names that differ from the reference
    differences: list[dict[str, Any]] = field(default_factory=list)  # the first few, from xarch diff
    difference_count: int = 0
    seconds: float = 0.0


@dataclass
class VerifyReport:
    """The reference build's digests ({"index": ..., platform name: ...}) and each variation's result."""

    reference: dict[str, str] = field(default_factory=dict)  # {"index": …, "linux/amd64": …}
    results: list[VariationResult] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(result.status in ACCEPTED for result in self.results)

    @property
    def differing(self) -> list[VariationResult]:
        """Rebuilds that gave other digests: the only ground for "NOT reproducible"."""
        return [result for result in self.results if result.status == "differs"]

    @property
    def failed(self) -> list[VariationResult]:
        """Rebuilds that could not run to the end: nothing is known about them either way."""
        return [result for result in self.results if result.status == "failed"]

    @property
    def builds(self) -> dict[str, dict[str, str]]:
        """Digests per build, the reference first (skipped and failed rebuilds have none)."""
        result = {"reference": self.reference}
        result.update({r.name: r.digests for r in self.results if r.digests})
        return result

    def to_json(self) -> dict[str, Any]:
        """{identical, reference, variations: [result fields]}, as `verify --json` prints it."""
        return {
            "identical": self.identical,
            "reference": self.reference,
            "variations": [result.__dict__ for result in self.results],
        }


# --- the source copy ------------------------------------------------------------------------

def copy_source(source: Path, target: Path, conditions: Conditions) -> None:
    """Copy the recipe folder SOURCE to TARGET (which must not exist) as CONDITIONS say: files created
    in reverse order, group/other bits stripped, every mtime (seconds since the epoch) set. Build
    outputs and VCS folders (dist, .git, .tox, __pycache__) are left out; symlinks copied as links.
    """
    files = sorted(p for p in source.rglob("*") if not _is_output(p, source))
    if conditions.reverse_creation:
        files.reverse()
    target.mkdir(parents=True)
    for path in files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            destination.symlink_to(os.readlink(path))
            continue
        if path.is_dir():
            destination.mkdir(exist_ok=True)
            mode = 0o755
        else:
            shutil.copyfile(path, destination)
            mode = path.stat().st_mode & 0o7777
        os.chmod(destination, mode & ~0o077 if conditions.strip_group_other else mode)
    if conditions.mtime is not None:
        # Folders last, since creating their entries above moved their mtimes.
        for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if not path.is_symlink():
                os.utime(path, (conditions.mtime, conditions.mtime))


def _is_output(path: Path, source: Path) -> bool:
    parts = path.relative_to(source).parts
    return bool(parts) and parts[0] in ("dist", ".git", ".tox", "__pycache__")


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, gid)


# --- running one build ----------------------------------------------------------------------

def docker_socket() -> str | None:
    """The Unix socket of the Docker daemon a `dockerfile:` stage talks to (None: not a Unix socket)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def not_applicable(conditions: Conditions, loaded: LoadedRecipe) -> str | None:
    """Why CONDITIONS cannot apply to this recipe at all (None: they can).

    A `dockerfile:` stage is built by the Docker daemon; another user without access to its
    socket cannot build it, which says nothing about reproducibility.
    """
    socket_path = docker_socket()
    if conditions.user is None or socket_path is None:
        return None
    if not any(stage.dockerfile for stage in loaded.recipe.stages.values()):
        return None
    check = ["sh", "-c", 'test -r "$0" && test -w "$0"', socket_path]
    probe = subprocess.run(wrap_command(conditions, check), capture_output=True, check=False)
    if probe.returncode != 0:
        return (f"the recipe has dockerfile: stages and user {conditions.user} cannot use the Docker socket "
                f"{socket_path}")
    return None


def skip_reason(conditions: Conditions) -> str | None:
    """Why this host cannot apply CONDITIONS (None: it can)."""
    if conditions.hostname is not None:
        if os.geteuid() != 0:
            return "needs root to set a hostname in a new UTS namespace"
        if not shutil.which("unshare") or not shutil.which("hostname"):
            return "needs unshare and hostname (util-linux, hostname)"
    if conditions.user is not None:
        if os.geteuid() != 0:
            return "needs root to run the build as another user"
        if not shutil.which("setpriv"):
            return "needs setpriv (util-linux)"
        try:
            pwd.getpwnam(conditions.user)
        except KeyError:
            return f"no user {conditions.user} on this host"
    if conditions.one_cpu and not shutil.which("taskset"):
        return "needs taskset (util-linux)"
    if conditions.hostname is not None or conditions.user is not None or conditions.one_cpu:
        # Root in a container may still lack CAP_SYS_ADMIN or CAP_SETPCAP: try it before building.
        command = wrap_command(conditions, ["true"])
        probe = subprocess.run(command, capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
            return f"cannot be applied on this host: {last}"
    return None


def wrap_command(conditions: Conditions, argv: list[str]) -> list[str]:
    """ARGV run under CONDITIONS' CPU set, hostname, user and umask (set last, by a shell, so that
    nothing between here and the build resets it; preexec_fn is unsafe with parallel rebuilds)."""
    prefix: list[str] = []
    if conditions.one_cpu:
        prefix += ["taskset", "-c", "0"]
    if conditions.hostname is not None:
        prefix += ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', conditions.hostname]
    if conditions.user is not None:
        account = pwd.getpwnam(conditions.user)
        # The interpreter may live where the user cannot read (here: /root/.pyenv). Reading
        # everywhere (CAP_DAC_READ_SEARCH) is granted; writing is not, and the uid is theirs.
        prefix += ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups",
                   "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return [*prefix, "sh", "-c", 'umask "$0" && exec "$@"', f"{conditions.umask:04o}", *argv]


def build_env(conditions: Conditions, epoch: int, base: Path) -> dict[str, str]:
    """The process environment under CONDITIONS: the caller's, with locale and TZ replaced."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LC_", "LANG", "TZ"))}
    env.update(conditions.env, SOURCE_DATE_EPOCH=str(epoch))
    if conditions.fresh_cache:
        (base / "cache").mkdir(parents=True)
        env["XARCH_CACHE"] = str(base / "cache")
    if conditions.user is not None:
        (base / "home").mkdir(parents=True)
        env.update(HOME=str(base / "home"), USER=conditions.user, LOGNAME=conditions.user)
    return env


def hand_over_to_variation(base: Path, conditions: Conditions) -> None:
    """Give BASE (source copy, output folder, home, cache) to the user the build runs as."""
    if conditions.user is not None:
        account = pwd.getpwnam(conditions.user)
        _chown_tree(base, account.pw_uid, account.pw_gid)


@dataclass(frozen=True)
class BuildRequest:
    """What every build of one `verify` shares: the recipe, the platforms, SOURCE_DATE_EPOCH (seconds),
    the work folder holding each build's copy and output, and the --strategy passed to each (None: none).
    """

    loaded: LoadedRecipe
    platforms: tuple[Platform, ...]
    epoch: int
    workdir: Path
    strategy: str | None = None  # --strategy for every build (the reference's and each variation's)


def run_build(request: BuildRequest, name: str, conditions: Conditions) -> Path:
    """Copy the source under CONDITIONS, build it in a new process, return the OCI layout it wrote.

    BuildError (exit 2) with the build's last stderr line when it fails.
    """
    loaded = request.loaded
    base = request.workdir / name
    source = base / conditions.folder
    copy_source(loaded.folder, source, conditions)
    env = build_env(conditions, request.epoch, base)
    (base / "out").mkdir()
    output = base / "out" / "image"
    hand_over_to_variation(base, conditions)
    platforms = ",".join(p.name for p in request.platforms)
    # --no-cache: a rebuild that takes its images from a cache proves nothing.
    argv = [sys.executable, "-m", "xarch.cli", "build", "-q", "--no-cache",
            "-f", str(source / loaded.path.name), "--platform", platforms, "--output", f"oci:{output}"]
    if request.strategy:
        argv += ["--strategy", request.strategy]
    result = subprocess.run(wrap_command(conditions, argv), cwd=source, env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"build {name} failed: {last}")
    return output


def layout_digests(path: Path) -> dict[str, str]:
    """{"index": digest, "linux/amd64": manifest digest, …} of the layout at PATH."""
    reader = LayoutReader(path)
    try:
        top = layout_top(reader)
        if not isinstance(top, ImageIndex):
            raise LayoutError(f"{path}: names a lone manifest, not an image index")
        result = {"index": top.digest}
        for descriptor in top.manifests():
            result[platform_name(descriptor.platform or {})] = descriptor.digest
        return result
    finally:
        reader.close()


def judge(result: VariationResult, reference: Path, reference_digests: dict[str, str], rebuilt: Path) -> None:
    """Fill RESULT from the layout REBUILT: its digests, those that changed, and (through diff) why."""
    from xarch.diff import diff_paths

    result.digests = layout_digests(rebuilt)
    result.changed = [key for key in reference_digests if result.digests.get(key) != reference_digests[key]]
    if not result.changed:
        result.status = "same"
        return
    result.status = "differs"
    diff = diff_paths(str(reference), str(rebuilt))
    result.difference_count = len(diff.differences)
    result.differences = [d.to_json() for d in diff.differences[:TOP_DIFFERENCES]]


def combine(variations: list[Variation]) -> Conditions:
    """One set of conditions with every variation of VARIATIONS applied at once (reprotest's
    "all variations" build): each field that a variation changes from the reference takes
    that variation's value; the environments are merged."""
    reference = Conditions()
    values: dict[str, Any] = {}
    env = dict(reference.env)
    for variation in variations:
        for item in fields(Conditions):
            value = getattr(variation.conditions, item.name)
            if item.name == "env":
                env.update({k: v for k, v in value.items() if reference.env.get(k) != v})
            elif value != getattr(reference, item.name):
                values[item.name] = value
    return replace(reference, env=env, **values)


def rebuild_and_compare(loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter,
                        variations: tuple[str, ...] | None = None,
                        strategy: str | None = None) -> VerifyReport:
    """As reprotest does: one control build and, beside it, one build with every variation that
    applies here at once. Only when those differ (or the varied build fails) are the variations
    bisected, in halves built side by side, down to the one (or the set that only together)
    changes a digest. Variations this host cannot apply are "skipped"; those that cannot apply
    to the recipe are "not applicable"; neither is a difference."""
    chosen = [v for v in VARIATIONS if v.name in (variations or VARIATION_NAMES)]
    epoch, _ = resolve_epoch(loaded)
    report = VerifyReport()
    results = {v.name: VariationResult(v.name, v.description, "same") for v in chosen}
    applicable: list[Variation] = []
    for variation in chosen:
        result = results[variation.name]
        reason = skip_reason(variation.conditions)
        if reason:
            result.status, result.note = "skipped", reason
            continue
        reason = not_applicable(variation.conditions, loaded)
        if reason:
            result.status, result.note = "not applicable", reason
            continue
        applicable.append(variation)
    with tempfile.TemporaryDirectory(prefix="xarch-verify-") as tmp:
        os.chmod(tmp, 0o755)  # a rebuild as another user must reach its own folder inside
        request = BuildRequest(loaded, platforms, epoch, Path(tmp), strategy)
        with reporter.tasks() as board, ThreadPoolExecutor(max_workers=2) as pool:
            task = board.add("verify: control build and one build with every variation", 2)
            control = pool.submit(run_build, request, "reference", Conditions())
            varied = pool.submit(_build_group, request, applicable, None, None) if applicable else None
            reference = control.result()
            report.reference = layout_digests(reference)
            board.advance(task, "control build done")
            if varied is not None:
                outcome = varied.result()
                _judge_group(outcome, reference, report.reference)
                board.advance(task, f"every variation at once: {outcome[0].status}")
                _settle(request, applicable, outcome, reference, report.reference, results, pool, reporter)
    report.results = [results[v.name] for v in chosen]
    return report


def _group_name(group: list[Variation]) -> str:
    return "+".join(v.name for v in group)


def _build_group(request: BuildRequest, group: list[Variation], reference: Path | None,
                 reference_digests: dict[str, str] | None) -> tuple[VariationResult, Path | None]:
    """Build with GROUP's variations at once. (result, layout); status "failed" when it cannot run."""
    name = _group_name(group)
    result = VariationResult(name, "; ".join(v.description for v in group), "same")
    started = time.monotonic()
    try:
        # Folder names are short: the build path variation already makes a deep one.
        rebuilt = run_build(request, "all" if len(group) > 1 else group[0].name, combine(group))
    except BuildError as error:
        result.status, result.note = "failed", str(error)
        return result, None
    finally:
        result.seconds = round(time.monotonic() - started, 2)
    if reference is not None and reference_digests is not None:
        judge(result, reference, reference_digests, rebuilt)
    return result, rebuilt


def _judge_group(outcome: tuple[VariationResult, Path | None], reference: Path,
                 reference_digests: dict[str, str]) -> None:
    result, rebuilt = outcome
    if rebuilt is not None and not result.digests:
        judge(result, reference, reference_digests, rebuilt)


def _settle(request: BuildRequest, group: list[Variation], outcome: tuple[VariationResult, Path | None],
            reference: Path, reference_digests: dict[str, str], results: dict[str, VariationResult],
            pool: ThreadPoolExecutor, reporter: Reporter) -> None:
    """Give each variation of GROUP its result from OUTCOME (GROUP's build), bisecting GROUP
    when OUTCOME differs from the reference or failed."""
    found, _ = outcome
    if found.status == "same" or len(group) == 1:
        for variation in group:
            mine = results[variation.name]
            mine.status, mine.digests, mine.seconds = found.status, dict(found.digests), found.seconds
            mine.changed, mine.differences = list(found.changed), list(found.differences)
            mine.difference_count = found.difference_count
            mine.note = found.note if len(group) == 1 else f"built with {_group_name(group)} at once"
        return
    reporter.info(f"verify: {_group_name(group)} {found.status}; bisecting")
    halves = [group[: len(group) // 2], group[len(group) // 2:]]
    # Folder names must not collide: each half builds under its own name.
    futures = [pool.submit(_build_half, request, half, reference, reference_digests) for half in halves]
    outcomes = [future.result() for future in futures]
    if all(result.status == "same" for result, _ in outcomes):
        # Neither half alone changes anything: these variations only do it together.
        for variation in group:
            mine = results[variation.name]
            mine.status, mine.digests, mine.changed = found.status, dict(found.digests), list(found.changed)
            mine.differences, mine.difference_count = list(found.differences), found.difference_count
            mine.note = f"only together with {', '.join(v.name for v in group if v is not variation)}"
        return
    for part, part_outcome in zip(halves, outcomes, strict=True):
        _settle(request, part, part_outcome, reference, reference_digests, results, pool, reporter)


def _build_half(request: BuildRequest, group: list[Variation], reference: Path,
                reference_digests: dict[str, str]) -> tuple[VariationResult, Path | None]:
    unique = replace(request, workdir=request.workdir / f"bisect-{_group_name(group)}")
    unique.workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(unique.workdir, 0o755)
    return _build_group(unique, group, reference, reference_digests)


# --- output ---------------------------------------------------------------------------------

def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_report(report: VerifyReport, as_json: bool, console: Console) -> None:
    """Print REPORT on CONSOLE: one JSON document on stdout with AS_JSON, else the table of variations,
    the reference digests, the first differences of each differing rebuild, and the verdict line.
    """
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True, default=str))
        return
    table = Table(title="xarch verify: control build vs every variation at once, bisected on a difference",
                  title_justify="left")
    for column in ("variation", "what differs from the reference", "result", "digests that changed"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        outcome = result.status if result.status in ACCEPTED else result.status.upper()
        detail = ", ".join(result.changed) if result.changed else result.note
        if result.status == "same":  # a note (how the result was reached) is not a changed digest
            detail = "none" + (f" ({result.note})" if result.note else "")
        # Text cells: a difference's detail holds file names from the images, never rich markup.
        cells = (result.name, result.description, outcome, detail or "-")
        table.add_row(*(Text(visible(cell)) for cell in cells))
    console.print(table)
    for key, digest in report.reference.items():
        console.print(f"reference {key}: {digest}", highlight=False)
    for result in report.results:
        if result.status != "differs":
            continue
        shown = len(result.differences)
        console.print(f"{result.name}: {result.difference_count} differences, first {shown}:",
                      highlight=False)
        for d in result.differences:
            where = " ".join(part for part in (d["platform"], d["where"], d["item"]) if part)
            changes = ", ".join(d["changes"]) or "no digest"
            console.print(f"  {where}: {d['field']}: {_short(d['a'])} → {_short(d['b'])} (changes {changes})",
                          highlight=False, markup=False)
    if report.differing:
        verdict = "NOT reproducible"
    elif report.failed:
        # A rebuild that could not run proves nothing either way: not a verdict (see verdict_error).
        verdict = f"not verified: {len(report.failed)} rebuild(s) could not run"
    else:
        verdict = "all digests identical under every variation"
    console.print(verdict, highlight=False)


def verdict_error(report: VerifyReport) -> XarchError | None:
    """What `xarch verify` exits with: None (0) when identical; Verdict (1) when a rebuild gave other
    digests; BuildError (2) when some rebuild could not run and none differed."""
    if report.differing:
        names = ", ".join(result.name for result in report.differing)
        return Verdict(f"not reproducible: the {names} variation(s) changed digests; the table above says "
                       "which, and what changed inside (xarch diff)")
    if report.failed:
        names = ", ".join(result.name for result in report.failed)
        return BuildError(f"could not verify: the {names} rebuild(s) could not run ({report.failed[0].note})")
    return None

