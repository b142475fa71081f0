"""``python -m gridshare COMMAND``: the same as the ``gridshare`` script."""

from gridshare.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
