"""Step inputs through the real CLI and sandbox: env, build args, secrets, CA certificates, output.

Stage roots are the host's static busybox as /bin/sh (as in test_e2e_stages.py); the CA
test adds the host's curl with its libraries. Every "never" of a secret is checked by
looking for its bytes in the output layout (layers decompressed), the cache folder,
stdout, stderr and --json.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, error_lines, image_files, xarch, xarch_ok
from tests.support.needs import need_tool
from tests.support.rootfs_helpers import PongServer
from tests.support.stages import SHELL, write_recipe
from xarch import platforms

HOST = platforms.host().name
SECRET = "s3cr3t-Value-4f1d9c"

ARGS_RECIPE = f"""\
name: args
platforms: [{HOST}]
epoch: {EPOCH}
args:
  GREETING: hello
stages:
  build:
{SHELL}    steps:
      - env: {{WHO: world}}
        run: |
          mkdir -p /out
          echo "$GREETING $WHO" > /out/message
          echo "said $GREETING"
copy:
  - {{from: "build:/out/message", dst: /message}}
"""


def test_args_and_env_reach_the_step_and_key_its_cache(tmp_path: Path, busybox_shell: None) -> None:
    recipe = write_recipe(tmp_path / "src", ARGS_RECIPE)
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = xarch_ok("build", "-f", str(recipe), "-o", f"oci:{out}", cache=cache)
    assert image_files(out, HOST)["message"].data == b"hello world\n"
    assert f"[build/{HOST}] said hello" in first.stderr  # plain prefixed output off a terminal
    changed = xarch_ok("build", "-f", str(recipe), "--build-arg", "GREETING=hi", "-o", f"oci:{out}",
                       cache=cache)
    assert "build step 1/1: running" in changed.stderr, changed.stderr
    assert image_files(out, HOST)["message"].data == b"hi world\n"
    again = xarch_ok("build", "-f", str(recipe), "--build-arg", "GREETING=hi", "--no-cache", "-o",
                     f"oci:{out}", cache=cache)
    assert image_files(out, HOST)["message"].data == b"hi world\n"
    assert "running" in again.stderr  # --no-cache runs it
    cached = xarch_ok("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out2'}", "--label", "team=x",
                      cache=cache)
    assert "build step 1/1: cached" in cached.stderr, cached.stderr  # the default again: the first entry
    config = _config(tmp_path / "out2")
    assert config["config"]["Labels"] == {"team": "x"}


def _config(layout: Path) -> dict:
    from tests.support.e2e import _json, manifests

    manifest = _json(layout, manifests(layout)[platforms.host().architecture])
    return _json(layout, manifest["config"]["digest"])


def test_an_unknown_build_arg_or_field_is_one_line(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "src", ARGS_RECIPE)
    result = xarch("build", "-f", str(recipe), "--build-arg", "GREETNG=x", cache=tmp_path / "cache")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "xarch: error: --build-arg GREETNG: xarch.yaml declares no such argument (args: GREETING)"]
    recipe.write_text(ARGS_RECIPE.replace("- env:", "- environment:"))
    result = xarch("build", "-f", str(recipe), cache=tmp_path / "cache")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "steps[0].environment: unknown field (fields: run, network, env, secrets, ca_certificates)" in line


SECRET_RECIPE = f"""\
name: secrets
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  build:
{SHELL}    steps:
      - secrets: [token]
        run: |
          mkdir -p /out
          sha256sum /run/secrets/token | cut -d' ' -f1 > /out/hash
          ls -l /run/secrets/token
          echo "the token is $(cat /run/secrets/token)"
          if echo x > /run/secrets/token; then exit 9; fi
      - run: |
          if [ -e /run/secrets ]; then echo "a secret folder is left" >&2; exit 8; fi
          echo done > /out/done
copy:
  - {{from: "build:/out", dst: /out}}
"""


def _everything(folder: Path) -> bytes:
    """All bytes under FOLDER, with gzip blobs decompressed too (layers)."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            parts.append(data)
            if data[:2] == b"\x1f\x8b":
                parts.append(gzip.decompress(data))
    return b"\n".join(parts)


