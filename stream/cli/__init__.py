"""The command line: the Typer root (:mod:`stream.cli.main`) and its commands, which
parse options and call into the packages that own the work."""
