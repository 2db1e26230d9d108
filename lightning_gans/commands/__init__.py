"""One module per project subcommand (``lightning-gans <name>``): argparse, printing and exit codes only.

Each module's ``main(argv)`` parses its options, calls the library function in :mod:`lightning_gans.workflows`
and prints the result; :mod:`lightning_gans.cli` dispatches to it. No module here imports another.
"""
