"""``python -m gridshare COMMAND``: the same as the ``gridshare`` script."""

from gridshare.cli import main

raise SystemExit(main())
