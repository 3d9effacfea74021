"""`config: {from: STAGE}` takes a Dockerfile stage's final image config; the recipe's keys win
(issue 13, "Dockerfile stages lose the Dockerfile's intent")."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest

from tests.support.e2e import EPOCH, _json, image_files, manifests, xarch, xarch_ok
from tests.support.needs import need_tool
from tests.support.stages import HOST
from xarch.build.stageconfig import merged_config
from xarch.recipe import load

DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
FROM base
ENV A=1 B=from-dockerfile
WORKDIR /srv
USER 1000:1000
EXPOSE 8080 9090/udp
LABEL org.example.team=web org.example.tier=front
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/busybox"]
CMD ["httpd", "-f"]
"""

RECIPE = f"""\
name: from-dockerfile
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  web:
    dockerfile: web/Dockerfile
    context: web
config:
  from: web
  env: {{B: from-recipe}}
  labels: {{org.example.tier: back}}
copy:
  - {{from: "web:/bin/busybox", dst: /bin/busybox}}
"""


def write(folder: Path, recipe: str) -> Path:
    (folder / "web").mkdir(parents=True)
    (folder / "web" / "Dockerfile").write_text(DOCKERFILE)
    shutil.copy(need_tool("busybox"), folder / "web" / "busybox")
    (folder / "xarch.yaml").write_text(recipe)
    return folder / "xarch.yaml"


def test_the_dockerfile_config_is_the_base_and_the_recipe_wins(tmp_path: Path,
                                                               dockerd: docker.DockerClient) -> None:
    recipe = write(tmp_path / "p", RECIPE)
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    manifest = _json(out, manifests(out)[HOST.split("/")[0]])
    config = _json(out, manifest["config"]["digest"])["config"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/srv"
    assert config["Entrypoint"] == ["/bin/busybox"] and config["Cmd"] == ["httpd", "-f"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "9090/udp"}
    assert config["StopSignal"] == "SIGINT"
    assert "A=1" in config["Env"] and "B=from-recipe" in config["Env"]
    assert config["Labels"] == {"org.example.team": "web", "org.example.tier": "back"}
    assert "bin/busybox" in image_files(out, HOST.split("/")[0])


def test_config_from_must_name_a_dockerfile_stage(tmp_path: Path) -> None:
    recipe = write(tmp_path / "p", RECIPE.replace("from: web", "from: nope"))
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "c")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"xarch: error: {recipe}:9: config.from: 'nope' is not a dockerfile: stage (those: web)")


@pytest.mark.parametrize(("recipe_config", "expected"), [
    ({}, {"entrypoint": ["/e"], "cmd": ["c"], "user": "u"}),
    ({"entrypoint": ["/mine"]}, {"entrypoint": ["/mine"], "cmd": None, "user": "u"}),
    ({"entrypoint": ["/mine"], "cmd": ["x"], "user": "0"},
     {"entrypoint": ["/mine"], "cmd": ["x"], "user": "0"}),
])
def test_an_entrypoint_in_the_recipe_drops_the_stage_cmd(tmp_path: Path, recipe_config: dict[str, object],
                                                         expected: dict[str, object]) -> None:
    import yaml

    data = {"name": "m", "platforms": [HOST], "stages": {"web": {"dockerfile": "Dockerfile"}},
            "config": {"from": "web", **recipe_config}}
    (tmp_path / "xarch.yaml").write_text(yaml.safe_dump(data))
    merged = merged_config(load(tmp_path / "xarch.yaml"), {"Entrypoint": ["/e"], "Cmd": ["c"], "User": "u"})
    assert {key: merged[key] for key in expected} == expected
