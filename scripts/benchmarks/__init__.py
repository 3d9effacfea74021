"""scripts/bench as a package: xarch measured side by side with what users pick instead.

Modules: main (the command line, `scripts/bench`), measuring (wall, CPU, peak RSS of one
command), report and markdown (BENCHMARKS.md), one module per group of rows: builds (nginx and
the C program: cold, rebuild, warm, compile, against docker buildx), layers (the layer writer
against tar | gzip/pigz), big (memory and throughput on large trees), pushing (xarch push
against skopeo), noop (the cached rebuild, start-up, imports). Children run real modules of
this package: run_xarch (xarch from this checkout), profile_xarch, layer_writer, large_layout.
Kept free of imports: every child started with `python -m benchmarks.X` imports this file.
"""
