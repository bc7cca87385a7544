"""The runtime's options as Python types, for type checkers and editors.

``_s3sink.options()`` is their definition (names, types, ranges, defaults, docs); the
classes below only spell the names and value types for static checking, and
tests/test_options.py checks them against the table, so an option added to the runtime
fails the tests until it is added here. Every option also takes ``None``: not given (the
runtime's default), or, for an option without a limit (``max_retry_ms``), no limit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypedDict

# the value of a str option: text, or a path object (for the options naming files)
Text = str | os.PathLike[str]
# the value of a list option (options() says "list"): names separated by commas, or a list
Names = str | Sequence[str]


class WriterOptions(TypedDict, total=False):
    """Keyword options of the Pathway writers (``pw.io.s3.write``, ...): the runtime's
    options of the groups output, transport and reliability. ``format`` is a parameter
    of its own; the target (endpoint, bucket, credentials, ...) comes from the path and
    the settings; the host's options are the writers' to set."""

    naming: Text | None
    write_interval_ms: int | None
    max_object_rows: int | None
    max_object_bytes: int | None
    compression: Text | None
    compression_level: int | None
    storage_class: Text | None
    sse: Text | None
    sse_kms_key_id: Text | None
    tags: dict[str, str] | None
    metadata: dict[str, str] | None
    key_template: Text | None
    partition_by: Names | None
    time_column: Text | None
    writer_id: Text | None
    connect_timeout_ms: int | None
    request_timeout_ms: int | None
    multipart_threshold_bytes: int | None
    multipart_part_bytes: int | None
    insecure_tls: bool | None
    ca_file: Text | None
    anonymous: bool | None
    create_bucket: bool | None
    max_buffer_bytes: int | None
    max_retry_ms: int | None
    max_open_partitions: int | None
    spool_dir: Text | None
    spool_max_bytes: int | None


class SinkOptions(WriterOptions, total=False):
    """Keyword options of ``s3sink.Writer``: every option of the runtime."""

    endpoint: Text | None
    region: Text | None
    bucket: Text | None
    prefix: Text | None
    virtual_hosted: bool | None
    access_key: Text | None
    secret_key: Text | None
    session_token: Text | None
    profile: Text | None
    format: Text | None
    no_timer: bool | None
    background_uploads: bool | None
