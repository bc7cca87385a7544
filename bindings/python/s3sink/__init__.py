"""s3sink: buffer rows and upload them as self-contained objects to S3 or MinIO.

With Pathway installed, ``import s3sink`` adds to Pathway:

- ``pw.io.s3.write(table, path, format, *, aws_s3_settings=None, name=None, sort_by=None, **options)``
- ``pw.io.s3.write_to_digital_ocean(table, path, do_s3_settings, format, *, ..., **options)``
- ``pw.io.s3.write_to_wasabi(table, path, wasabi_s3_settings, format, *, ..., **options)``
- ``pw.io.minio.write(table, path, format, *, minio_settings, ..., **options)``

(unless Pathway already defines them). The same functions are importable explicitly:
``from s3sink.s3 import write`` and ``from s3sink.minio import write``. Set
``S3SINK_NO_INSTALL=1`` to keep ``import s3sink`` from touching Pathway; call
:func:`install` later to attach them. The ``s3sink`` command (:mod:`s3sink.cli`) does not
import Pathway.

The options are the runtime's: :func:`options` describes each (type, group, range,
default, documentation), :func:`column_types` and :func:`bundled` name the column types
and the bundled scripts.

Without Pathway, :class:`Writer` is the sink itself: ``Writer(bucket=..., columns=[...])``
then ``on_change`` / ``on_time_end`` / ``close``.

Visibility: the logger ``s3sink`` tells each object uploaded (INFO), each failed attempt
that is retried (WARNING), the recovery (INFO) and a stop (ERROR); ``on_event=`` takes a
callable given each :class:`Event`; :func:`stats` reads a writer's counters by its
``name``.

Credentials: ``access_key`` / ``secret_key`` (/ ``session_token``) if given, else
botocore's provider chain (:class:`AwsCredentials`: environment, shared files and
``AWS_PROFILE`` or ``profile``, SSO, ``credential_process``, AssumeRole, web identity,
container and instance metadata), refreshed while the writer runs; ``credentials=`` takes
any callable instead. Finding none is an error: ``anonymous=True`` sends unsigned
requests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

from . import _s3sink
from ._credentials import AwsCredentials
from ._events import Event, stats
from ._s3sink import (
    ConfigError,
    Formatter,
    ScriptError,
    SinkError,
    UploadError,
    bundled,
    column_types,
    format_float,
    options,
    to_json,
)
from ._writer import Writer

__version__ = _s3sink.__version__

__all__ = [
    "AwsCredentials",
    "ConfigError",
    "Event",
    "Formatter",
    "ScriptError",
    "SinkError",
    "UploadError",
    "Writer",
    "bundled",
    "column_types",
    "format_float",
    "install",
    "options",
    "stats",
    "to_json",
    "__version__",
]


def install() -> None:
    """Attaches ``write``, ``write_to_digital_ocean`` and ``write_to_wasabi`` to
    ``pw.io.s3`` and ``write`` to ``pw.io.minio``, without replacing functions Pathway
    itself may define. Imports Pathway. Called by ``import s3sink`` when Pathway is
    installed (unless ``S3SINK_NO_INSTALL=1``); calling it again does nothing."""
    from . import _pathway

    _pathway.install()


def _started_as_command() -> bool:
    """Whether this process is the ``s3sink`` command (the console script, or ``python -m
    s3sink`` while it is being imported), which writes no Pathway table: importing
    Pathway would only slow its start by a second."""
    if sys.argv and os.path.basename(sys.argv[0]) == "s3sink":
        return True
    if sys.argv[:1] != ["-m"]:
        return False
    argv = getattr(sys, "orig_argv", [])
    for i, arg in enumerate(argv[1:], 1):
        if arg == "-m":
            module = argv[i + 1] if i + 1 < len(argv) else ""
        elif arg.startswith("-m"):
            module = arg[2:]
        else:
            continue
        return module.split(".")[0] == "s3sink"
    return False


def _auto_install() -> None:
    if os.environ.get("S3SINK_NO_INSTALL", "").strip() not in ("", "0"):
        return
    if _started_as_command():
        return
    if importlib.util.find_spec("pathway") is None:
        return
    try:
        install()
    except Exception as e:  # noqa: BLE001 - the sink itself still works without Pathway
        warnings.warn(
            f"s3sink: Pathway is installed but could not be extended ({type(e).__name__}: {e}); "
            "pw.io.s3.write is not available",
            RuntimeWarning,
            stacklevel=2,
        )


_auto_install()
