"""End to end: push records (xarch.registry.pushrecord, xarch.cli.pushreplay). An unchanged re-push
is two HEADs and says what a full re-push says; a registry that lost the image, a tag moved, a
changed layout, credentials, a proxy, a CA that no longer signs, a record tampered with: each
makes it a full push, or a failure, never a claim the registry does not back.

Real `xarch push` processes against Debian's docker-registry; what the registry was asked is read
from its access log. Files written less than 2 s before a push keep it from being recorded, so
the layouts are made once, then the module waits that long.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.e2e import modules_loaded, xarch
from tests.support.needs import missing
from tests.support.registry import HandLayout, Registry, make_layout, mark, requests_since

REPLAYED = "no input changed since the last push"
NAMES = ("same", "same_b", "moved", "moved_other", "lost", "changed", "changed_new", "auth", "proxy", "tls",
         "tampered", "archive", "docker", "truncated", "config", "scheme")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HandLayout]:
    root = tmp_path_factory.mktemp("push-records")
    made = {name: make_layout(root / name, ["amd64", "arm64"], seed=number)
            for number, name in enumerate(NAMES, start=1)}
    subprocess.run(["tar", "-C", str(made["archive"].path), "-cf", str(root / "archive.tar"), "."],
                   check=True)
    time.sleep(2.2)  # past the "changed just before the push" window of every file made above
    return made


def push(layout: Path | str, ref: str, *flags: str, cache: Path,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return xarch("push", str(layout), ref, *flags, cache=cache, extra_env=env, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def tag_digest(registry: Registry, repository: str, tag: str) -> str:
    response = requests.head(f"http://{registry.host}/v2/{repository}/manifests/{tag}", timeout=10,
                             headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    response.raise_for_status()
    return str(response.headers["Docker-Content-Digest"])


def test_an_unchanged_re_push_is_two_heads_and_says_what_a_push_says(
        registry: Registry, layouts: dict[str, HandLayout], tmp_path: Path) -> None:
    layout, cache = layouts["same"], tmp_path / "cache"
    ref = f"{registry.host}/team/same:v1"
    first = ok(push(layout.path, ref, "--json", cache=cache))
    assert json.loads(first.stdout)["bytes_sent"] == layout.blob_bytes
    before = mark(registry)
    again = ok(push(layout.path, ref, "--json", cache=cache))
    digest = json.loads(first.stdout)["digest"]
    # (before them the full push's own first question, /v2/: HTTPS refused, then plain HTTP)
    assert requests_since(registry, before) == [("GET", "/v2/", 200),
                                                ("HEAD", f"/v2/team/same/manifests/{digest}", 200),
                                                ("HEAD", "/v2/team/same/manifests/v1", 200)]
    # A full re-push (another environment is another record's key) says the same, byte for byte.
    full = ok(push(layout.path, ref, "--json", cache=cache, env={"XARCH_TEST_KEY": "1"}))
    assert again.stdout == full.stdout
    assert json.loads(again.stdout)["blobs_skipped"] == 5 and json.loads(again.stdout)["bytes_sent"] == 0
    assert again.stderr == "" == full.stderr

    # The plain output too; the replay says on stderr why it was quick.
    ok(push(layout.path, ref, cache=cache))  # records this command line
    plain = ok(push(layout.path, ref, cache=cache))
    plain_full = ok(push(layout.path, ref, cache=cache, env={"XARCH_TEST_KEY": "1"}))
    assert plain.stdout == plain_full.stdout and plain.stdout.startswith(f"pushed {ref}@{digest}\n")
    assert REPLAYED in plain.stderr and REPLAYED not in plain_full.stderr
    # what a replay loads: no HTTP stack but http.client, no pydantic, click or rich (its whole point)
    loaded = modules_loaded(["push", str(layout.path), ref], cache, tmp_path / "modules.txt")
    assert loaded.isdisjoint({"requests", "urllib3", "pydantic", "click", "rich", "docker"}), sorted(loaded)
    assert [line for line in plain.stderr.splitlines() if REPLAYED not in line] == \
        plain_full.stderr.splitlines()


def test_a_tag_moved_since_is_put_back(registry: Registry, layouts: dict[str, HandLayout],
                                       tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ref = f"{registry.host}/team/moved:v1"
    ok(push(layouts["moved"].path, ref, cache=cache))
    ok(push(layouts["moved_other"].path, ref, cache=cache))  # another layout takes the tag
    again = ok(push(layouts["moved"].path, ref, cache=cache))
    assert REPLAYED not in again.stderr
    assert tag_digest(registry, "team/moved", "v1") == layouts["moved"].index_digest


def test_a_registry_that_lost_the_image_gets_it_again(registry: Registry, layouts: dict[str, HandLayout],
                                                      tmp_path: Path) -> None:
    layout, cache = layouts["lost"], tmp_path / "cache"
    ref = f"{registry.host}/team/lost:v1"
    ok(push(layout.path, ref, cache=cache))
    registry.stop()
    shutil.rmtree(registry.workdir / "storage")
    registry.start()
    again = ok(push(layout.path, ref, "--json", cache=cache))
    assert json.loads(again.stdout)["bytes_sent"] == layout.blob_bytes
    assert tag_digest(registry, "team/lost", "v1") == layout.index_digest


def test_a_changed_layout_is_pushed_for_real(registry: Registry, layouts: dict[str, HandLayout],
                                             tmp_path: Path) -> None:
    layout, cache = layouts["changed"], tmp_path / "cache"
    ref = f"{registry.host}/team/changed:v1"
    ok(push(layout.path, ref, cache=cache))
    shutil.rmtree(layout.path)
    shutil.copytree(layouts["changed_new"].path, layout.path)  # the same path, other images
    again = ok(push(layout.path, ref, "--json", cache=cache))
    assert json.loads(again.stdout)["digest"] == layouts["changed_new"].index_digest
    assert tag_digest(registry, "team/changed", "v1") == layouts["changed_new"].index_digest


def test_a_push_that_sent_credentials_is_never_recorded(
        auth_registry: Registry, layouts: dict[str, HandLayout], tmp_path: Path) -> None:
    token = base64.b64encode(f"alice:{auth_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    env, cache = {"DOCKER_CONFIG": str(tmp_path)}, tmp_path / "cache"
    ref = f"{auth_registry.host}/private/app:v1"
    ok(push(layouts["auth"].path, ref, cache=cache, env=env))
    before = mark(auth_registry)
    again = ok(push(layouts["auth"].path, ref, cache=cache, env={**env, "XARCH_DEBUG": "1"}))
    assert REPLAYED not in again.stderr
    assert ("GET", "/v2/", 401) in requests_since(auth_registry, before)  # the full push's probe
    assert not list((cache / "records").glob("*.json"))


def test_a_proxy_from_the_environment_means_the_full_push(registry: Registry, layouts: dict[str, HandLayout],
                                                          tmp_path: Path) -> None:
    # requests honours HTTP_PROXY, here bypassed for 127.0.0.1 by NO_PROXY: http.client would not
    # know either, so such a push is neither recorded nor replayed.
    env, cache = {"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}, tmp_path / "cache"
    ref = f"{registry.host}/team/proxy:v1"
    ok(push(layouts["proxy"].path, ref, cache=cache, env=env))
    before = mark(registry)
    again = ok(push(layouts["proxy"].path, ref, cache=cache, env=env))
    assert REPLAYED not in again.stderr
    assert ("GET", "/v2/", 200) in requests_since(registry, before)


def test_over_tls_the_ca_is_checked_by_the_replay_too(tls_registry: Registry, layouts: dict[str, HandLayout],
                                                      tmp_path: Path) -> None:
    assert tls_registry.tls_cert is not None
    bundle = tmp_path / "ca.pem"
    shutil.copy(tls_registry.tls_cert, bundle)
    env, cache = {"REQUESTS_CA_BUNDLE": str(bundle)}, tmp_path / "cache"
    ref = f"{tls_registry.host}/team/tls:v1"
    ok(push(layouts["tls"].path, ref, cache=cache, env=env))
    again = ok(push(layouts["tls"].path, ref, cache=cache, env=env))
    assert REPLAYED in again.stderr
    # The bundle at the same path now holds another CA: the replay must not vouch for the registry.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=other", "-keyout", str(tmp_path / "other.key"), "-out", str(bundle)],
                   check=True, capture_output=True)
    refused = push(layouts["tls"].path, ref, cache=cache, env=env)
    assert refused.returncode == 4, refused.stderr
    assert refused.stdout == "" and REPLAYED not in refused.stderr
    assert "TLS to" in refused.stderr


def test_a_tampered_record_is_never_replayed(registry: Registry, layouts: dict[str, HandLayout],
                                            tmp_path: Path) -> None:
    layout, cache = layouts["tampered"], tmp_path / "cache"
    ref = f"{registry.host}/team/tampered:v1"
    ok(push(layout.path, ref, cache=cache))
    assert REPLAYED in ok(push(layout.path, ref, cache=cache)).stderr
    (record_file,) = (cache / "records").glob("*.json")
    original = json.loads(record_file.read_text())
    other = layouts["same"].index_digest  # a digest this push never read
    for change in ({"origin": "http://127.0.0.1:9"}, {"repository": "team/other"},
                   {"reference": original["reference"].replace("tampered", "other")},
                   {"manifests": [[name, other if name == "linux/amd64" else digest]
                                  for name, digest in original["manifests"]]},
                   {"digest": other, "reference": original["reference"].split("@")[0] + "@" + other},
                   {"blobs": [["sha256:../../x", 1]]}, {"kind": "build"}):
        record_file.write_text(json.dumps({**original, **change}))
        result = ok(push(layout.path, ref, cache=cache))
        assert REPLAYED not in result.stderr, change
        assert result.stdout.splitlines()[:3] == [
            f"pushed {ref}@{layout.index_digest}",
            *(f"  {name:<10} {digest}" for name, digest in original["manifests"])], change


def test_an_oci_archive_and_the_docker_format_are_replayed(registry: Registry, layouts: dict[str, HandLayout],
                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    archive = layouts["archive"].path.parent / "archive.tar"
    for source, ref, flags in ((f"oci-archive:{archive}", f"{registry.host}/team/archive:v1", ()),
                               (str(layouts["docker"].path), f"{registry.host}/team/docker:v1",
                                ("--format", "docker"))):
        first = ok(push(source, ref, *flags, "--json", cache=cache))
        again = ok(push(source, ref, *flags, "--json", cache=cache))
        full = ok(push(source, ref, *flags, "--json", cache=cache, env={"XARCH_TEST_KEY": "1"}))
        assert again.stdout == full.stdout
        assert json.loads(again.stdout)["digest"] == json.loads(first.stdout)["digest"]
        before = mark(registry)
        ok(push(source, ref, *flags, cache=cache))
        replayed = ok(push(source, ref, *flags, cache=cache))
        assert REPLAYED in replayed.stderr
        assert [method for method, _, _ in requests_since(registry, before)][-3:] == ["GET", "HEAD", "HEAD"]


def test_a_layer_cut_short_after_a_re_push_fails_as_the_full_push_does(
        registry: Registry, layouts: dict[str, HandLayout], tmp_path: Path) -> None:
    # A re-push reads no layer (it checks each file's size): its record holds none of their bytes,
    # and a replay checks their sizes as the re-push would.
    layout, cache = layouts["truncated"], tmp_path / "cache"
    ref = f"{registry.host}/team/truncated:v1"
    ok(push(layout.path, ref, cache=cache, env={"XARCH_TEST_KEY": "1"}))  # uploads, under another key
    ok(push(layout.path, ref, cache=cache))  # a re-push: recorded
    assert REPLAYED in ok(push(layout.path, ref, cache=cache)).stderr
    # Neither record (the uploading push's, the re-push's) holds a layer's bytes; both are the user's.
    assert (cache / "records").stat().st_mode & 0o777 == 0o700
    layer = max(layout.blob_sizes, key=lambda digest: layout.blob_sizes[digest])
    for record_file in (cache / "records").glob("*.json"):
        assert record_file.stat().st_mode & 0o777 == 0o600
        assert not [path for path in json.loads(record_file.read_text())["files"] if path.endswith(layer[7:])]
    blob = layout.path / "blobs" / "sha256" / layer[7:]
    blob.write_bytes(blob.read_bytes()[:10])
    refused = push(layout.path, ref, cache=cache)
    full = push(layout.path, ref, cache=cache, env={"XARCH_TEST_KEY": "2"})
    assert refused.returncode == full.returncode == 2, refused.stderr
    assert REPLAYED not in refused.stderr and "does not match its digest or size" in refused.stderr


def test_a_docker_config_that_appears_is_read_by_the_next_push(
        registry: Registry, layouts: dict[str, HandLayout], tmp_path: Path) -> None:
    # Looking for the Docker config leaves no audit event where there is none: the places it is
    # looked for are part of the record.
    config, cache = tmp_path / "docker", tmp_path / "cache"
    config.mkdir()
    env = {"DOCKER_CONFIG": str(config)}
    ref = f"{registry.host}/team/config:v1"
    ok(push(layouts["config"].path, ref, cache=cache, env=env))
    assert REPLAYED in ok(push(layouts["config"].path, ref, cache=cache, env=env)).stderr
    (config / "config.json").write_text("{not json")
    refused = push(layouts["config"].path, ref, cache=cache, env=env)
    assert refused.returncode == 2 and REPLAYED not in refused.stderr, refused.stderr


def test_a_registry_that_now_answers_https_is_pushed_to(layouts: dict[str, HandLayout],
                                                     tmp_path: Path) -> None:
    # The full push tries https://localhost (port 443) before http://localhost (port 80): a record of
    # a plain-HTTP push must not answer for a host that speaks HTTPS now.
    for port in (80, 443):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                missing(f"port {port} of 127.0.0.1 is taken by another program")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    env, cache = {"REQUESTS_CA_BUNDLE": str(cert)}, tmp_path / "cache"
    ref = "localhost/team/scheme:v1"
    plain = Registry(tmp_path / "plain", 80)
    plain.workdir.mkdir()
    plain.write_config(None, None)
    plain.start()
    try:
        ok(push(layouts["scheme"].path, ref, cache=cache, env=env))
        assert REPLAYED in ok(push(layouts["scheme"].path, ref, cache=cache, env=env)).stderr
    finally:
        plain.stop()
    tls = Registry(tmp_path / "tls", 443, tls_cert=cert)
    tls.workdir.mkdir()
    tls.write_config(None, key)
    tls.start()
    try:
        again = ok(push(layouts["scheme"].path, ref, "--json", cache=cache, env=env))
        assert json.loads(again.stdout)["bytes_sent"] == layouts["scheme"].blob_bytes
    finally:
        tls.stop()


def test_platforms_are_printed_in_the_layout_s_order(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "order", ["arm64", "amd64"])
    time.sleep(2.2)
    cache, ref = tmp_path / "cache", f"{registry.host}/team/order:v1"
    ok(push(layout.path, ref, cache=cache))
    replayed = ok(push(layout.path, ref, cache=cache))
    full = ok(push(layout.path, ref, cache=cache, env={"XARCH_TEST_KEY": "1"}))
    assert REPLAYED in replayed.stderr and replayed.stdout == full.stdout
    assert replayed.stdout.index("linux/arm64") < replayed.stdout.index("linux/amd64")
