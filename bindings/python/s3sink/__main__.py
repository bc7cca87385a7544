"""``python -m s3sink``: the ``s3sink`` command (see ``s3sink.cli``)."""

import sys

from .cli import main

sys.exit(main())
