"""`python -m posgate` = the `posgate` command."""

from posgate.cli import main

main()
