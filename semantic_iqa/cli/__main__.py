"""`python -m semantic_iqa.cli ...` runs the `semantic-iqa` command."""

from . import main

raise SystemExit(main())
