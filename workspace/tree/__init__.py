"""The working tree against history: everything that reads or writes the project's files.

ignore (.wsignore), dirwalk and scan (walking, the stat cache), status, diff,
commit (walk + ingest + history's record), transaction and staging, checkout /
switch / restore, write (writing committed files into the tree) and
apply_release (writing a pulled release's files). Modules here take a
:class:`~workspace.repo.Repo` and use :mod:`workspace.history` for HEAD and
commits; history never imports this package.
"""
