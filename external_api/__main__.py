"""``python -m external_api`` runs the ``workspace`` command."""

from __future__ import annotations

import sys

from external_api.cli import main

sys.exit(main())
