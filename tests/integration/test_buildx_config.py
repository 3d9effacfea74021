"""The config of a Dockerfile stage (xarch/run/buildx_config.py): which driver a buildx builder
uses (asked of the real docker CLI and dockerd), and the config read back from an OCI export."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.oci_images import EPOCH, make_artifact
from xarch.oci.layout import write_oci_archive
from xarch.run.buildx import BuildxError
from xarch.run.buildx_config import _oci_config, builder_driver

pytestmark = pytest.mark.docker


def test_the_default_builder_of_debians_dockerd_uses_the_docker_driver(buildx: str) -> None:
    assert builder_driver(buildx, None) == "docker"


def test_an_unknown_builder_is_one_error(buildx: str) -> None:
    with pytest.raises(BuildxError) as caught:
        builder_driver(buildx, "xarch-no-such-builder")
    assert str(caught.value).startswith("docker buildx inspect xarch-no-such-builder says no driver: ")
    assert "no builder" in str(caught.value)


def test_the_config_of_an_oci_export_is_its_first_images(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    write_oci_archive(make_artifact(env=("PATH=/bin", "A=1")), archive, EPOCH)
    config = _oci_config(archive)
    assert config["Env"] == ["PATH=/bin", "A=1"] and config["Cmd"] == ["/bin/sh"]
