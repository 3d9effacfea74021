"""Python dependencies from a package index (PyPI): locked per platform, installed without QEMU.

config.py   the recipe's `python:` section (requirements, interpreter, target)
resolve.py  `uv pip compile --python-platform` per platform → one wheel per dependency
lock.py     the `python:` section of xarch.lock (file name, URL, sha256, size per platform)
install.py  verified fetch into the store, and PyPA's `installer` writing into the image tree
commands.py `xarch lock` / `xarch build` glue: keep the section in step, `lock --check`

See docs/python.md.
"""
