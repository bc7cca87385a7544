"""Type stubs of the C core of s3sink."""

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypedDict

if sys.version_info >= (3, 11):
    from typing import Unpack  # novm (3.11+, guarded)
else:
    from typing_extensions import Unpack

from ._options import SinkOptions

__version__: str

ColumnType = Literal[
    "int",
    "float",
    "bool",
    "str",
    "bytes",
    "pointer",
    "datetime_naive",
    "datetime_utc",
    "duration",
    "json",
    "tuple",
    "list",
    "array",
    "any",
]
Column = tuple[str, ColumnType] | tuple[str, ColumnType, bool]

class SinkError(Exception):
    """Base class of the errors of s3sink."""

    code: str | None
    """The runtime's code name: EINVAL, ESCRIPT, ENOMEM, EHTTP, ES3, ESTATE."""
    status: int | None
    """HTTP status of the failed request, if any."""
    s3_code: str | None
    """S3 error code, e.g. "NoSuchBucket"."""
    request_id: str | None

class ConfigError(SinkError, ValueError):
    """A bad argument or configuration."""

class ScriptError(SinkError):
    """A Lua format or naming script failed to load or to run."""

class UploadError(SinkError, OSError):
    """A request to the object store failed (transport or S3 error)."""

class Credentials(TypedDict, total=False):
    """What a credentials callable returns (or a tuple (access_key, secret_key[,
    session_token]), such as botocore's frozen credentials)."""

    access_key: str
    secret_key: str
    session_token: str | None
    expires_at: float | datetime | None
    """Seconds since the Unix epoch (or an aware datetime) when they stop working."""
    source: str | None
    """Where they came from, for messages."""

CredentialsCallable = Callable[[], "Credentials | tuple[str, str] | tuple[str, str, str | None]"]

class Stats(TypedDict):
    objects: int
    rows: int
    bytes: int
    buffered_rows: int
    buffered_bytes: int
    failed_uploads: int
    last_write_ms: int
    pending_objects: int
    spool_bytes: int
    upload_ms: int
    early_bytes: int

class Writer:
    """A sink: buffers rows and uploads them as self-contained objects.

    Opening checks the bucket (HeadBucket, or creates it with ``create_bucket``) and lists
    the prefix, so object keys continue after those of an earlier run. ``columns`` and
    the options are keyword-only; the options are the runtime's (``options()``), and None
    leaves one at its default (for ``max_retry_ms``: retries forever).
    """

    def __init__(
        self,
        *,
        columns: Sequence[Column],
        credentials: CredentialsCallable | None = None,
        on_event: Callable[[dict[str, Any]], Any] | None = None,
        **options: Unpack[SinkOptions],
    ) -> None:
        """``credentials``: called before signing (possibly from the sink's own thread)
        and again as the credentials near ``expires_at``; raise ConfigError for what
        retrying cannot fix. ``on_event``: called with each event's fields (kind, key,
        rows, bytes, elapsed_ms, attempts, retry_in_ms, code, message, stats), from the
        sink's thread or inside the call that caused it; it may read the writer, not
        write, flush or close it (s3sink.Writer turns them into s3sink.Event)."""
    def on_change(self, key: Any, row: Mapping[str, Any], time: int, is_addition: bool) -> None:
        """Buffers one change (``row``: column name -> value, in column order)."""
    def on_engine_change(self, key: Any, values: Sequence[Any], time: int, diff: int) -> None:
        """Buffers one change as the engine's callback sink passes it: ``values`` by
        column position (a list or tuple), ``diff`` >= 1 for an insertion."""
    def on_time_end(self, time: int) -> bool:
        """Closes the minibatch (with a spool: once it is on disk) and applies the flush
        policy; True if an object was uploaded. A failed attempt that is retried does not
        raise (see ``last_error``); once uploads have stopped, raises the error."""
    def on_end(self) -> None:
        """The same as close()."""
    def flush(self, forced: bool = False) -> bool:
        """Applies the flush policy now (``forced``: whatever the interval); True if an
        object was uploaded. Raises UploadError if the upload failed."""
    def close(self, *, drop_unfinished: bool = False, leave_spooled: bool = False) -> None:
        """Uploads everything buffered and releases the sink; raises UploadError if that
        fails (the rows are kept; call close() again). ``drop_unfinished``: drop rows
        written since the last on_time_end; ``leave_spooled``: with a spool, upload
        nothing and leave every kept row there for the next writer."""
    def discard(self) -> None:
        """Releases the sink without uploading (rows in memory are lost; complete
        minibatches in a spool stay there)."""
    def interrupt(self) -> None:
        """Makes an on_change that waits for room raise at once (its row not accepted),
        and every later one too."""
    def __enter__(self) -> "Writer": ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    @property
    def stats(self) -> Stats: ...
    @property
    def failed_uploads(self) -> int: ...
    @property
    def last_key(self) -> str | None: ...
    @property
    def last_error(self) -> SinkError | None:
        """The error of the last upload attempt, by any thread, if it failed (it is
        retried until uploads stop); None once one succeeds."""
    @property
    def failure(self) -> SinkError | None: ...
    @property
    def credentials_source(self) -> str:
        """Where the credentials come from, e.g. "the credentials provider (botocore: env)"."""
    @property
    def anonymous(self) -> bool:
        """True when requests are not signed (anonymous=True)."""
    @property
    def closed(self) -> bool: ...
    @property
    def columns(self) -> list[tuple[str, str, bool]]: ...

class Formatter:
    """Renders rows with a format script exactly as the sink does, without uploading."""

    def __init__(self, format: str | None, columns: Sequence[Column]) -> None: ...
    def header(self) -> bytes: ...
    def row(self, row: Mapping[str, Any], time: int, diff: int = 1) -> bytes: ...
    @property
    def extension(self) -> str: ...
    @property
    def content_type(self) -> str: ...

class OptionInfo(TypedDict):
    """An option of the runtime, as ``options()`` describes it."""

    name: str
    type: Literal["str", "int", "bool", "dict"]
    group: Literal["target", "output", "transport", "reliability", "host"]
    min: int | None
    """Integers: the accepted range; None for other types."""
    max: int | None
    unlimited: bool
    """None (or -1) is accepted too and means no limit."""
    default: str | None
    """The default as users read it, or None."""
    doc: str
    list: bool
    """A str option holding names separated by commas, which takes a list of str too."""

def options() -> tuple[OptionInfo, ...]:
    """The runtime's options, in order."""
def column_types() -> tuple[ColumnType, ...]:
    """The names of the column types, in the runtime's order."""
def bundled(kind: Literal["format", "naming"]) -> tuple[str, ...]:
    """The names of the scripts bundled in the runtime."""
def strerror(code: int) -> str: ...
def format_float(value: float, style: Literal["json", "csv"] = "json") -> str: ...
def to_json(value: Any) -> str: ...
