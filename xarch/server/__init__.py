"""The build server (`xarch serve`): a process that has loaded xarch once and forks a copy of itself
for each `xarch build` or `xarch push` a client hands it, so a rebuild does not pay for starting
Python and loading its libraries again (Bazel's server and Gradle's daemon work this way; Android's
zygote is the same fork-after-loading trick).

Opt-in and per user: the server listens on `$XARCH_CACHE/server/socket` in a folder only its
user can enter, and serves only a client whose process is like its own (`context`): the same
user, groups, namespaces, limits, capabilities, cgroup, interpreter and xarch code. Anything else,
and any failure to reach it, runs the command in the client as if no server were there. The
command runs with the client's working folder, environment, umask, signal dispositions and
standard streams (passed as file descriptors), and its exit code is the client's.

Modules: `context` (what must match, what is carried over), `wire` (the messages), `client`,
`serve` (the server), `relay` (one client's checks and command), `command` (the command's
process), `log` (the server's log, never blocking).
"""
