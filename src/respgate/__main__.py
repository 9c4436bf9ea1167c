"""`python -m respgate …`: the same commands as the `respgate` script."""

from respgate.cli import main

main()
