"""Subcommands of the gridshare command line (one module each, ``main(argv) -> int``)."""
