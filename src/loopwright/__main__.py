"""``python -m loopwright`` runs the command line."""

from loopwright.cli.app import main

main()
