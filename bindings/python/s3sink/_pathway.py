"""Pathway output connectors on the s3sink runtime: ``pw.io.s3.write``,
``pw.io.s3.write_to_digital_ocean``, ``pw.io.s3.write_to_wasabi`` and
``pw.io.minio.write``.

Importing this module imports Pathway. The per-row work is done in C: the observer *is*
an ``s3sink._s3sink.Writer``, attached to the engine's callback sink, whose C
``on_engine_change`` converts each row and hands it to the runtime (see ``_fastpath``; with
other Pathway internals, through ``pw.io.python.write`` and the C ``on_change``); uploads
happen in ``on_time_end`` once ``write_interval_ms`` has passed, on the runtime's timer
thread while the stream is idle, and in ``on_end``.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import pathway as pw
from pathway.internals import dtype as dt
from pathway.internals._io_helpers import AwsS3Settings
from pathway.io.minio import MinIOSettings
from pathway.io.s3 import DigitalOceanS3Settings, WasabiS3Settings

from . import _credentials, _fastpath, _s3sink
from ._events import EventCallable
from ._options import Text, WriterOptions
from ._writer import Writer

if sys.version_info >= (3, 11):
    from typing import Unpack  # novm (3.11+, guarded)
else:  # a dependency of the package on 3.10 (pyproject.toml)
    from typing_extensions import Unpack

logger = logging.getLogger("s3sink")

__all__ = [
    "write",
    "write_to_digital_ocean",
    "write_to_wasabi",
    "minio_write",
]

_S3_PREFIXES = ("s3://", "s3a://")
# aws-region (the crate behind Pathway's readers) maps these region names to
# DigitalOcean Spaces and Wasabi hosts when no endpoint is given
_DO_REGIONS = frozenset({"nyc3", "ams3", "sgp1", "fra1", "sfo2", "sfo3", "syd1", "blr1", "lon1", "tor1"})

AnySettings = AwsS3Settings | MinIOSettings | DigitalOceanS3Settings | WasabiS3Settings


# ---------------------------------------------------------------------------------------
# Where to write: endpoint, region, bucket, prefix, addressing and credentials


class _Target:
    """Resolved connection settings. Its repr never shows the credentials. Keys are the
    settings' own; without them the Writer signs with botocore's chain (environment,
    profiles, SSO, credential_process, web identity, container and instance metadata)."""

    __slots__ = (
        "endpoint",
        "region",
        "bucket",
        "prefix",
        "virtual_hosted",
        "access_key",
        "secret_key",
        "session_token",
    )

    def __init__(self, **kw: Any) -> None:
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def __repr__(self) -> str:
        return (
            f"_Target(endpoint={self.endpoint!r}, region={self.region!r}, "
            f"bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"virtual_hosted={self.virtual_hosted!r}, credentials="
            f"{'given' if self.access_key else 'the AWS chain'})"
        )

    def writer_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _split_path(path: str) -> tuple[str | None, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); a bare prefix -> (None, prefix)."""
    for p in _S3_PREFIXES:
        if path.startswith(p):
            rest = path[len(p) :]
            bucket, _, prefix = rest.partition("/")
            return (bucket or None), prefix
    return None, path


def _normalize_prefix(prefix: str) -> str:
    # the path names a "directory": objects go *under* it, so that a reader of
    # s3://bucket/out/run1 never mixes in out/run10/...
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def _given_keys(
    access_key: str | None, secret_key: str | None, session_token: str | None, param: str
) -> tuple[str | None, str | None, str | None]:
    """The settings' keys (empty is not given); both or neither."""
    access_key, secret_key = access_key or None, secret_key or None
    if (access_key is None) != (secret_key is None):
        raise ValueError(
            f"{param}: only one of the access key and the secret access key is set; give "
            "both, or neither to use the AWS credential chain (environment, AWS_PROFILE, ...)"
        )
    return access_key, secret_key, (session_token or None) if access_key else None


