"""Reading `strace -f -xx` output (xarch/trace/syscalls.py) on lines written as strace writes them:
relative paths against the process's folder and the `*at` call's descriptor, children inheriting
both, unfinished calls joined, cut strings left out, and only the traced command counted."""

from __future__ import annotations

from xarch.trace.syscalls import paths_used


def x(text: str) -> str:
    """TEXT as strace -xx quotes it: every byte hex-escaped."""
    return '"' + "".join(f"\\x{byte:02x}" for byte in text.encode()) + '"'


def test_paths_are_absolute_and_follow_the_process_folder() -> None:
    lines = [
        f"100 execve({x('/usr/bin/app')}, [{x('app')}, {x('/etc/not-a-path-arg')}], 0x7ffd /* 3 vars */) = 0",
        f"100 openat(AT_FDCWD, {x('/etc/ld.so.cache')}, O_RDONLY|O_CLOEXEC) = 3",
        f"100 openat(AT_FDCWD, {x('/srv')}, O_RDONLY|O_DIRECTORY) = 4",
        "100 fchdir(4) = 0",
        f"100 openat(AT_FDCWD, {x('data/../conf.yaml')}, O_RDONLY) = 5",
        f"100 newfstatat(4, {x('cache')}, 0x7ffc, 0) = -1 ENOENT (No such file or directory)",
        f"100 readlink({x('/proc/self/exe')}, {x('/usr/bin/app')}, 4096) = 12",
        f"100 openat(AT_FDCWD, {x('/very/long/path/cut')}..., O_RDONLY) = 6",
        "100 +++ exited with 0 +++",
    ]
    used = paths_used(lines)
    assert used.executed == {"/usr/bin/app"}
    assert used.paths == {"/usr/bin/app", "/etc/ld.so.cache", "/srv", "/srv/conf.yaml", "/srv/cache",
                          "/proc/self/exe"}  # argv and a link's text are no paths; failed calls count
    assert used.truncated == 1


def test_a_child_inherits_the_folder_and_unfinished_calls_are_joined() -> None:
    lines = [
        f"7 chdir({x('/opt/app')}) = 0",
        "7 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>",
        f"8 openat(AT_FDCWD, {x('lib/a.so')}, O_RDONLY <unfinished ...>",
        "7 <... clone resumed>) = 2 /* 8 in strace's PID NS */",
        "8 <... openat resumed>) = 3",
    ]
    assert paths_used(lines).paths == {"/opt/app", "/opt/app/lib/a.so"}


def test_only_the_traced_command_and_its_children_count() -> None:
    lines = [
        f"1 execve({x('/usr/bin/unshare')}, [{x('unshare')}], 0x1 /* 1 var */) = 0",
        f"1 openat(AT_FDCWD, {x('/etc/host-only')}, O_RDONLY) = 3",
        f"1 execve({x('/bin/sh')}, [{x('sh')}], 0x1 /* 1 var */) = 0",
        f"1 openat(AT_FDCWD, {x('/etc/profile')}, O_RDONLY) = 3",
    ]
    used = paths_used(lines, starts=lambda path: path == "/bin/sh")
    assert used.paths == {"/bin/sh", "/etc/profile"} and used.executed == {"/bin/sh"}


def test_a_child_that_runs_before_its_parent_s_fork_returns_is_inside_with_its_folder() -> None:
    # strace -f may print a new child's calls before its parent's clone returns (a loaded CI
    # machine does): a server's child serving a page must count, from the folder it inherited.
    lines = [
        f"7 execve({x('/bin/busybox')}, [{x('httpd')}], 0x1 /* 1 var */) = 0",
        f"7 chdir({x('/www')}) = 0",
        "7 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>",
        f"8 openat(AT_FDCWD, {x('index.html')}, O_RDONLY) = 3",
        "7 <... clone resumed>) = 2 /* 8 in strace's PID NS */",
        f"9 openat(AT_FDCWD, {x('/etc/not-ours')}, O_RDONLY) = 3",  # no child of the command's
    ]
    used = paths_used(lines, starts=lambda path: path == "/bin/busybox")
    assert used.paths == {"/bin/busybox", "/www", "/www/index.html"}
