"""Run the CI pipelines of docs/ci.md on this machine, as written (used by tests/integration/test_ci_docs.py).

GitHub Actions and GitLab CI cannot run here, so this stands in for them just far enough to run
their shell: jobs in dependency order, each matrix entry as its own job with a fresh checkout, a
fresh $HOME and a fresh $XARCH_CACHE, and only the declared artifacts passed between jobs.
Anything it does not understand (an expression form, an action, a job key) is an error, so the doc
cannot drift into syntax that the test would silently skip. No maintained library runs both
formats locally without containers (act needs dockerd and images; gitlab-runner exec is gone).
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.M | re.S)
GITHUB_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
GITLAB_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# A step that installs xarch is not run (xarch is installed here) but every job must have one.
INSTALL_MARKERS = ("bash scripts/install", "pip install .")

GITHUB_WORKFLOW_KEYS = {"name", "on", "permissions", "defaults", "env", "jobs"}
GITHUB_JOB_KEYS = {"name", "runs-on", "container", "strategy", "needs", "permissions", "env", "steps"}
GITHUB_STEP_KEYS = {"name", "uses", "with", "run", "env"}
GITLAB_TOP_KEYWORDS = {"stages", "variables", "default"}
GITLAB_DEFAULT_KEYS = {"image", "before_script"}
GITLAB_JOB_KEYS = {"stage", "image", "tags", "parallel", "variables", "before_script", "script", "artifacts",
                   "rules"}
# The one form of `rules: - if:` the harness evaluates: which event started the pipeline.
GITLAB_SOURCE_RULE = re.compile(r'\$CI_PIPELINE_SOURCE\s*(==|!=)\s*"(\w+)"')


class PipelineError(AssertionError):
    """The pipeline cannot be run as written, or one of its commands failed."""


def doc_blocks(text: str) -> tuple[dict[str, str], list[str]]:
    """Named ```yaml blocks of a markdown text (name: the `# path` comment on their first line),
    and the language tags of every other fenced block."""
    named: dict[str, str] = {}
    others: list[str] = []
    for language, body in FENCE.findall(text):
        first = body.splitlines()[0] if body.strip() else ""
        if language == "yaml" and first.startswith("# "):
            name = first[2:].strip()
            if name in named:
                raise PipelineError(f"two yaml blocks are named {name}")
            named[name] = body
        else:
            others.append(language or "(no language)")
    return named, others


@dataclass
class StepResult:
    job: str
    step: str
    script: str
    returncode: int = 0
    output: str = ""
    skipped: str | None = None  # why the step was not run ("install", "plumbing")
    env: dict[str, str] = field(default_factory=dict, repr=False)  # what it ran with, to run it again


@dataclass
class JobRun:
    name: str
    matrix: dict[str, str]
    workdir: Path
    env: dict[str, str]
    runs_on: list[str]  # runs-on label(s) or GitLab tags, expressions resolved
    image: str | None
    steps: list[StepResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        values = ",".join(self.matrix.values())
        return f"{self.name} ({values})" if values else self.name

    def installs(self) -> list[StepResult]:
        return [step for step in self.steps if step.skipped == "install"]


@dataclass
class Runner:
    """What the pipelines run against: a folder for the jobs, how to check out the repository,
    the environment the harness imposes, and the values of the CI contexts the doc may use."""

    root: Path
    checkout: Callable[[Path], None]
    overrides: Mapping[str, str]  # win over the doc's env (REGISTRY, IMAGE, XARCH_PUSH_FLAGS…)
    contexts: Mapping[str, str] = field(default_factory=dict)  # "secrets.GITHUB_TOKEN", "CI_REGISTRY"…
    path_prefix: Iterable[Path] = ()
    timeout: float = 600
    runs: list[JobRun] = field(default_factory=list)

    def new_job(self, name: str, matrix: dict[str, str], runs_on: list[str], image: str | None) -> JobRun:
        folder = self.root / f"{len(self.runs):02d}-{name}-{'-'.join(matrix.values()) or 'single'}"
        workdir, home, cache = folder / "work", folder / "home", folder / "cache"
        for folder_path in (workdir, home, cache):
            folder_path.mkdir(parents=True)
        search_path = os.pathsep.join([*map(str, self.path_prefix), os.environ.get("PATH", "/usr/bin:/bin")])
        # A fresh, minimal environment: nothing of the caller's (DOCKER_CONFIG, SOURCE_DATE_EPOCH…) leaks in.
        env = {"PATH": search_path, "HOME": str(home), "XARCH_CACHE": str(cache), "LANG": "C.UTF-8"}
        run = JobRun(name, matrix, workdir, env, runs_on, image)
        self.runs.append(run)
        return run

    def shell(self, job: JobRun, step: str, script: str, env: Mapping[str, str],
              check: bool = True) -> StepResult:
        """Run SCRIPT as the CI would (bash -euo pipefail) in the job's folder."""
        full_env = {**env, **self.overrides, **job.env}
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=job.workdir, env=full_env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=self.timeout, check=False)
        result = StepResult(job.label, step, script, done.returncode, done.stdout, env=dict(env))
        if check and done.returncode != 0:
            raise PipelineError(f"{job.label}: step {step!r} exited {done.returncode}:\n{script}\n"
                                f"--- output ---\n{done.stdout[-4000:]}")
        return result