@pytest.mark.parametrize("source", ["file", "env"])
def test_a_secret_is_mounted_and_never_kept(tmp_path: Path, busybox_shell: None, source: str) -> None:
    recipe = write_recipe(tmp_path / "src", SECRET_RECIPE)
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    given = f"id=token,src={secret_file}" if source == "file" else "id=token,env=MY_TOKEN"
    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {"MY_TOKEN": SECRET + "\n"}
    result = xarch_ok("build", "-f", str(recipe), "--secret", given, "-o", f"oci:{out}", "--json",
                      cache=cache, extra_env=env)
    plain = xarch_ok("build", "-f", str(recipe), "--secret", given, "--no-cache", "-o",
                     f"oci:{tmp_path / 'o2'}", cache=cache, extra_env=env)
    files = image_files(out, HOST)
    assert files["out/hash"].data.decode().strip() == hashlib.sha256((SECRET + "\n").encode()).hexdigest()
    assert files["out/done"].data == b"done\n"
    assert "the token is ***" in plain.stderr, plain.stderr  # masked in the step's shown output
    assert "-r--------" in plain.stderr  # read-only, for uid 0 of the step alone
    for where, data in {"layout": _everything(out), "cache": _everything(cache),
                        "stdout": result.stdout.encode(), "stderr": (result.stderr + plain.stderr).encode(),
                        "json": json.dumps(json.loads(result.stdout)).encode()}.items():
        assert SECRET.encode() not in data, f"the secret is in the {where}"
    # Not part of the key (BuildKit's rule): another value hits the cache.
    secret_file.write_text("another-value\n")
    again = xarch_ok("build", "-f", str(recipe), "--secret", given, "-o", f"oci:{tmp_path / 'o3'}",
                     cache=cache, extra_env={"MY_TOKEN": "another-value\n"})
    assert "running" not in again.stderr, again.stderr
    assert image_files(tmp_path / "o3", HOST)["out/hash"] == files["out/hash"]


def test_a_failed_step_masks_the_secret_in_its_tail(tmp_path: Path, busybox_shell: None) -> None:
    failing = SECRET_RECIPE.replace("if echo x", "cat /run/secrets/token; exit 3\n          if echo x")
    recipe = write_recipe(tmp_path / "src", failing)
    result = xarch("build", "-f", str(recipe), "--secret", "id=token,env=MY_TOKEN", cache=tmp_path / "cache",
                   extra_env={"MY_TOKEN": SECRET})
    assert result.returncode == 2
    assert SECRET not in result.stderr + result.stdout
    assert "  | ***" in result.stderr


@pytest.mark.parametrize(("given", "message"), [
    ("id=token,src", "--secret: field 2 is not key=value"),
    ("id=token,colour=red", "--secret: unknown key 'colour'"),
    ("id=../x,src=/etc/hostname", "--secret: id '../x' must be"),
    ("id=token,env=XARCH_TEST_UNSET_VARIABLE", "environment variable XARCH_TEST_UNSET_VARIABLE is not set"),
    ("id=other,env=HOME", "stages.build.steps[0].secrets[0]: secret 'token' is not given"),
    ("id=token,src=/dev/zero", "--secret id=token: /dev/zero is not a regular file"),
    ("id=token,src=/nonexistent/token", "--secret id=token: cannot read /nonexistent/token: No such file"),
])
def test_bad_or_missing_secrets_are_one_line(tmp_path: Path, given: str, message: str) -> None:
    recipe = write_recipe(tmp_path / "src", SECRET_RECIPE)
    result = xarch("build", "-f", str(recipe), "--secret", given, cache=tmp_path / "cache")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert message in line, line


