"""`python -m xarch.cli`: the same as the `xarch` command."""

from xarch.cli.main import main

main()
