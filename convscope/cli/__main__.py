"""`python -m convscope.cli`: the same command line as the `convscope` script."""

from convscope.cli.common import main

main()
