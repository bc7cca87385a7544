"""``pw.io.s3`` writers: ``from s3sink.s3 import write``. Imports Pathway."""

from pathway.internals._io_helpers import AwsS3Settings
from pathway.io.s3 import DigitalOceanS3Settings, WasabiS3Settings

from ._pathway import write, write_to_digital_ocean, write_to_wasabi

__all__ = [
    "AwsS3Settings",
    "DigitalOceanS3Settings",
    "WasabiS3Settings",
    "write",
    "write_to_digital_ocean",
    "write_to_wasabi",
]
