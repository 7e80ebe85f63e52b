"""python -m workspace"""

from workspace.cli.entry import main

main()
