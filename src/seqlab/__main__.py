"""``python -m seqlab`` runs the CLI."""

from seqlab.cli.main import main

raise SystemExit(main())