def _is_ip_endpoint(url: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    try:
        ipaddress.ip_address(urlsplit(url if "://" in url else "https://" + url).hostname or "")
    except ValueError:
        return False
    return True


def _aws_host(region: str) -> tuple[str, str]:
    """(endpoint, signing region) of a region name without an explicit endpoint, as
    Pathway's readers (aws-region) resolve it."""
    if region.startswith("wa-"):
        r = region[3:]
        return f"https://s3.{r}.wasabisys.com", r
    if region in _DO_REGIONS:
        return f"https://{region}.digitaloceanspaces.com", region
    return f"https://s3.{region}.amazonaws.com", region


def _detect_region(bucket: str, param: str) -> str:
    region = _credentials.configured_region(_credentials.session())
    if region:
        return region
    try:  # Pathway's own detection: an anonymous HEAD on s3.amazonaws.com
        found = AwsS3Settings.new_from_path(f"s3://{bucket}")
    except Exception as e:  # noqa: BLE001 - any failure means "give the region"
        raise ValueError(
            f"{param}: no region and no endpoint given, and the region of bucket "
            f"{bucket!r} could not be detected ({type(e).__name__}); pass "
            "AwsS3Settings(region=..., ...) or set AWS_REGION"
        ) from None
    return found._region


def _resolve_target(path: str, settings: Any, param: str) -> _Target:
    """Maps `path` and any of Pathway's S3 settings classes onto the sink's target."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str ('s3://bucket/prefix' or a prefix), not {type(path).__name__}")
    path_bucket, prefix = _split_path(path)
    prefix = _normalize_prefix(prefix)

    endpoint = region = bucket = None
    access_key = secret_key = session_token = None
    path_style = False
    if settings is None:
        pass
    elif isinstance(settings, MinIOSettings):
        endpoint = settings.endpoint or _credentials.configured_endpoint(_credentials.session())
        bucket = settings.bucket_name
        access_key, secret_key = settings.access_key, settings.secret_access_key
        path_style = bool(settings.with_path_style)
        region = settings.region
        if not endpoint:
            raise ValueError(f"{param}: MinIOSettings needs an endpoint (or AWS_ENDPOINT_URL)")
    elif isinstance(settings, DigitalOceanS3Settings):
        if not settings.region:
            raise ValueError(f"{param}: DigitalOceanS3Settings needs a region (e.g. 'fra1')")
        endpoint = f"https://{settings.region}.digitaloceanspaces.com"
        region = settings.region
        bucket = settings.bucket_name
        access_key, secret_key = settings.access_key, settings.secret_access_key
    elif isinstance(settings, WasabiS3Settings):
        if not settings.region:
            raise ValueError(f"{param}: WasabiS3Settings needs a region (e.g. 'us-east-1')")
        endpoint = f"https://s3.{settings.region}.wasabisys.com"
        region = settings.region
        bucket = settings.bucket_name
        access_key, secret_key = settings.access_key, settings.secret_access_key
    elif isinstance(settings, AwsS3Settings):
        endpoint = getattr(settings, "_endpoint", None)
        region = getattr(settings, "_region", None)
        bucket = getattr(settings, "_bucket_name", None)
        access_key = getattr(settings, "_access_key", None)
        secret_key = getattr(settings, "_secret_access_key", None)
        session_token = getattr(settings, "_session_token", None)
        path_style = bool(getattr(settings, "_with_path_style", False))
    elif hasattr(settings, "create_aws_settings"):  # another provider's settings class
        return _resolve_target(path, settings.create_aws_settings(), param)
    else:
        raise TypeError(
            f"{param} must be AwsS3Settings, MinIOSettings, DigitalOceanS3Settings, "
            f"WasabiS3Settings or None, not {type(settings).__name__}"
        )

    # as in Pathway's readers, a bucket in the settings wins over the one in the path
    if bucket and path_bucket and bucket != path_bucket:
        logger.warning(
            "s3sink: path names bucket %r but %s names %r; writing to %r",
            path_bucket, param, bucket, bucket,
        )
    bucket = bucket or path_bucket
    if not bucket:
        raise ValueError(
            f"path: no bucket given; use 's3://bucket/prefix' or set the bucket in {param} "
            f"(got path {path!r})"
        )

    configured = False
    if not endpoint:  # AWS_ENDPOINT_URL(_S3), the profile's endpoint_url
        sess = _credentials.session()
        endpoint = _credentials.configured_endpoint(sess)
        configured = bool(endpoint)
        region = region or (_credentials.configured_region(sess) if endpoint else None)
    if endpoint:
        # as botocore does, an endpoint configured by IP address is addressed path-style
        # (no bucket.<IP> host exists)
        virtual_hosted = not path_style and not (configured and _is_ip_endpoint(endpoint))
        region = region or "us-east-1"
    else:
        region = region or _detect_region(bucket, param)
        endpoint, region = _aws_host(region)
        virtual_hosted = not path_style

    access_key, secret_key, session_token = _given_keys(access_key, secret_key, session_token, param)
    return _Target(
        endpoint=endpoint,
        region=region,
        bucket=bucket,
        prefix=prefix,
        virtual_hosted=virtual_hosted,
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
    )


# ---------------------------------------------------------------------------------------
# What to write: format, naming, columns


def _script(value: Any, kind: str) -> Any:
    """A format or naming script (``kind``): a bundled name stays as it is, the path of a
    script becomes absolute, and a path that is not there is refused now. Anything else
    goes to the runtime, which says what it takes."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or value in _s3sink.bundled(kind):
        return value
    if os.path.isfile(value):
        return os.path.abspath(value)
    if value.endswith(".lua") or "/" in value or os.sep in value:
        raise ValueError(f"{kind}: the Lua {kind} script {value!r} does not exist")
    return value


def _s3sink_type(t: dt.DType, column: str, nested: bool = False) -> tuple[str, bool]:
    """(s3sink type, optional) of a Pathway dtype; ValueError for types the engine's
    writers serialize in ways this binding cannot reproduce."""
    optional = False
    if isinstance(t, dt.Optional):
        optional = True
        t = t.wrapped
    simple = {
        dt.INT: "int",
        dt.FLOAT: "float",
        dt.BOOL: "bool",
        dt.STR: "str",
        dt.BYTES: "bytes",
        dt.DATE_TIME_NAIVE: "datetime_naive",
        dt.DATE_TIME_UTC: "datetime_utc",
        dt.DURATION: "duration",
    }
    for k, v in simple.items():
        if t == k:
            return v, optional
    if isinstance(t, dt.Pointer):
        return "pointer", optional
    if isinstance(t, dt.Json):
        return "json", optional
    if isinstance(t, dt.Array):
        return "array", optional
    if isinstance(t, dt.Tuple):
        for a in t.args:
            _check_nested(a, column)
        return "tuple", optional
    if isinstance(t, dt.List):
        _check_nested(t.wrapped, column)
        return "list", optional
    if t == dt.NONE:  # a column that only ever holds None
        return "str", True
    if t == dt.ANY:  # e.g. pw.apply without a return type: each value by its own type
        return "any", True
    raise ValueError(
        f"table: column {column!r} has type {t!r}, which s3.write cannot serialize "
        "(supported: int, float, bool, str, bytes, Pointer, DateTimeNaive, DateTimeUtc, "
        "Duration, Json, tuples, lists, numpy arrays, Any and their Optional forms); "
        "convert it first, e.g. with pw.apply or .as_str()"
    )


def _check_nested(t: Any, column: str) -> None:
    if t is Ellipsis or t == dt.ANY:
        return  # dynamic elements: converted by value at run time
    _s3sink_type(t, column, nested=True)


def _columns(table: pw.Table) -> list[tuple[str, str, bool]]:
    if not isinstance(table, pw.Table):
        raise TypeError(f"table must be a pathway Table, not {type(table).__name__}")
    cols = []
    for name, col in table.schema.columns().items():
        stype, optional = _s3sink_type(col.dtype, name)
        cols.append((name, stype, optional))
    return cols


def _spool_folder(spool_dir: Any) -> Any:
    """The spool folder of this process. Every process of a multi-process run builds the
    writer (only the first gets rows), and a folder serves one writer at a time, so the
    other processes each get a sub-folder of their own."""
    if isinstance(spool_dir, os.PathLike):
        spool_dir = os.fspath(spool_dir)
    if not isinstance(spool_dir, str) or not spool_dir:
        return spool_dir  # None (no spool), or a value the runtime refuses
    process = os.environ.get("PATHWAY_PROCESS_ID", "0")
    if process != "0":
        spool_dir = os.path.join(spool_dir, f"process-{process}")
    return os.path.abspath(spool_dir)


# ---------------------------------------------------------------------------------------
# The observer


_live_writers: "weakref.WeakSet[_S3Observer]" = weakref.WeakSet()
_live_lock = threading.Lock()


class _S3Observer(Writer, pw.io.python.ConnectorObserver):
    """The observer of the table (see ``_fastpath.attach``): ``on_engine_change``,
    ``on_change``, ``on_time_end`` and ``on_end`` are the C methods of ``s3sink.Writer``.
    A failed upload attempt keeps its rows and is retried (the ``s3sink`` logger warns);
    once uploads stop on an error (permanent, or transient past ``max_retry_ms``), the
    next callback raises it and Pathway fails the run with its message."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spooled = kwargs.get("spool_dir") is not None
        with _live_lock:
            _live_writers.add(self)


@atexit.register
def _close_live_writers() -> None:
    """Writers of an interrupted run (on_end never came: Ctrl-C, SIGTERM, a failed run).
    Rows of the unfinished minibatch were never acknowledged to Pathway, so they are
    dropped: a restart sends them again. With a spool, the complete minibatches stay there
    for the next run, and the process exits at once; without one, they are uploaded now,
    with the usual retries (up to max_retry_ms), unless uploads had stopped on an error
    already, in which case they are lost (and logged)."""
    with _live_lock:
        writers = [w for w in _live_writers if not w.closed]
    for w in writers:  # a worker waiting for room must let go of its writer first
        w.interrupt()
    for w in writers:
        failure = w.failure
        if failure is not None:
            kept = w.stats["buffered_rows"]
            w.discard()
            logger.error("s3sink: at exit, %d rows were not uploaded (%s): %s", kept,
                         "they stay in the spool" if w._spooled else "they are lost", failure)
            continue
        try:
            w.close(drop_unfinished=True, leave_spooled=True)
        except Exception as e:  # noqa: BLE001
            logger.error("s3sink: final upload at exit failed, buffered rows are lost: %s", e)


# The writers' keyword options: the runtime's of these groups, but for format, a parameter
# of its own as in Pathway's writers. The target comes from the path and the settings, and
# the host's options are the writers' to set.
_WRITER_GROUPS = ("output", "transport", "reliability")
_OPTIONS = {o["name"]: o for o in _s3sink.options()}
_WRITER_OPTIONS = tuple(
    name for name, o in _OPTIONS.items() if o["group"] in _WRITER_GROUPS and name != "format"
)


def _writer_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword options of a writer call, for the Writer. Refused here are only the
    runtime's options the writers set themselves; the runtime checks every other name
    (a misspelt one gets its suggestion) and every value."""
    for name in options:
        if name in _OPTIONS and name not in _WRITER_OPTIONS:
            source = "the path and the settings" if _OPTIONS[name]["group"] == "target" else "the writer"
            raise TypeError(f"{name} is not an option of this writer: it is set by {source}")
    options = dict(options)
    if "naming" in options:
        options["naming"] = _script(options["naming"], "naming")
    if "spool_dir" in options:
        options["spool_dir"] = _spool_folder(options["spool_dir"])
    ca_file = options.get("ca_file")
    if isinstance(ca_file, (str, os.PathLike)) and not os.path.isfile(ca_file):
        raise ValueError(f"ca_file: {os.fspath(ca_file)!r} does not exist")
    return options


def _connect(
    table: pw.Table,
    target: _Target,
    format: Any,
    name: str | None,
    sort_by: Iterable[Any] | None,
    on_event: EventCallable | None,
    options: dict[str, Any],
) -> None:
    columns = _columns(table)
    observer = _S3Observer(
        **target.writer_kwargs(),
        format=_script(format, "format"),
        columns=columns,
        name=name,
        on_event=on_event,
        **_writer_options(options),
        # the engine's thread only seals objects; the sink's own thread uploads them
        background_uploads=True,
    )
    try:
        # the engine's callback sink calls the C on_engine_change directly; else (other
        # Pathway internals, S3SINK_PATHWAY_FAST_PATH=0) pw.io.python.write's on_change
        _fastpath.attach(table, observer, [c[0] for c in columns], name, sort_by)
    except BaseException:
        observer.close()  # nothing was written: no upload, just stops the timer
        raise


# ---------------------------------------------------------------------------------------
# Public functions


def _option_doc(o: dict[str, Any]) -> str:
    """An option's entry in the writers' docstrings, from the runtime's table."""
    text, default = o["doc"], o["default"]
    if o["unlimited"]:
        text += " None (or -1): no limit."
    if default is not None:  # as Python spells it
        python = {"bool": default.capitalize(), "str": repr(default)}.get(o["type"], default)
        text += f" Default: {python}."
    return textwrap.fill(
        f"{o['name']}: {text}", width=88, initial_indent=" " * 8, subsequent_indent=" " * 12,
        break_on_hyphens=False,  # "Content-Encoding" stays one word
    )


# The writers' docstrings are completed from the runtime's table: the lines "<about>",
# "<format>" and "<options>" of each become the text every writer shares, the format's
# entry, and the keyword options (after name and sort_by).
_ABOUT_DOC = """
    Each upload is a new, self-contained object: byte for byte what ``pw.io.fs.write``
    writes for the same rows and format (CSV objects start with the header; every row
    carries the ``time`` and ``diff`` of the change). Rows are buffered in memory (and in
    the spool, with ``spool_dir``); the complete minibatches are uploaded as one new
    object on the first minibatch after ``write_interval_ms``, by the sink's timer while
    the stream is idle, and at the end of the stream. Keys increase and objects are never
    overwritten or deleted, so ``pw.io.s3.read(..., mode="streaming")`` picks each of them
    up exactly once. Without keys in the settings, the credentials come from botocore's
    provider chain, as boto3 finds them (environment, shared files and ``AWS_PROFILE``,
    SSO, ``credential_process``, AssumeRole, web identity, container and instance
    metadata), and are renewed before they expire while the pipeline runs; finding none
    is an error (``anonymous=True`` sends unsigned requests). Without an endpoint in the
    settings, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or the profile's
    ``endpoint_url`` is used. A failed upload keeps its rows and is retried; once uploads
    stop on an error (permanent, or past ``max_retry_ms``), the run fails with it.
    The bucket is checked when the writer is created: bad credentials, a missing bucket or
    an unreachable endpoint fail the call (docs/troubleshooting.md lists the messages).

    Without ``spool_dir``, rows buffered when the process dies are lost; with
    persistence, Pathway may already count them as delivered (up to one
    ``write_interval_ms`` of data plus the upload). With ``spool_dir``, nothing
    acknowledged is lost."""

_COMMON_ARGS_DOC = "\n".join(
    [
        "        name: A unique name for the connector. If provided, this name will be used in",
        "            logs and monitoring dashboards, and ``s3sink.stats(name)`` reads the",
        "            writer's counters (objects, rows and bytes uploaded, rows kept, failed",
        "            attempts).",
        "        sort_by: If specified, the output will be sorted in ascending order based on the",
        "            values of the given columns within each minibatch. When multiple columns are",
        "            provided, the corresponding value tuples will be compared lexicographically.",
        "        on_event: A callable given each ``s3sink.Event``: an object uploaded (key, rows,",
        "            bytes, time), an attempt that failed and is retried (the reason), the",
        "            recovery, uploads stopped. It runs on the sink's thread: keep it short,",
        "            and do not write to the table's connector from it. Every event is also",
        "            logged by the ``s3sink`` logger.",
        *(_option_doc(_OPTIONS[n]) for n in _WRITER_OPTIONS),
    ]
)


def _complete_doc(doc: str) -> str:
    parts = {
        "    <about>": _ABOUT_DOC.strip("\n"),
        "        <format>": _option_doc({**_OPTIONS["format"], "default": None}),
        "        <options>": _COMMON_ARGS_DOC,
    }
    lines = doc.split("\n")
    missing = set(parts) - set(lines)
    if missing:
        raise AssertionError(f"a writer's docstring lacks {sorted(missing)}")
    return "\n".join(parts.get(line, line) for line in lines)


# ---------------------------------------------------------------------------------------
# Arguments in the wrong place: a TypeError that shows the right call

_SETTINGS_CLASSES = (AwsS3Settings, MinIOSettings, DigitalOceanS3Settings, WasabiS3Settings)
_ORDINALS = ("1st", "2nd", "3rd")


def _is_settings(value: Any) -> bool:
    return isinstance(value, _SETTINGS_CLASSES) or hasattr(value, "create_aws_settings")


def _a(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[:1] in 'AEIOU' else 'a'} {name}"


def _right_call(qualname: str, sig: inspect.Signature, settings_param: str,
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The call as it should have been written, from what was given: the table, the path
    and the format (of the strings given, a bundled format's name or a .lua file is the
    format, the others in order the path then the format), the settings by keyword, then
    the other keyword arguments."""
    def text(v: Any) -> str | None:
        return os.fspath(v) if isinstance(v, (str, os.PathLike)) else None

    path, fmt = text(kwargs.get("path")), text(kwargs.get("format"))
    strings = [t for t in map(text, args[1:]) if t is not None and t not in (path, fmt)]
    is_format = [a in _s3sink.bundled("format") or a.endswith(".lua") for a in strings]
    formats = [a for a, f in zip(strings, is_format) if f]
    others = [a for a, f in zip(strings, is_format) if not f]
    if path is None:
        default = "s3://bucket/prefix/" if settings_param == "aws_s3_settings" else "prefix/"
        path = others.pop(0) if others else default
    if fmt is None:
        fmt = (formats or others or ["csv"])[0]
    settings = f"{settings_param}=settings"
    format_ = f"format={fmt!r}"
    if sig.parameters[settings_param].kind is inspect.Parameter.KEYWORD_ONLY:
        parts = ["table", repr(path), format_, settings]
    else:
        parts = ["table", repr(path), settings, format_]
    parts += [f"{k}=..." for k in kwargs if k not in ("table", "path", "format", settings_param)]
    return f"{qualname}({', '.join(parts)})"


def _what_is_wrong(sig: inspect.Signature, settings_param: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> str | None:
    """What in a call does not fit the signature, or None."""
    positional = [p.name for p in sig.parameters.values()
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    for i, value in enumerate(args):
        slot = positional[i] if i < len(positional) else None
        if _is_settings(value) and slot != settings_param:
            where = f"where {slot} goes" if slot else f"but it takes {len(positional)} positional arguments"
            ordinal = _ORDINALS[i] if i < len(_ORDINALS) else f"{i + 1}th"
            return f"got {_a(value)} as its {ordinal} positional argument, {where}"
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        return str(e)
    for slot in ("path", "format"):
        value = bound.arguments.get(slot)
        if _is_settings(value):
            return f"got {_a(value)} as {slot}"
    fmt = bound.arguments.get("format")
    if isinstance(fmt, str) and fmt.startswith(_S3_PREFIXES):
        return f"got the S3 path {fmt!r} as format"
    return None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _checked_call(qualname: str, settings_param: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """A writer that refuses, with a TypeError showing the right call, arguments that do
    not fit its signature: the settings passed positionally where they are keyword-only
    (``pw.io.minio.read`` takes them positionally), or in the place of the path or the
    format, too many or missing arguments."""

    def decorate(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        sig = inspect.signature(fn)
        keyword_only = sig.parameters[settings_param].kind is inspect.Parameter.KEYWORD_ONLY
        note = f" ({settings_param} is keyword-only)" if keyword_only else ""

        @functools.wraps(fn)
        def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            wrong = _what_is_wrong(sig, settings_param, args, kwargs)
            if wrong is not None:
                raise TypeError(
                    f"{qualname}() {wrong}{note}; call it as "
                    f"{_right_call(qualname, sig, settings_param, args, kwargs)}"
                )
            return fn(*args, **kwargs)

        return checked

    return decorate


def _target_of(path: str, settings: Any, param: str, cls: type | None = None) -> _Target:
    """Where a writer writes; with ``cls``, ``settings`` must be of that class."""
    if cls is not None and not isinstance(settings, cls):
        raise TypeError(f"{param} must be {cls.__name__}, not {type(settings).__name__}")
    return _resolve_target(path, settings, param)


@_checked_call("pw.io.s3.write", "aws_s3_settings")
def write(
    table: pw.Table,
    path: str,
    format: Text,
    *,
    aws_s3_settings: AnySettings | None = None,
    name: str | None = None,
    sort_by: Iterable[Any] | None = None,
    on_event: EventCallable | None = None,
    **options: Unpack[WriterOptions],
) -> None:
    """Writes the stream of changes of ``table`` to objects in an S3 bucket (on AWS, or
    any S3-compatible service); the counterpart of ``pw.io.s3.read``.

    <about>

    Args:
        table: The table to write.
        path: ``s3://<bucket>/<prefix>``, or a prefix when the bucket is in the
            settings. Objects are written under ``<prefix>/``.
        <format>
        aws_s3_settings: Connection settings, by keyword: ``pw.io.s3.AwsS3Settings``,
            or ``MinIOSettings``, ``DigitalOceanS3Settings``, ``WasabiS3Settings``. Without
            them the bucket is on AWS, its region from ``AWS_REGION`` or detected. An
            ``endpoint`` other than AWS's usually takes path-style requests
            (``with_path_style=True``); with an endpoint that is an IP address,
            virtual-hosted addressing is refused.
        <options>

    Returns:
        None

    Example:

    Consider a bucket ``datasets`` on AWS S3 in the region ``eu-west-3``, and a table of
    pets to keep there as JSON Lines under ``animals/``. With the credentials in the
    usual AWS environment variables, the code may look as follows:

    .. code-block:: python

        import pathway as pw
        import s3sink  # adds pw.io.s3.write

        pw.io.s3.write(
            pets,
            "s3://datasets/animals/",
            format="json",
            aws_s3_settings=pw.io.s3.AwsS3Settings(region="eu-west-3"),
            write_interval_ms=60_000,
        )
        pw.run()

    Any S3-compatible service works the same way, given its ``endpoint``. Most of them
    (MinIO, Ceph, a local test server) take path-style requests, which
    ``with_path_style=True`` selects:

    >>> import os
    >>> import pathway as pw
    >>> import s3sink
    >>> pets = pw.debug.table_from_markdown('''
    ...     owner | pet
    ...     Alice | dog
    ...     Bob   | cat
    ... ''')
    >>> pw.io.s3.write(
    ...     pets,
    ...     "s3://datasets/animals/",
    ...     format="json",
    ...     aws_s3_settings=pw.io.s3.AwsS3Settings(
    ...         endpoint=os.environ["S3_ENDPOINT"],
    ...         region="us-east-1",
    ...         access_key=os.environ["S3_ACCESS_KEY"],
    ...         secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"],
    ...         with_path_style=True,
    ...     ),
    ...     create_bucket=True,
    ... )
    >>> pw.run(monitoring_level=pw.MonitoringLevel.NONE)

    The run uploads one object, named by the time of the upload and a sequence number,
    such as ``animals/20260105T093012.345Z-0000000000.json``, holding the JSON Lines
    ``pw.io.fs.write`` writes:

    .. code-block:: json

        {"owner":"Bob","pet":"cat","diff":1,"time":0}
        {"owner":"Alice","pet":"dog","diff":1,"time":0}
    """
    target = _target_of(path, aws_s3_settings, "aws_s3_settings")
    _connect(table, target, format, name, sort_by, on_event, options)


@_checked_call("pw.io.s3.write_to_digital_ocean", "do_s3_settings")
def write_to_digital_ocean(
    table: pw.Table,
    path: str,
    do_s3_settings: DigitalOceanS3Settings,
    format: Text,
    *,
    name: str | None = None,
    sort_by: Iterable[Any] | None = None,
    on_event: EventCallable | None = None,
    **options: Unpack[WriterOptions],
) -> None:
    """Writes the stream of changes of ``table`` to objects in a DigitalOcean Spaces
    bucket; the counterpart of ``pw.io.s3.read_from_digital_ocean``.

    <about>

    Args:
        table: The table to write.
        path: A prefix (or ``s3://<bucket>/<prefix>``); the bucket of ``do_s3_settings``
            is used.
        do_s3_settings: ``pw.io.s3.DigitalOceanS3Settings`` with the bucket and region.
        <format>
        <options>

    Returns:
        None

    Example:

    Consider a Space ``datasets`` in the region ``ams3``, and a table of pets to keep
    there as CSV under ``animals/``:

    >>> import os
    >>> import pathway as pw
    >>> import s3sink
    >>> pets = pw.debug.table_from_markdown('''
    ...     owner | pet
    ...     Alice | dog
    ... ''')
    >>> pw.io.s3.write_to_digital_ocean(
    ...     pets,
    ...     "animals/",
    ...     pw.io.s3.DigitalOceanS3Settings(
    ...         bucket_name="datasets",
    ...         region="ams3",
    ...         access_key=os.environ["DO_S3_ACCESS_KEY"],
    ...         secret_access_key=os.environ["DO_S3_SECRET_ACCESS_KEY"],
    ...     ),
    ...     "csv",
    ... )  # doctest: +SKIP
    >>> pw.run()  # doctest: +SKIP
    """
    target = _target_of(path, do_s3_settings, "do_s3_settings", DigitalOceanS3Settings)
    _connect(table, target, format, name, sort_by, on_event, options)


@_checked_call("pw.io.s3.write_to_wasabi", "wasabi_s3_settings")
def write_to_wasabi(
    table: pw.Table,
    path: str,
    wasabi_s3_settings: WasabiS3Settings,
    format: Text,
    *,
    name: str | None = None,
    sort_by: Iterable[Any] | None = None,
    on_event: EventCallable | None = None,
    **options: Unpack[WriterOptions],
) -> None:
    """Writes the stream of changes of ``table`` to objects in a Wasabi bucket; the
    counterpart of ``pw.io.s3.read_from_wasabi``.

    <about>

    Args:
        table: The table to write.
        path: A prefix (or ``s3://<bucket>/<prefix>``); the bucket of
            ``wasabi_s3_settings`` is used.
        wasabi_s3_settings: ``pw.io.s3.WasabiS3Settings`` with the bucket and region.
        <format>
        <options>

    Returns:
        None

    Example:

    Consider a bucket ``datasets`` in Wasabi's region ``us-west-1``, and a table of pets
    to keep there as JSON Lines under ``animals/``, one object every five minutes:

    >>> import os
    >>> import pathway as pw
    >>> import s3sink
    >>> pets = pw.debug.table_from_markdown('''
    ...     owner | pet
    ...     Alice | dog
    ... ''')
    >>> pw.io.s3.write_to_wasabi(
    ...     pets,
    ...     "animals/",
    ...     pw.io.s3.WasabiS3Settings(
    ...         bucket_name="datasets",
    ...         region="us-west-1",
    ...         access_key=os.environ["WASABI_S3_ACCESS_KEY"],
    ...         secret_access_key=os.environ["WASABI_S3_SECRET_ACCESS_KEY"],
    ...     ),
    ...     "json",
    ...     write_interval_ms=300_000,
    ... )  # doctest: +SKIP
    >>> pw.run()  # doctest: +SKIP
    """
    target = _target_of(path, wasabi_s3_settings, "wasabi_s3_settings", WasabiS3Settings)
    _connect(table, target, format, name, sort_by, on_event, options)


@_checked_call("pw.io.minio.write", "minio_settings")
def minio_write(
    table: pw.Table,
    path: str,
    format: Text,
    *,
    minio_settings: MinIOSettings,
    name: str | None = None,
    sort_by: Iterable[Any] | None = None,
    on_event: EventCallable | None = None,
    **options: Unpack[WriterOptions],
) -> None:
    """Writes the stream of changes of ``table`` to objects in a MinIO bucket; the
    counterpart of ``pw.io.minio.read``.

    <about>

    Args:
        table: The table to write.
        path: A prefix (or ``s3://<bucket>/<prefix>``); the bucket of ``minio_settings``
            is used.
        <format>
        minio_settings: ``pw.io.minio.MinIOSettings`` (endpoint, bucket, keys), by
            keyword (``pw.io.minio.read`` takes them positionally, the writer does not).
        <options>

    Returns:
        None

    Example:

    Consider a MinIO server whose endpoint (such as ``http://127.0.0.1:9000``) and keys
    are in environment variables, and a table of pets to keep in its bucket
    ``datasets``, as CSV under ``animals/``:

    >>> import os
    >>> import pathway as pw
    >>> import s3sink  # adds pw.io.minio.write
    >>> settings = pw.io.minio.MinIOSettings(
    ...     endpoint=os.environ["MINIO_S3_ENDPOINT"],
    ...     bucket_name="datasets",
    ...     access_key=os.environ["MINIO_S3_ACCESS_KEY"],
    ...     secret_access_key=os.environ["MINIO_S3_SECRET_ACCESS_KEY"],
    ...     region="us-east-1",
    ... )
    >>> pets = pw.debug.table_from_markdown('''
    ...     owner | pet
    ...     Alice | dog
    ...     Bob   | cat
    ... ''')
    >>> pw.io.minio.write(pets, "animals/", format="csv", minio_settings=settings,
    ...                   create_bucket=True)
    >>> pw.run(monitoring_level=pw.MonitoringLevel.NONE)

    The run uploads one object, named by the time of the upload and a sequence number,
    such as ``animals/20260105T093012.345Z-0000000000.csv``, holding the CSV
    ``pw.io.fs.write`` writes:

    .. code-block:: csv

        "owner","pet","time","diff"
        "Bob","cat","0","1"
        "Alice","dog","0","1"

    ``pw.io.minio.read`` reads the objects back, in this pipeline or another one:

    >>> class Pet(pw.Schema):
    ...     owner: str
    ...     pet: str
    >>> back = pw.io.minio.read("animals/", settings, "csv", schema=Pet, mode="static")
    >>> pw.debug.compute_and_print(back, include_id=False)
    owner | pet
    Alice | dog
    Bob   | cat
    """
    target = _target_of(path, minio_settings, "minio_settings", MinIOSettings)
    _connect(table, target, format, name, sort_by, on_event, options)


for _f in (write, write_to_digital_ocean, write_to_wasabi, minio_write):
    _f.__doc__ = _complete_doc(_f.__doc__ or "")
minio_write.__name__ = minio_write.__qualname__ = "write"
del _f


def install() -> None:
    """Attaches the functions to ``pw.io.s3`` and ``pw.io.minio``, leaving alone any
    that Pathway itself defines."""
    targets = [
        (pw.io.s3, "write", write),
        (pw.io.s3, "write_to_digital_ocean", write_to_digital_ocean),
        (pw.io.s3, "write_to_wasabi", write_to_wasabi),
        (pw.io.minio, "write", minio_write),
    ]
    for module, attr, fn in targets:
        if not hasattr(module, attr):
            setattr(module, attr, fn)
