"""Hostile step inputs found by trying the step features as a new user would (env, args, secrets).

Stage roots are the host's static busybox as /bin/sh, as in test_step_inputs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import EPOCH, xarch_ok
from tests.support.stages import SHELL, write_recipe
from xarch import platforms
from xarch.errors import InputError
from xarch.run.options import parse_build_arg, parse_labels, parse_secret

HOST = platforms.host().name

HOST_ENV_RECIPE = f"""\
name: hostenv
platforms: [{HOST}]
epoch: {EPOCH}
args:
  LD_LIBRARY_PATH: /nonexistent-xarch-lib
stages:
  build:
{SHELL}    steps:
      - env: {{PATH: /nonexistent-xarch-bin, LD_PRELOAD: /nonexistent-xarch-probe.so, HOME: /work}}
        run: |
          echo "path=$PATH home=$HOME preload=$LD_PRELOAD lib=$LD_LIBRARY_PATH"
          /bin/sh -c 'mkdir -p /out && echo ok > /out/ok'
copy:
  - {{from: "build:/out/ok", dst: /ok}}
"""


def test_a_steps_env_reaches_the_sandbox_never_the_host_tools(tmp_path: Path, busybox_shell: None) -> None:
    # PATH and LD_PRELOAD of a step (or an argument) once went to the host's unshare/sh/mkdir/
    # setpriv/bwrap, run as root: the bind script failed with `mkdir: not found`, and ld.so
    # tried to preload the recipe's library into them.
    recipe = write_recipe(tmp_path / "src", HOST_ENV_RECIPE)
    result = xarch_ok("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}",
                      "--build-arg", "LD_LIBRARY_PATH=/nonexistent-xarch-lib2", cache=tmp_path / "cache")
    assert (f"[build/{HOST}] path=/nonexistent-xarch-bin home=/work preload=/nonexistent-xarch-probe.so "
            "lib=/nonexistent-xarch-lib2") in result.stderr
    assert "ld.so" not in result.stderr and "not found" not in result.stderr


@pytest.mark.parametrize(("given", "message"), [
    ("hunter2-typed-as-value", "--secret: field 1 is not key=value"),
    ("id=a\nhunter2-typed-as-value", "--secret: not a comma-separated list of key=value"),
    ("id=a,env=", "--secret id=a: env= names no variable"),
])
def test_a_mistyped_secret_is_one_line_without_its_text(given: str, message: str) -> None:
    # The text of a bad --secret was echoed, and a mistyped one may be the secret itself.
    with pytest.raises(InputError) as caught:
        parse_secret(given, environ={})
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("parse, text", [
    (parse_build_arg, "GREETING=\udcff"), (lambda text: parse_labels((text,)), "k=\udcff"),
    (lambda text: parse_labels((text,)), "\udce9=v"),
])
def test_option_values_that_are_not_utf8_are_one_line(parse: Any, text: str) -> None:
    """Bytes that are not UTF-8 on the command line (PEP 383 surrogates) are refused where they are
    read, exit 2: an image config is JSON, UTF-8 only (they reached canonical_json: exit 70)."""
    with pytest.raises(InputError, match="not UTF-8 text") as caught:
        parse(text)
    assert caught.value.exit_code == 2
