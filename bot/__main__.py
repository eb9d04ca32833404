"""`python -m bot` is the `shipcord` command."""

from bot.cli import main

main()
