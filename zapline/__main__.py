"""``python -m zapline`` runs the CLI."""

from zapline.cli import main

raise SystemExit(main())
