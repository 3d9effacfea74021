"""Debian packages as pinned inputs: signed indexes, a deterministic resolver, a lock file,
verified downloads and an unpacker that never runs maintainer scripts (so no emulation).

Flow: resolve_lock (lock.py) -> Lock.dump/Lock.load -> fetch_packages (fetch.py) ->
install_packages + write_accounts (install.py). `run_lock`/`make_lock_command`
(commands.py) are the `xarch lock` command.
"""

# No re-exports: importing this package must stay cheap (`xarch build` starts here).
