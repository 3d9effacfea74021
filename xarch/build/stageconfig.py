"""`config: {from: STAGE}`: the image config a Dockerfile stage ends with, under the recipe's own.

Every key the recipe's `config:` gives wins; the others come from the Dockerfile's final image
(as `docker inspect` shows its Config): User, WorkingDir, StopSignal, Entrypoint and Cmd (as
in a Dockerfile, an `entrypoint:` in the recipe drops the stage's CMD unless `cmd:` is given),
ExposedPorts and Volumes (the recipe's list, when not empty, replaces the stage's), Env and
Labels (merged key by key, the recipe's value winning).
"""

from __future__ import annotations

from typing import Any

from xarch.errors import BuildError
from xarch.recipe import LoadedRecipe


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildError(f"{what}: the Dockerfile stage's image config holds a {type(value).__name__}, "
                         "not a list of strings")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BuildError(f"{what}: the Dockerfile stage's image config holds a {type(value).__name__}, "
                         "not an object")
    return value


def _text(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BuildError(f"{what}: the Dockerfile stage's image config holds a {type(value).__name__}")
    return value


def merged_config(loaded: LoadedRecipe, base: dict[str, Any] | None) -> dict[str, Any]:
    """Keyword arguments for xarch.oci.image.RuntimeConfig: the recipe's `config:` over BASE
    (a Docker image Config object; None or {}: the recipe's alone). Merge rules: module doc,
    following Dockerfile semantics (ENTRYPOINT resets CMD) and the OCI image-spec config fields.
    Raises BuildError (exit 2) naming the field when BASE holds a value of the wrong JSON type."""
    spec = loaded.recipe.config
    base = base or {}
    where = f"config.from ({spec.from_})"
    env: dict[str, str] = {}
    for item in _strings(base.get("Env"), f"{where}: Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.update(spec.env)
    labels = {str(k): str(v) for k, v in _mapping(base.get("Labels"), f"{where}: Labels").items()}
    labels.update(spec.labels)
    entrypoint = spec.entrypoint if spec.entrypoint is not None else _strings(base.get("Entrypoint"),
                                                                              f"{where}: Entrypoint")
    if spec.cmd is not None:
        cmd = spec.cmd
    elif spec.entrypoint is not None:
        cmd = None  # a new ENTRYPOINT resets the inherited CMD, as in a Dockerfile
    else:
        cmd = _strings(base.get("Cmd"), f"{where}: Cmd")
    ports = spec.exposed_ports or sorted(_mapping(base.get("ExposedPorts"), f"{where}: ExposedPorts"))
    volumes = spec.volumes or sorted(_mapping(base.get("Volumes"), f"{where}: Volumes"))
    return {
        "entrypoint": entrypoint,
        "cmd": cmd,
        "env": [f"{key}={value}" for key, value in env.items()],
        "user": spec.user or _text(base.get("User"), f"{where}: User"),
        "workdir": spec.workdir or _text(base.get("WorkingDir"), f"{where}: WorkingDir"),
        "exposed_ports": ports,
        "volumes": volumes,
        "labels": labels,
        "stop_signal": spec.stop_signal or _text(base.get("StopSignal"), f"{where}: StopSignal"),
    }
