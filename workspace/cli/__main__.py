"""python -m workspace.cli"""

from workspace.cli import main

main()
