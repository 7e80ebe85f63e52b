"""python -m workspace.cli"""

from workspace.cli.entry import main

main()
