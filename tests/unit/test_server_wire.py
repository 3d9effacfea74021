"""The build server's parts that need no server: its messages over a real socket pair, the facts a
client must share with it, and the cases where a client hands nothing over. The server and its
clients as processes: tests/integration/test_build_server.py."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from xarch.server import client, command, context, log, relay, serve, wire


@pytest.fixture
def pair() -> tuple[socket.socket, socket.socket]:
    one, two = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return one, two


def test_a_message_and_its_descriptors_arrive_together(pair: tuple[socket.socket, socket.socket],
                                                       tmp_path: Path) -> None:
    one, two = pair
    (tmp_path / "f").write_text("held")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    wire.send(one, {"a": [1, "b"]}, [fd])
    os.close(fd)
    message, fds = wire.receive(two)
    assert message == {"a": [1, "b"]}
    assert len(fds) == 1 and os.read(fds[0], 10) == b"held"
    os.close(fds[0])
    one.close()
    assert wire.receive(two) == (None, [])


@pytest.mark.parametrize("data", [b"not json", b"[1]", b'"text"', b"{" * 100_000, b"\xff\xfe"])
def test_a_packet_that_is_not_an_object_is_refused_and_its_descriptors_closed(
        pair: tuple[socket.socket, socket.socket], data: bytes) -> None:
    one, two = pair
    fd = os.open(os.devnull, os.O_RDONLY)
    socket.send_fds(one, [data], [fd])
    os.close(fd)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(wire.WireError):
        wire.receive(two)
    assert set(os.listdir("/proc/self/fd")) <= before  # the received descriptor was closed


def test_a_message_past_the_limit_is_not_sent(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(wire.WireError, match="over"):
        wire.send(pair[0], {"env": "x" * wire.MAX_MESSAGE})


def test_this_process_shares_every_fact_with_itself_and_a_change_is_named() -> None:
    mine = context.facts()
    assert context.differences(mine, json.loads(json.dumps(mine))) == []
    changed = json.loads(json.dumps(mine))
    changed["limits"]["RLIMIT_NOFILE"] = [1, 1]
    del changed["nice"]
    assert context.differences(mine, changed) == ["limits", "nice"]
    assert {"ids", "namespaces", "limits", "python", "cgroup", "status"} <= set(mine)


def test_what_the_command_takes_from_the_client() -> None:
    carried = context.carried()
    assert carried["env"] == dict(os.environ)
    assert carried["umask"] == (lambda u: (os.umask(u), u)[1])(os.umask(0o22))
    assert isinstance(carried["ignored"], int) and isinstance(carried["blocked"], int)


def test_a_folder_others_may_enter_or_a_symlink_is_not_private(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    fd = context.private_folder(private)
    assert fd is not None
    os.close(fd)
    private.chmod(0o750)
    assert context.private_folder(private) is None
    (tmp_path / "link").symlink_to(private)
    private.chmod(0o700)
    assert context.private_folder(tmp_path / "link") is None
    assert context.private_folder(tmp_path / "missing") is None


@pytest.mark.parametrize("argv", [["xarch", "inspect", "x"], ["xarch"], ["xarch", "build", "--sign-key", "k"],
                                  ["xarch", "build", "--sign-key=k"], ["xarch", "verify"]])
def test_commands_that_are_not_served_are_not_handed_over(argv: list[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path))
    (tmp_path / "server").mkdir(mode=0o700)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listening.bind(str(tmp_path / "server" / "socket"))
    listening.listen(1)
    listening.settimeout(0.05)
    with listening:
        assert client.delegate(argv) is None
        with pytest.raises(TimeoutError):
            listening.accept()  # it did not even connect


def test_no_server_or_off_hands_nothing_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path))
    assert client.delegate(["xarch", "build"]) is None  # no socket
    (tmp_path / "server").mkdir(mode=0o700)
    (tmp_path / "server" / "socket").write_text("")  # a file, not a listening socket
    assert client.delegate(["xarch", "build"]) is None
    monkeypatch.setenv("XARCH_SERVER", "off")
    assert client.delegate(["xarch", "push", "a", "b"]) is None


def test_every_module_loads_for_the_server() -> None:
    assert serve.preload() == []


def test_one_socket_per_folder_and_a_dead_servers_socket_is_replaced(tmp_path: Path) -> None:
    with serve.listening(tmp_path):
        assert (tmp_path / "server").stat().st_mode & 0o777 == 0o700
        with pytest.raises(serve.ServerError, match="another xarch server is running"):
            with serve.listening(tmp_path):
                pass
    assert not (tmp_path / "server" / "socket").exists()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dead.bind(str(tmp_path / "server" / "socket"))  # bound, never listening: its server died
    dead.close()
    with serve.listening(tmp_path) as sock:
        assert sock.getsockname()  # listening again


GOOD = {"argv": ["x", "build"], "env": {"A": "1"}, "umask": 0o22, "ignored": 0, "blocked": 0,
        "streams": [["utf-8", "strict", False]] * 2 + [["utf-8", "backslashreplace", False]]}


@pytest.mark.parametrize("request_, reason", [
    ({}, "not a command request"),
    ({"carried": {**GOOD, "streams": [["utf-8", "strict", False]] * 2}}, "not a command"),
    ({"carried": {**GOOD, "streams": [["utf-8", "strict"]] * 3}}, "not a command"),
    ({"carried": {**GOOD, "streams": [["utf-8", "strict", 0]] * 3}}, "not a command"),
    ({"carried": {**GOOD, "streams": [["no-such-codec", "strict", False]] * 3}}, "not a command"),
    ({"carried": {**GOOD, "streams": [["utf-8", "no-such-handler", False]] * 3}}, "not a command"),
    ({"carried": {**GOOD, "streams": None}}, "not a command"),
    ({"carried": {**GOOD, "argv": ["x"]}}, "not a command"),
    ({"carried": {**GOOD, "env": {"": "v"}}}, "not a command"),
    ({"carried": {**GOOD, "env": {"A=B": "v"}}}, "not a command"),
    ({"carried": {**GOOD, "env": {"A": "v\0"}}}, "not a command"),
    ({"carried": {**GOOD, "umask": "0"}}, "not a command"),
    ({"carried": {**GOOD, "ignored": None}}, "not a command"),
    ({"carried": GOOD, "facts": "all"}, "differs from the server's in: cgroup, ids"),
])
def test_a_request_that_is_not_a_served_command_is_refused(request_: dict, reason: str) -> None:
    from xarch.records import code_fingerprint

    assert reason in relay.refusal(request_, code_fingerprint())


def test_a_request_like_this_process_is_served_unless_the_code_changed() -> None:
    from xarch.records import code_fingerprint

    request_ = {"carried": GOOD, "facts": json.loads(json.dumps(context.facts()))}
    assert relay.refusal(request_, code_fingerprint()) == ""
    assert relay.refusal(request_, ["other"]).startswith("xarch's code")
    assert relay.refusal({}, ["other"]).startswith("xarch's code")  # whatever the request holds


def test_the_log_drops_a_line_it_cannot_write_now(tmp_path: Path) -> None:
    read, write = os.pipe()
    try:
        with os.fdopen(os.dup(write), "w") as stream:
            sink = log.Log(stream)
            sink.say("first")
            os.set_blocking(write, False)
            while True:  # fill the pipe
                try:
                    os.write(write, b"x" * 4096)
                except BlockingIOError:
                    break
            sink.say("dropped, not waited for")  # returns at once
        assert os.read(read, 64).startswith(b"xarch serve: first\n")
    finally:
        os.close(read)
        os.close(write)


def test_received_descriptors_take_the_clients_numbers(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    pid = os.fork()
    if pid == 0:  # in a child: _place closes every other descriptor of the process
        code = 1
        try:
            a, b = os.open(tmp_path / "a", os.O_RDONLY), os.open(tmp_path / "b", os.O_RDONLY)
            cwd = os.open(tmp_path, os.O_PATH)
            out = os.dup(1)
            command._place([0, out, 2, b, a], [0, 1, 2, 7, 9], cwd)
            ok = (os.read(7, 1), os.read(9, 1), os.getcwd()) == (b"b", b"a", str(tmp_path))
            code = 0 if ok and sorted(map(int, os.listdir("/proc/self/fd")))[:5] == [0, 1, 2, 3, 7] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
