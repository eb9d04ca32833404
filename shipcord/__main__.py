"""`python -m shipcord` is the `shipcord` command."""

from shipcord.cli import main

main()