def _install_step(script: str) -> bool:
    return any(marker in script for marker in INSTALL_MARKERS)


def _copy_into(source: Path, target: Path) -> None:
    """Copy a file, or a folder's contents, into TARGET (merging with what is there)."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


# ---- GitHub Actions ---------------------------------------------------------------------------


def _check_keys(where: str, mapping: Mapping[Any, Any], allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise PipelineError(f"{where}: the harness does not run {', '.join(unknown)}")


def _no_expressions(where: str, value: Any) -> None:
    """Fail if VALUE (walked recursively) holds a GitHub expression."""
    if isinstance(value, str) and "${{" in value:
        raise PipelineError(f"{where}: no expression allowed here: {value!r}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _no_expressions(f"{where}.{key}", item)
    if isinstance(value, list):
        for item in value:
            _no_expressions(where, item)


def resolve_github(where: str, value: Any, matrix: Mapping[str, str],
                   contexts: Mapping[str, str] | None) -> str:
    """Substitute `${{ matrix.KEY }}` (and, when CONTEXTS is given, exactly the expressions it names,
    e.g. `${{ secrets.GITHUB_TOKEN }}`); any other expression is an error."""
    text = str(value)

    def one(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        key = inner.removeprefix("matrix.")
        if inner.startswith("matrix.") and key in matrix:
            return str(matrix[key])
        if contexts is not None and inner in contexts:
            return contexts[inner]
        raise PipelineError(f"{where}: unsupported expression ${{{{ {inner} }}}}")

    resolved = GITHUB_EXPRESSION.sub(one, text)
    if "${{" in resolved:
        raise PipelineError(f"{where}: unterminated expression in {text!r}")
    return resolved


def _github_env(where: str, mapping: Any, matrix: Mapping[str, str],
                contexts: Mapping[str, str]) -> dict[str, str]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise PipelineError(f"{where}: env must be a mapping")
    return {str(key): resolve_github(f"{where}.{key}", value, matrix, contexts)
            for key, value in mapping.items()}


def _matrix_entries(where: str, strategy: Any) -> list[dict[str, str]]:
    if strategy is None:
        return [{}]
    _check_keys(where, strategy, {"matrix", "fail-fast"})
    matrix = strategy.get("matrix") or {}
    _no_expressions(where, matrix)
    include = matrix.get("include")
    axes = {key: value for key, value in matrix.items() if key != "include"}
    if "exclude" in axes or (include and axes):
        raise PipelineError(f"{where}: the harness runs a matrix of axes or of include entries, not both")
    if include:
        return [{str(k): str(v) for k, v in entry.items()} for entry in include]
    keys = list(axes)
    return [dict(zip(keys, map(str, combo), strict=True))
            for combo in itertools.product(*(axes[k] for k in keys))]


def _job_order(jobs: Mapping[str, Any]) -> list[str]:
    order: list[str] = []
    pending = dict(jobs)
    while pending:
        ready = [name for name, job in pending.items()
                 if all(need in order for need in _needs(job))]
        if not ready:
            raise PipelineError(f"jobs with unknown or circular needs: {sorted(pending)}")
        for name in ready:
            order.append(name)
            del pending[name]
    return order


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def run_github(workflow_text: str, runner: Runner) -> list[JobRun]:
    """Run every job of a GitHub Actions workflow, matrix entries one after another."""
    workflow = yaml.safe_load(workflow_text)
    # YAML 1.1 reads the key `on` as true.
    workflow = {("on" if key is True else key): value for key, value in workflow.items()}
    _check_keys("workflow", workflow, GITHUB_WORKFLOW_KEYS)
    for key in ("name", "on", "permissions", "defaults"):
        _no_expressions(key, workflow.get(key))
    shell = (workflow.get("defaults") or {}).get("run", {}).get("shell")
    if shell != "bash":
        # GitHub runs `run:` with sh inside a container unless told otherwise; the harness runs bash.
        raise PipelineError("workflow: defaults.run.shell must be bash")
    artifacts: dict[str, Path] = {}
    for name in _job_order(workflow["jobs"]):
        job = workflow["jobs"][name]
        _check_keys(f"jobs.{name}", job, GITHUB_JOB_KEYS)
        _no_expressions(f"jobs.{name}.permissions", job.get("permissions"))
        for matrix in _matrix_entries(f"jobs.{name}.strategy", job.get("strategy")):
            runs_on = job.get("runs-on")
            labels = runs_on if isinstance(runs_on, list) else [runs_on]
            container = job.get("container")
            runs_on_labels = [resolve_github(f"jobs.{name}.runs-on", label, matrix, None) for label in labels]
            image = resolve_github(f"jobs.{name}.container", container, matrix, None) if container else None
            run = runner.new_job(name, matrix, runs_on_labels, image)
            env = {**_github_env("env", workflow.get("env"), matrix, runner.contexts),
                   **_github_env(f"jobs.{name}.env", job.get("env"), matrix, runner.contexts)}
            for index, step in enumerate(job.get("steps") or []):
                where = f"jobs.{name}.steps[{index}]"
                _check_keys(where, step, GITHUB_STEP_KEYS)
                step_name = resolve_github(f"{where}.name", step.get("name", ""), matrix, None)
                if "uses" in step:
                    run.steps.append(_github_action(where, step, matrix, run, runner, artifacts))
                    continue
                script = str(step["run"])
                _no_expressions(f"{where}.run", script)  # scripts must run outside CI as they are
                label = step_name or script.splitlines()[0]
                if _install_step(script):
                    run.steps.append(StepResult(run.label, label, script, skipped="install"))
                    continue
                step_env = {**env, **_github_env(f"{where}.env", step.get("env"), matrix, runner.contexts)}
                run.steps.append(runner.shell(run, label, script, step_env))
    return runner.runs


def _github_action(where: str, step: Mapping[str, Any], matrix: Mapping[str, str], run: JobRun,
                   runner: Runner, artifacts: dict[str, Path]) -> StepResult:
    """The CI plumbing actions, done the way GitHub does them; any other action is an error."""
    uses = str(step["uses"])
    action = uses.split("@")[0]
    options = {str(k): resolve_github(f"{where}.with.{k}", v, matrix, None)
               for k, v in (step.get("with") or {}).items()}
    result = StepResult(run.label, uses, "", skipped="plumbing")
    if action == "actions/checkout":
        runner.checkout(run.workdir)
    elif action == "actions/setup-python":
        pass  # python3 is here already
    elif action == "actions/upload-artifact":
        _check_keys(f"{where}.with", options, {"name", "path", "retention-days", "if-no-files-found"})
        name, source = options.get("name", "artifact"), run.workdir / options["path"]
        if name in artifacts:
            raise PipelineError(f"{where}: artifact {name!r} uploaded twice (upload-artifact@v4 refuses it)")
        if not source.exists():
            raise PipelineError(f"{where}: nothing to upload at {options['path']!r}")
        # v4 stores a folder's contents, or a file under its own name.
        stored = runner.root / "artifacts" / name
        _copy_into(source, stored if source.is_dir() else stored / source.name)
        artifacts[name] = stored
    elif action == "actions/download-artifact":
        _check_keys(f"{where}.with", options, {"name", "pattern", "merge-multiple", "path"})
        target = run.workdir / options.get("path", ".")
        if "name" in options:
            chosen = [options["name"]] if options["name"] in artifacts else []
        else:
            chosen = sorted(n for n in artifacts if fnmatch.fnmatchcase(n, options.get("pattern", "*")))
        if not chosen:
            raise PipelineError(f"{where}: no artifact matches {options}")
        merge = "name" in options or options.get("merge-multiple", "false").lower() == "true"
        for name in chosen:
            _copy_into(artifacts[name], target if merge else target / name)
    else:
        raise PipelineError(f"{where}: the harness does not run the action {uses}")
    return result


# ---- GitLab CI --------------------------------------------------------------------------------


def resolve_gitlab(where: str, value: Any, known: Mapping[str, str]) -> str:
    """Expand `$NAME`/`${NAME}` from KNOWN (the predefined CI variables the doc may use, or the
    matrix values for tags); any other reference is an error."""
    text = str(value)
    if "$$" in text:
        raise PipelineError(f"{where}: the harness does not expand $$ escapes")

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in known:
            raise PipelineError(f"{where}: unsupported variable reference ${name}")
        return known[name]

    return GITLAB_REFERENCE.sub(one, text)


def _gitlab_variables(where: str, mapping: Any, known: Mapping[str, str]) -> dict[str, str]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise PipelineError(f"{where}: variables must be a mapping")
    return {str(key): resolve_gitlab(f"{where}.{key}", value, known) for key, value in mapping.items()}


def _gitlab_matrix(where: str, parallel: Any) -> list[dict[str, str]]:
    if parallel is None:
        return [{}]
    if not isinstance(parallel, Mapping) or set(parallel) != {"matrix"}:
        raise PipelineError(f"{where}: the harness runs parallel:matrix only")
    entries: list[dict[str, str]] = []
    for entry in parallel["matrix"]:
        keys = list(entry)
        values = [v if isinstance(v, list) else [v] for v in entry.values()]
        entries += [dict(zip(keys, map(str, combo), strict=True)) for combo in itertools.product(*values)]
    return entries


def _script_items(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise PipelineError(f"{where}: a script is a list of strings")
    return items


def _gitlab_rules_run(where: str, rules: Any, source: str) -> bool:
    """Whether a job with RULES runs in a pipeline started by SOURCE ("push", "schedule"): the first
    rule whose `if: $CI_PIPELINE_SOURCE == "…"` (or !=) matches decides; no rules: it runs."""
    if rules is None:
        return True
    if not isinstance(rules, list):
        raise PipelineError(f"{where}.rules: a list of rules")
    for rule in rules:
        _check_keys(f"{where}.rules", rule, {"if", "when"})
        match = GITLAB_SOURCE_RULE.fullmatch(str(rule.get("if", "")).strip())
        if match is None:
            raise PipelineError(f"{where}.rules: the harness evaluates only "
                                f"`if: $CI_PIPELINE_SOURCE == \"…\"` (or !=), not {rule!r}")
        if (source == match.group(2)) == (match.group(1) == "=="):
            return rule.get("when", "on_success") != "never"
    return False


def run_gitlab(pipeline_text: str, runner: Runner, source: str = "push") -> list[JobRun]:
    """Run every job of a .gitlab-ci.yml, stage by stage, parallel:matrix entries one after another;
    SOURCE is the event that started the pipeline, for the jobs' `rules`."""
    pipeline = yaml.safe_load(pipeline_text)
    stages = pipeline.get("stages")
    if not stages:
        raise PipelineError("pipeline: list its stages")
    default = pipeline.get("default") or {}
    _check_keys("default", default, GITLAB_DEFAULT_KEYS)
    jobs = {name: job for name, job in pipeline.items() if name not in GITLAB_TOP_KEYWORDS}
    for name, job in jobs.items():
        if str(name).startswith(".") or not isinstance(job, Mapping):
            raise PipelineError(f"{name}: the harness runs plain jobs only (no hidden jobs or includes)")
        _check_keys(name, job, GITLAB_JOB_KEYS)
        if job.get("stage") not in stages:
            raise PipelineError(f"{name}: stage {job.get('stage')!r} is not one of {stages}")
    global_vars = _gitlab_variables("variables", pipeline.get("variables"), runner.contexts)
    earlier: list[tuple[JobRun, list[str]]] = []  # finished jobs and their artifact paths
    for stage in stages:
        finished_here: list[tuple[JobRun, list[str]]] = []
        for name, job in jobs.items():
            if job["stage"] != stage or not _gitlab_rules_run(name, job.get("rules"), source):
                continue
            for matrix in _gitlab_matrix(f"{name}.parallel", job.get("parallel")):
                tags = [resolve_gitlab(f"{name}.tags", tag, matrix) for tag in job.get("tags") or []]
                run = runner.new_job(name, matrix, tags, job.get("image") or default.get("image"))
                runner.checkout(run.workdir)
                for previous, paths in earlier:  # GitLab hands every earlier stage's artifacts on
                    for path in paths:
                        _copy_into(previous.workdir.parent / "artifacts" / path, run.workdir / path)
                env = {**global_vars, **_gitlab_variables(f"{name}.variables", job.get("variables"),
                                                          runner.contexts), **matrix}
                before = job.get("before_script", default.get("before_script"))
                items = _script_items(f"{name}.before_script", before) + _script_items(f"{name}.script",
                                                                                       job.get("script"))
                kept = []
                for item in items:
                    if _install_step(item):
                        run.steps.append(StepResult(run.label, "install", item, skipped="install"))
                    else:
                        kept.append(item)
                # GitLab runs all items in one shell session, stopping at the first failure.
                run.steps.append(runner.shell(run, "script", "\n".join(kept), env))
                paths = _artifact_paths(name, job.get("artifacts"))
                for path in paths:
                    # (not `source`: that is the pipeline's trigger, read by every later job's rules)
                    made = run.workdir / path
                    if not made.exists():
                        raise PipelineError(f"{run.label}: artifact path {path!r} was not created")
                    _copy_into(made, run.workdir.parent / "artifacts" / path)
                finished_here.append((run, paths))
        earlier += finished_here
    return runner.runs


def _artifact_paths(where: str, artifacts: Any) -> list[str]:
    if artifacts is None:
        return []
    _check_keys(f"{where}.artifacts", artifacts, {"paths", "expire_in"})
    paths = artifacts.get("paths") or []
    if any(any(ch in path for ch in "*?[") for path in paths):
        raise PipelineError(f"{where}.artifacts: the harness copies plain paths, not globs")
    return [str(path) for path in paths]
