"""Minimal by tracing: run the image, record every path its process tree uses, keep only those.

syscalls (strace output → paths), closure (paths → entries to keep), record (xarch.trace),
runner (the sandboxed, probed run), apply (the build side), commands (`xarch trace`).
"""
