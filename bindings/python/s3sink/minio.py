"""``pw.io.minio`` writer: ``from s3sink.minio import write``. Imports Pathway."""

from pathway.io.minio import MinIOSettings

from ._pathway import minio_write as write

__all__ = ["MinIOSettings", "write"]
