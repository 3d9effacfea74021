"""`config: {from: STAGE}` (xarch/build/stageconfig.py): the recipe's own config keys win over the
Dockerfile stage's image config, a new entrypoint drops the inherited cmd, and a config of the
wrong shape is one error naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xarch.build.stageconfig import merged_config
from xarch.errors import BuildError
from xarch.recipe import LoadedRecipe, load

BASE: dict[str, Any] = {"Env": ["PATH=/usr/bin", "A=from-image"], "Entrypoint": ["/docker-entry"],
                        "Cmd": ["serve"], "User": "www", "WorkingDir": "/app", "Labels": {"x": "1"},
                        "ExposedPorts": {"8080/tcp": {}}, "Volumes": {"/data": {}}, "StopSignal": "SIGQUIT"}


def recipe(tmp_path: Path, config: str) -> LoadedRecipe:
    (tmp_path / "web").mkdir(exist_ok=True)
    (tmp_path / "web" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "xarch.yaml").write_text("name: m\nplatforms: [amd64]\n"
                                         "stages:\n  web: {dockerfile: web/Dockerfile}\n"
                                         f"config:\n  from: web\n{config}")
    return load(tmp_path / "xarch.yaml")


def test_the_stages_config_fills_what_the_recipe_leaves_out(tmp_path: Path) -> None:
    merged = merged_config(recipe(tmp_path, "  env: {A: from-recipe, B: '2'}\n  labels: {y: '2'}\n"), BASE)
    assert merged == {"entrypoint": ["/docker-entry"], "cmd": ["serve"],
                      "env": ["PATH=/usr/bin", "A=from-recipe", "B=2"], "user": "www", "workdir": "/app",
                      "exposed_ports": ["8080/tcp"], "volumes": ["/data"], "labels": {"x": "1", "y": "2"},
                      "stop_signal": "SIGQUIT"}


def test_a_new_entrypoint_drops_the_inherited_cmd(tmp_path: Path) -> None:
    merged = merged_config(recipe(tmp_path, "  entrypoint: [/bin/app]\n"), BASE)
    assert (merged["entrypoint"], merged["cmd"]) == (["/bin/app"], None)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("Env", "PATH=/bin", "Env: the Dockerfile stage's image config holds a str, not a list of strings"),
    ("Labels", ["x"], "Labels: the Dockerfile stage's image config holds a list, not an object"),
    ("User", 0, "User: the Dockerfile stage's image config holds a int"),
])
def test_a_config_of_the_wrong_shape_is_one_error(tmp_path: Path, key: str, value: object,
                                                  message: str) -> None:
    with pytest.raises(BuildError) as caught:
        merged_config(recipe(tmp_path, ""), {**BASE, key: value})
    assert str(caught.value) == f"config.from (web): {message}"
