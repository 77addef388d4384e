"""``python -m comfy_serverless.cli``: the ``comfy-serverless`` command."""

import sys

from . import main

sys.exit(main())