def test_a_step_without_network_that_needs_it_gets_a_hint(tmp_path: Path, busybox_shell: None,
                                                        pong_server: PongServer) -> None:
    recipe = write_recipe(tmp_path / "src", f"""\
name: offline
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  fetch:
{SHELL}    steps:
      - run: |
          for i in $(seq 1 30); do echo "retry $i"; done
          nc -w 5 127.0.0.1 {pong_server.port} </dev/null
copy:
  - {{from: "fetch:/etc", dst: /etc}}
""")
    result = xarch("build", "-f", str(recipe), "--log-lines", "5", cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = error_lines(result)
    assert len([line for line in lines if line.startswith("  | ")]) == 5
    assert lines[-1].startswith("hint: ") and "network: true" in lines[-1]
    assert "stages.fetch.steps[0]" in lines[-1]
    full = xarch("build", "-f", str(recipe), "-q", cache=tmp_path / "cache")
    assert "  | retry 1" in full.stderr  # the default keeps 200 lines: the whole of this log


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 it signed (openssl)."""
    openssl = need_tool("openssl")
    folder = tmp_path_factory.mktemp("ca")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=xarch test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
        "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext")
    return folder


@pytest.fixture
def https_server(test_ca: Path) -> Iterator[int]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"trusted page\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(test_ca / "server.pem", test_ca / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _curl_root(folder: Path) -> None:
    """The host's curl and every library it loads, at their own paths (ldd)."""
    curl = Path(need_tool("curl")).resolve()
    listed = subprocess.run([need_tool("ldd"), str(curl)], capture_output=True, text=True, check=True).stdout
    paths = [curl]
    for line in listed.splitlines():
        words = line.split()
        found = [w for w in words if w.startswith("/")]
        paths += [Path(found[0])] if found else []
    for path in paths:
        target = folder / str(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path.resolve(), target)
    (folder / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    if curl != folder / "usr/bin/curl":
        shutil.copy(curl, folder / "usr" / "bin" / "curl")


@pytest.mark.parametrize("trusted", [True, False])
def test_a_network_step_trusts_an_extra_ca_only_when_asked(tmp_path: Path, busybox_shell: None, test_ca: Path,
                                                          https_server: int, trusted: bool) -> None:
    ca_line = "        ca_certificates: [corp-ca]\n" if trusted else ""
    recipe = write_recipe(tmp_path / "src", f"""\
name: ca
platforms: [{HOST}]
epoch: {EPOCH}
stages:
  fetch:
{SHELL}      - {{src: curlroot, dst: /}}
    steps:
      - network: true
{ca_line}        run: |
          mkdir -p /out
          echo "bundle=$SSL_CERT_FILE"
          curl -sS https://127.0.0.1:{https_server}/ -o /out/page
copy:
  - {{from: "fetch:/out/page", dst: /page}}
""")
    _curl_root(tmp_path / "src" / "curlroot")
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = xarch("build", "-f", str(recipe), "--secret", f"id=corp-ca,src={test_ca / 'ca.pem'}",
                   "-o", f"oci:{out}", cache=cache)
    if not trusted:
        assert result.returncode == 2
        assert "certificate" in result.stderr.lower(), result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert image_files(out, HOST)["page"].data == b"trusted page\n"
    assert "bundle=/run/secrets/.xarch-ca-bundle.pem" in result.stderr
    ca_body = (test_ca / "ca.pem").read_text().splitlines()[1].encode()
    assert ca_body not in _everything(out) and ca_body not in _everything(cache)


@pytest.mark.qemu
def test_secret_of_an_arm64_step_under_qemu(arm64_emulation: platforms.Platform, arm64_rootfs: Path,
                                            tmp_path: Path) -> None:
    """The real sandbox under QEMU: the step reads its secret; neither root nor cache holds it."""
    from xarch.run.cache import StepCache
    from xarch.run.options import Secret
    from xarch.run.steps import StepSpec, run_stage_steps

    source = tmp_path / "source"
    source.mkdir()
    cache = StepCache(tmp_path / "cache")
    lines: list[str] = []
    step = StepSpec("uname -m > /arch; sha256sum /run/secrets/token > /hash; cat /run/secrets/token",
                    secrets=("token",))
    run_stage_steps([step], arm64_rootfs, arm64_emulation, "emulate", source, EPOCH, cache, lines.append,
                    secrets={"token": Secret("token", SECRET.encode(), "test")})
    assert (arm64_rootfs / "arch").read_text() == "aarch64\n"
    assert hashlib.sha256(SECRET.encode()).hexdigest() in (arm64_rootfs / "hash").read_text()
    assert "***" in lines and SECRET not in "\n".join(lines)
    assert not (arm64_rootfs / "run" / "secrets").exists()
    assert SECRET.encode() not in _everything(arm64_rootfs) + _everything(tmp_path / "cache")



def test_the_documented_example_builds(tmp_path: Path, busybox_shell: None) -> None:
    from tests.support.e2e import REPO

    text = (REPO / "docs" / "steps.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0].replace("[amd64]", f"[{HOST}]")
    recipe = write_recipe(tmp_path / "src", example)
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "--build-arg", "GREETING=hi", "--secret", "id=token,env=API_TOKEN",
             "-o", f"oci:{out}", cache=tmp_path / "cache", extra_env={"API_TOKEN": SECRET})
    files = image_files(out, HOST)
    assert files["srv/message"].data == b"hi world\n"
    assert files["srv/token-length"].data.strip() == str(len(SECRET)).encode()


def test_a_steps_escape_sequences_never_reach_the_log(tmp_path: Path, busybox_shell: None) -> None:
    """A step is untrusted: what it prints to clear a screen, retitle a terminal or overwrite a
    line (ESC, BEL, CR) is shown escaped, in the streamed lines and in a failure's last lines."""
    hostile = r'printf "clear\033[2J title\033]0;pwned\007 over\rwrite\n"'
    recipe = write_recipe(tmp_path / "src", ARGS_RECIPE.replace('echo "said $GREETING"', hostile))
    result = xarch_ok("build", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert "clear\\x1b[2J title\\x1b]0;pwned\\x07 over\\rwrite" in result.stderr, result.stderr
    assert not any(ch in result.stderr for ch in "\x1b\x07\r")
    failing = write_recipe(tmp_path / "bad",
                           ARGS_RECIPE.replace('echo "said $GREETING"', hostile + "; exit 3"))
    failed = xarch("build", "-f", str(failing), "-o", f"oci:{tmp_path / 'out2'}", cache=tmp_path / "cache")
    assert failed.returncode == 2
    assert "  | clear\\x1b[2J" in failed.stderr and not any(ch in failed.stderr for ch in "\x1b\x07\r")


def test_on_a_terminal_step_output_streams_under_its_progress_line(tmp_path: Path,
                                                                   busybox_shell: None) -> None:
    """stderr on a pseudo-terminal (not CI): rich's live display, not prefixed lines."""
    import pty
    import select
    import sys

    from tests.support.e2e import REPO

    recipe = write_recipe(tmp_path / "src", ARGS_RECIPE.replace(
        'echo "said $GREETING"', 'for i in 1 2 3; do echo "live line $i"; sleep 0.4; done'))
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SOURCE_DATE_EPOCH")}
    env.update(XARCH_CACHE=str(tmp_path / "cache"), TERM="xterm", COLUMNS="120",
               PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "xarch.cli", "build", "-f", str(recipe), "-o",
                                f"oci:{tmp_path / 'out'}"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0, seen.decode("utf-8", "replace")
    text = seen.decode("utf-8", "replace")
    assert "live line 3" in text, text
    assert f"[build/{HOST}] live line" not in text  # the plain CI form is not used on a terminal
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "build step 1/1: done in" in text
    assert f"[{HOST}] stage build step 1/1: running (native)" in text  # the progress line, as written


def test_a_step_listing_a_secret_it_was_not_given_is_one_line(host_rootfs: Path, tmp_path: Path) -> None:
    from xarch.errors import BuildError
    from xarch.run.cache import StepCache
    from xarch.run.steps import StepSpec, run_stage_steps

    with pytest.raises(BuildError, match=r"stages.build.steps\[0\] lists secret 'token', which this command"):
        run_stage_steps([StepSpec("true", secrets=("token",))], host_rootfs, platforms.host(), "native",
                        tmp_path, EPOCH, StepCache(tmp_path / "cache"), print)
