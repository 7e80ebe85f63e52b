"""python -m workspace"""

from workspace.cli import main

main()
