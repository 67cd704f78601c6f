"""`python -m convscope`: the same command line as the `convscope` script."""

from convscope.cli import main

main()
