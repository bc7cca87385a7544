"""The ``s3sink`` command: ships the records of standard input (lines, JSON Lines or CSV)
to an S3 or MinIO bucket through :class:`s3sink.Writer`, so with its batching, naming,
formats, spool and guarantees::

    producer | s3sink [options] s3://bucket/prefix

Installed with the Python package (the console script ``s3sink``, or ``python -m
s3sink``). Every option of the runtime is a ``--long-option`` generated from its table
(:func:`s3sink.options`), documented by ``--help`` from the same table and read from
``S3SINK_<OPTION>`` too; the AWS variables and profiles are read as the AWS tools read
them (:func:`aws_settings`).

How standard input maps onto the sink:

- every read of standard input (what the pipe holds, up to 1 MiB) ends a minibatch: its
  rows are complete (with ``--spool-dir``: on disk) before the command waits for more,
  and ``write_interval_ms`` decides when complete rows are uploaded (the sink's thread
  uploads an idle stream's rows too);
- a row's ``time`` is when it was read (Unix milliseconds, never decreasing), its
  ``diff`` is 1;
- the end of the input, SIGTERM or SIGINT end the stream: every row read is uploaded,
  then the command exits (0 if all went well). A second SIGTERM or SIGINT gives up the
  final upload;
- a bad line (not UTF-8, not JSON, the wrong number of CSV fields, a value that does not
  fit its column) stops the command with its line number after uploading every row
  before it, unless ``--skip-bad-lines``.

The per-row work stays in C: the extension converts and formats each row and
``json.loads`` and ``csv.reader`` parse it; the loop around them only hands values over.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import configparser
import csv
import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import select
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from . import Writer, _s3sink

__all__ = ["main", "aws_settings", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_BAD_INPUT"]

# Exit statuses (documented in --help)
EXIT_OK = 0  # every row read was uploaded
EXIT_FAILED = 1  # the sink could not be opened, or uploads failed: rows not uploaded
EXIT_USAGE = 2  # a bad option, column list or setting: nothing was uploaded
EXIT_BAD_INPUT = 3  # a bad line stopped the command; every row before it was uploaded

READ_BYTES = 1 << 20  # the most one read takes: a minibatch of a fast producer
IDLE_CHECK_S = 0.5  # how often a command waiting for input looks at the uploads

INPUTS = ("lines", "jsonl", "csv")
ENV_PREFIX = "S3SINK_"
# The runtime's options of the group "host" belong to the program embedding the sink,
# not to its users: the command sets them, and says so in --help.
HOST_SETTINGS = {
    "background_uploads": (True, "reading never waits for an upload"),
    "no_timer": (False, "the sink's thread uploads an idle stream's rows"),
}

_OPTIONS = {o["name"]: o for o in _s3sink.options()}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


# ---------------------------------------------------------------------------------------
# AWS settings


def aws_settings(profile: str | None = None, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The connection settings the AWS tools (CLI, SDKs) would use, as the runtime's
    option names: ``access_key``, ``secret_key``, ``session_token`` (from
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, else the profile),
    ``region`` (AWS_REGION, AWS_DEFAULT_REGION, the profile's ``region``), ``endpoint``
    (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's ``endpoint_url``; none with
    AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true) and ``ca_file`` (AWS_CA_BUNDLE, the profile's
    ``ca_bundle``). The profile is ``profile``, AWS_PROFILE, AWS_DEFAULT_PROFILE or
    ``default``, read from AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
    AWS_CONFIG_FILE (~/.aws/config); a ``profile`` given here wins over the environment's
    keys, as ``aws --profile`` does. Only what is found is returned.

    The one place the command reads AWS settings. Raises ValueError for a named profile
    that neither file has, or half a key pair in the environment."""
    named = profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    name = named or "default"
    home = os.path.expanduser("~")
    creds_file = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    config_file = env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    from_config = _ini_section(config_file, "default" if name == "default" else f"profile {name}")
    from_creds = _ini_section(creds_file, name)
    if named and named != "default" and from_config is None and from_creds is None:
        raise ValueError(
            f"the AWS profile {name!r} is in neither {creds_file} nor {config_file}: "
            "name another one (--profile, AWS_PROFILE) or add it"
        )
    prof = {**(from_config or {}), **(from_creds or {})}

    out: dict[str, str] = {}
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if profile:
        key = secret = None
    if bool(key) != bool(secret):
        given, missing = (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if key else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        )
        raise ValueError(f"{given} is set but {missing} is not: set both, or neither")
    if key and secret:
        out.update(access_key=key, secret_key=secret)
        if env.get("AWS_SESSION_TOKEN"):
            out["session_token"] = env["AWS_SESSION_TOKEN"]
    elif prof.get("aws_access_key_id") and prof.get("aws_secret_access_key"):
        out.update(access_key=prof["aws_access_key_id"], secret_key=prof["aws_secret_access_key"])
        if prof.get("aws_session_token"):
            out["session_token"] = prof["aws_session_token"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or prof.get("region")
    if region:
        out["region"] = region
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() != "true":
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or prof.get("endpoint_url")
        if endpoint:
            out["endpoint"] = endpoint
    ca_file = env.get("AWS_CA_BUNDLE") or prof.get("ca_bundle")
    if ca_file:
        out["ca_file"] = ca_file
    return out


def _ini_section(path: str, section: str) -> dict[str, str] | None:
    """The keys of a section of an AWS file; None if the file or the section is missing."""
    parser = configparser.RawConfigParser()
    try:
        if not parser.read(path, encoding="utf-8"):
            return None
    except (OSError, configparser.Error, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the AWS file {path}: {e}") from None
    return dict(parser.items(section)) if parser.has_section(section) else None


# ---------------------------------------------------------------------------------------
# Columns and the values of their cells


class BadValue(ValueError):
    """A value that does not fit its column; the message says why."""


def parse_columns(spec: str) -> list[tuple[str, str, bool]]:
    """``id:int,name:str?`` -> [(name, type, optional)]; a ``?`` after the type lets the
    column hold null. Types are the runtime's column types."""
    types = _s3sink.column_types()
    out = []
    for item in spec.split(","):
        item = item.strip()
        name, sep, ctype = item.rpartition(":")
        name, ctype = name.strip(), ctype.strip()
        if not sep or not name:
            raise ValueError(f"{item!r} is not name:type (e.g. id:int, or name:str? for a column that may be null)")
        optional = ctype.endswith("?")
        ctype = ctype.rstrip("?").strip()
        if ctype not in types:
            raise ValueError(f"column {name!r} has unknown type {ctype!r}: use one of {', '.join(types)}")
        if ctype == "pointer":
            raise ValueError(f"column {name!r}: pointer values are Pathway row ids, which text cannot carry; declare it str")
        if any(c[0] == name for c in out):
            raise ValueError(f"column {name!r} is given twice")
        out.append((name, ctype, optional))
    return out


_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d\d(?::?\d\d)?)?",
    re.IGNORECASE,
)
_EPOCH_DAY = _dt.date(1970, 1, 1).toordinal()
_INTEGER = re.compile(r"[+-]?\d+")


def _datetime_ns(text: str, utc: bool) -> int:
    """ISO 8601 text -> nanoseconds since the epoch (UTC for datetime_utc), exactly, or
    an integer of nanoseconds."""
    if _INTEGER.fullmatch(text):
        return int(text)
    m = _DATETIME.fullmatch(text.strip())
    if not m:
        raise BadValue(f"{text!r} is not an ISO 8601 date and time (e.g. 2024-05-01T12:30:00{'Z' if utc else ''})")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        day = _dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH_DAY
        _dt.time(int(h or 0), int(mi or 0), int(s or 0))
    except ValueError as e:
        raise BadValue(f"{text!r} is not a valid date and time ({e})") from None
    if utc and not zone:
        raise BadValue(f"{text!r} has no UTC offset: add one (Z for UTC), or declare the column datetime_naive")
    if not utc and zone:
        raise BadValue(f"{text!r} has a UTC offset: drop it, or declare the column datetime_utc")
    secs = day * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + int(s or 0)
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:] or 0) * 60)
    return secs * 1_000_000_000 + int((frac or "").ljust(9, "0"))


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadValue(f"{text[:40]!r} is not base64 ({e})") from None


_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _text_to(ctype: str) -> Callable[[str], Any] | None:
    """How a CSV cell's text becomes a value of the column type (None: the text as it
    is); raises BadValue saying why it cannot."""

    def integer(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise BadValue(f"{text!r} is not an integer") from None

    def floating(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise BadValue(f"{text!r} is not a number") from None

    def boolean(text: str) -> bool:
        value = _BOOLS.get(text.strip().lower())
        if value is None:
            raise BadValue(f"{text!r} is not a boolean (true, false, 1 or 0)")
        return value

    def json_text(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as e:
            raise BadValue(f"{text[:40]!r} is not JSON ({e})") from None

    def json_array(text: str) -> Any:
        value = json_text(text)
        if not isinstance(value, list):
            raise BadValue(f"{text[:40]!r} is not a JSON array")
        return value

    return {
        "str": None,
        "any": None,
        "int": integer,
        "duration": integer,
        "float": floating,
        "bool": boolean,
        "bytes": _from_base64,
        "datetime_naive": lambda text: _datetime_ns(text, False),
        "datetime_utc": lambda text: _datetime_ns(text, True),
        "json": json_text,
        "tuple": json_array,
        "list": json_array,
        "array": json_array,
    }[ctype]


# The same for the common types, without the explanation: builtins, fast; a cell they
# refuse goes through _text_to, which accepts the same and explains.
_FAST_TEXT_TO: dict[str, Callable[[str], Any]] = {
    "int": int,
    "duration": int,
    "float": float,
    "bool": {**_BOOLS, "True": True, "TRUE": True, "False": False, "FALSE": False}.__getitem__,
}


def _row_converter(columns: list[tuple[str, str, bool]]) -> Callable[[list[str]], list[Any]] | None:
    """The function turning a CSV record (a list of texts) into the values of the
    columns; None when the texts are the values."""
    careful = [_text_to(c[1]) for c in columns]
    if not any(careful) and not any(c[2] for c in columns):
        return None
    fast = [_FAST_TEXT_TO.get(c[1], careful[i]) for i, c in enumerate(columns)]
    optional = [c[2] for c in columns]
    fast_items = list(zip(fast, optional))

    def slow(record: list[str]) -> list[Any]:
        return [None if opt and not text else text if conv is None else _column_value(conv, text, col)
                for text, conv, opt, col in zip(record, careful, optional, columns)]

    def convert(record: list[str]) -> list[Any]:
        try:
            return [None if opt and not text else text if conv is None else conv(text)
                    for text, (conv, opt) in zip(record, fast_items)]
        except (ValueError, KeyError, TypeError):
            return slow(record)

    return convert


def _json_to(ctype: str) -> Callable[[Any], Any] | None:
    """How a JSON value becomes a value of the column type (None: as it is; the
    extension checks its kind)."""

    def text_or(convert: Callable[[str], Any]) -> Callable[[Any], Any]:
        return lambda value: convert(value) if isinstance(value, str) else value

    def array(value: Any) -> Any:
        if not isinstance(value, list):
            raise BadValue(f"a JSON array expected, got {_json_kind(value)}")
        return value

    return {
        "bytes": text_or(_from_base64),
        "datetime_naive": text_or(lambda text: _datetime_ns(text, False)),
        "datetime_utc": text_or(lambda text: _datetime_ns(text, True)),
        "tuple": array,
        "list": array,
        "array": array,
    }.get(ctype)


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------
# The command line


# Defaults the command chooses differently from the runtime's, and why
COMMAND_DEFAULTS = {
    "virtual_hosted": "on without an endpoint (AWS, as the AWS tools address it), off with one",
}


def _option_help(o: dict[str, Any]) -> str:
    text = o["doc"]
    if o["unlimited"] and "-1" not in text:
        text += " -1: no limit."
    if o["name"] in COMMAND_DEFAULTS:
        text += f" Default: {COMMAND_DEFAULTS[o['name']]}."
    elif o["default"] is not None:
        text += f" Default: {o['default'] or '(empty)'}."
    return text


def _metavar(name: str) -> str:
    return name.rsplit("_", 1)[-1].upper()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _split_lines(self, text: str, width: int) -> list[str]:
        # option texts name values such as us-east-1: never break them at a hyphen
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """Exits with EXIT_USAGE; remembers the options that S3SINK_<OPTION> may set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.from_environment: list[argparse.Action] = []

    def add_env(self, group: Any, *flags: str, **kwargs: Any) -> argparse.Action:
        """An option of `group`, also read from S3SINK_<DEST>, which its help names."""
        action = group.add_argument(*flags, default=None, **kwargs)
        action.help = f"{action.help} [{_env_name(action.dest)}]".replace("%", "%%")
        self.from_environment.append(action)
        return action

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> _Parser:
    """The parser: the runtime's options from its table, then the command's own. Each
    option's help names its environment variable."""
    parser = _Parser(
        prog="s3sink",
        formatter_class=_HelpFormatter,
        description=textwrap.dedent(
            """\
            Reads records from standard input (lines, JSON Lines or CSV) and uploads them to
            an S3 or MinIO bucket as new, self-contained objects (CSV, JSON Lines or a Lua
            format), with s3sink's batching, naming, spool and guarantees.

            Each read of standard input ends a minibatch: its rows are complete (with
            --spool-dir, on disk) before the command waits for more; complete rows are
            uploaded as one new object once write_interval_ms has passed since the last
            upload. Every row gets the columns of its input, then "time" (when it was read,
            Unix milliseconds) and "diff" (1)."""
        ),
        epilog=_epilog(),
    )
    parser.add_argument(
        "destination", nargs="?", metavar="s3://BUCKET/PREFIX",
        help="where objects go: the bucket, and a prefix under which objects are written "
        "(a folder: 'logs' writes under 'logs/'); or give --bucket and --prefix",
    )
    groups = {
        "target": parser.add_argument_group("where objects go (options of the runtime)"),
        "output": parser.add_argument_group("objects: format, names and timing (options of the runtime)"),
        "transport": parser.add_argument_group("connection (options of the runtime)"),
        "reliability": parser.add_argument_group("reliability (options of the runtime)"),
    }
    for o in _OPTIONS.values():
        group = groups.get(o["group"])
        if group is None:
            continue  # "host": set by the command (HOST_SETTINGS)
        if o["type"] == "bool":
            parser.add_env(group, _flag(o["name"]), dest=o["name"], action=argparse.BooleanOptionalAction,
                           help=_option_help(o))
        elif o["type"] == "dict":
            parser.add_env(group, _flag(o["name"]), dest=o["name"], metavar="KEY=VALUE,...",
                           action=_MergeMap, type=_parse_map,
                           help=f"{_option_help(o)} Here: KEY=VALUE pairs separated by commas, or a "
                           "JSON object; the option may be repeated.")
        elif o["type"] == "str" and o["list"]:
            parser.add_env(group, _flag(o["name"]), dest=o["name"], metavar="NAME,...", type=str,
                           help=f"{_option_help(o)} Here: names separated by commas.")
        elif o["type"] in ("int", "str"):
            parser.add_env(group, _flag(o["name"]), dest=o["name"], metavar=_metavar(o["name"]),
                           type=int if o["type"] == "int" else str, help=_option_help(o))
        # other types (a runtime's table that grew one) are not on the command line; the
        # epilog names them (NOT_ON_COMMAND_LINE)
    if "profile" not in _OPTIONS:  # the runtime's own, when it has one
        parser.add_env(
            groups["target"], "--profile", metavar="NAME",
            help="the AWS profile to take credentials, region and endpoint from (default: "
            "AWS_PROFILE, else 'default')",
        )
    own = parser.add_argument_group("input")
    parser.add_env(
        own, "--input", choices=INPUTS,
        help="what standard input holds: 'lines' (each line is a row of one str column, "
        "'line'; a CR before the LF is dropped), 'jsonl' (one JSON object per line; blank "
        "lines are skipped; the columns come from --columns: a missing key or null is "
        "null, other keys are ignored) or 'csv' (RFC 4180, a header row first; its names "
        "are the columns, all str unless --columns types them). Default: lines",
    )
    parser.add_env(
        own, "--columns", metavar="NAME:TYPE,...",
        help="the columns and their types, e.g. 'id:int,name:str,at:datetime_utc?' (a "
        "'?' after the type: the column may hold null). Types: "
        f"{', '.join(t for t in _s3sink.column_types() if t != 'pointer')}. Required with "
        "jsonl; with csv it types the header's columns it names (or names them all, with "
        "--no-header); with lines it may rename the one column (e.g. msg:str). CSV cells: "
        "an empty cell is null in a column with '?'; bool is true/false/1/0; bytes are "
        "base64; datetimes are ISO 8601 (nanoseconds kept) or integer nanoseconds; "
        "durations are integer nanoseconds; json/tuple/list/array are JSON text. JSON "
        "values: the same, as JSON strings and numbers",
    )
    parser.add_env(
        own, "--header", action=argparse.BooleanOptionalAction,
        help="csv: the first row is a header naming the columns (default); with "
        "--no-header, --columns names them in order",
    )
    parser.add_env(
        own, "--delimiter", metavar="CHAR",
        help="csv: the field delimiter, one character (default ','; '\\t' for a tab)",
    )
    parser.add_env(
        own, "--skip-bad-lines", action=argparse.BooleanOptionalAction,
        help="report each bad line on standard error and go on, instead of stopping at the first",
    )
    parser.add_env(
        own, "-v", "--verbose", action=argparse.BooleanOptionalAction,
        help="print each object uploaded as it goes (the s3sink logger's INFO lines) and, at the "
        "end, what was uploaded (rows, objects, the last key) on standard error; retried "
        "failures are printed either way",
    )
    own.add_argument("--version", action="version", version=f"s3sink {_s3sink.__version__}")
    return parser


# The command line reads strings, integers, booleans and maps; an option of another type
# (a runtime's table that grew one) stays at its default, and --help says so.
COMMAND_LINE_TYPES = ("str", "int", "bool", "dict")
NOT_ON_COMMAND_LINE = [o["name"] for o in _OPTIONS.values()
                       if o["group"] != "host" and o["type"] not in COMMAND_LINE_TYPES]


def _epilog() -> str:
    host = "\n".join(
        f"  {name} = {str(value).lower()}: {why}" for name, (value, why) in HOST_SETTINGS.items()
    )
    if NOT_ON_COMMAND_LINE:
        host += "\n  not settable here (their type has no command-line form): " + ", ".join(NOT_ON_COMMAND_LINE)
    return textwrap.dedent(
        """\
        environment:
          Every option is also read from S3SINK_<OPTION> (S3SINK_WRITE_INTERVAL_MS=10000,
          S3SINK_INPUT=jsonl; booleans 1/0, true/false, yes/no, on/off); the command
          line wins. Then, as the AWS tools read them: AWS_ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; AWS_REGION, AWS_DEFAULT_REGION;
          AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; AWS_CA_BUNDLE; and the profile
          (--profile, AWS_PROFILE) in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials)
          and AWS_CONFIG_FILE (~/.aws/config). Without keys there, the credentials
          come from botocore's chain (SSO, credential_process, roles, container and
          instance metadata); none found is an error (--anonymous sends unsigned
          requests). Without an endpoint, the bucket is on AWS
          (https://s3.<region>.amazonaws.com). Prefer the environment to --secret-key:
          other users can see a command line.

        set by the command (options of the runtime for programs embedding it):
        """
    ) + host + textwrap.dedent(
        f"""

        signals:
          SIGTERM and SIGINT end the input: every row read is uploaded (with the usual
          retries, up to max_retry_ms), then the command exits. A second one gives that
          upload up: with --spool-dir the complete minibatches stay in the spool for the
          next run on it; without, they are lost. With --spool-dir even kill -9 loses
          no row read before the last wait for input: the next s3sink on the spool
          uploads it first, exactly once.

        exit status:
          {EXIT_OK}  every row read was uploaded (also after SIGTERM or SIGINT)
          {EXIT_FAILED}  the bucket could not be used, uploads failed, or standard input could
             not be read; the message says where the rows not uploaded are
          {EXIT_USAGE}  a bad option, column list or setting; nothing was uploaded
          {EXIT_BAD_INPUT}  a bad line (its number is given); every row before it was uploaded

        examples:
          tail -F app.log | s3sink --endpoint http://127.0.0.1:9000 s3://logs/app
          producer | s3sink --input jsonl --columns id:int,msg:str,at:datetime_utc? \\
              --format json --write-interval-ms 10000 --spool-dir /var/lib/s3sink \\
              s3://bucket/events
          s3sink --input csv --columns price:float,qty:int s3://bucket/orders < orders.csv
        """
    )


def _parse_map(text: str) -> dict[str, str]:
    """The value of a map option (tags, metadata), as the AWS CLI spells its maps:
    ``key=value,key2=value2`` (split at the first '=') or a JSON object of strings."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object ({e})") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object of strings")
        return value
    out = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(
                f"{pair!r} is not KEY=VALUE: give KEY=VALUE,KEY2=VALUE2 or a JSON object")
        out[key.strip()] = value
    return out


class _MergeMap(argparse.Action):
    """A map option given more than once: the pairs of every occurrence."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), **values})


def _parse_bool(text: str) -> bool:
    value = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}.get(text.strip().lower())
    if value is None:
        raise ValueError("not a boolean: use 1 or 0 (true/false, yes/no, on/off)")
    return value


def _apply_environment(parser: _Parser, args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Options not on the command line, from S3SINK_<OPTION>."""
    for action in parser.from_environment:
        var = _env_name(action.dest)
        if getattr(args, action.dest) is not None or var not in env:
            continue
        text = env[var]
        try:
            if isinstance(action, argparse.BooleanOptionalAction):
                value: Any = _parse_bool(text)
            elif action.type is not None:
                value = action.type(text)
            else:
                value = text
            if action.choices is not None and value not in action.choices:
                raise ValueError(f"use one of {', '.join(action.choices)}")
        except (ValueError, argparse.ArgumentTypeError) as e:
            parser.error(f"{var}={text!r}: {e}")
        setattr(args, action.dest, value)


@dataclasses.dataclass
class Settings:
    """What the command runs with: the Writer's options and columns, and the input."""

    writer: dict[str, Any] = dataclasses.field(default_factory=dict)
    columns: list[tuple[str, str, bool]] = dataclasses.field(default_factory=list)
    input: str = "lines"
    header: bool = True
    delimiter: str = ","
    skip_bad_lines: bool = False
    verbose: bool = False
    destination: str = ""  # s3://bucket/prefix, for messages


def resolve(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> Settings:
    """The command line and the environment -> Settings; exits with EXIT_USAGE on a
    mistake, naming it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.destination is not None and (args.bucket is not None or args.prefix is not None):
        parser.error("give the destination s3://BUCKET/PREFIX or --bucket and --prefix, not both")
    _apply_environment(parser, args, env)
    s = Settings()
    s.input = args.input or "lines"
    s.header = args.header is not False
    s.skip_bad_lines = bool(args.skip_bad_lines)
    s.verbose = bool(args.verbose)

    opts = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name, None) is not None}
    if args.destination is not None:
        m = re.fullmatch(r"s3://([^/]+)/?(.*)", args.destination, re.DOTALL)
        if not m:
            parser.error(f"destination {args.destination!r} is not s3://BUCKET/PREFIX")
        prefix = m.group(2)
        opts["bucket"] = m.group(1)
        opts["prefix"] = prefix + "/" if prefix and not prefix.endswith("/") else prefix
    if not opts.get("bucket"):
        parser.error(f"no bucket: give the destination s3://BUCKET/PREFIX (or --bucket, {_env_name('bucket')})")
    s.destination = f"s3://{opts['bucket']}/{opts.get('prefix', '')}"

    try:
        aws = aws_settings(getattr(args, "profile", None), env)
    except ValueError as e:
        parser.error(str(e))
    # a profile option of the runtime's own is the Writer's to read (botocore: its
    # credential_process, SSO or role too); the keys read here would contradict it
    if not (opts.get("access_key") or opts.get("secret_key") or opts.get("profile")):
        for name in ("access_key", "secret_key", "session_token"):
            if name in aws:
                opts[name] = aws[name]
    for name in ("region", "endpoint", "ca_file"):
        if name not in opts and name in aws:
            opts[name] = aws[name]
    if "endpoint" not in opts and "virtual_hosted" not in opts:
        opts["virtual_hosted"] = True  # AWS: bucket.s3.<region>.amazonaws.com, as the AWS tools
    for name, (value, _) in HOST_SETTINGS.items():
        if name in _OPTIONS:
            opts[name] = value
    s.writer = opts

    if args.delimiter is not None:
        delimiter = args.delimiter.replace("\\t", "\t")
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            parser.error(f"--delimiter {args.delimiter!r}: give one character other than a quote or a line break")
        s.delimiter = delimiter
    columns = None
    if args.columns is not None:
        try:
            columns = parse_columns(args.columns)
        except ValueError as e:
            parser.error(f"--columns: {e}")
    if s.input == "lines":
        if columns is not None and (len(columns) != 1 or columns[0][1] != "str" or columns[0][2]):
            parser.error("--input lines has one str column: --columns may only rename it (e.g. --columns msg:str)")
        s.columns = columns or [("line", "str", False)]
    elif s.input == "jsonl":
        if columns is None:
            parser.error("--input jsonl needs --columns: the keys to write and their types, "
                         "e.g. --columns id:int,msg:str,extra:json?")
        s.columns = columns
    else:
        if not s.header and columns is None:
            parser.error("--input csv --no-header needs --columns to name the columns, e.g. --columns id:int,name:str")
        s.columns = columns or []
    return s


# ---------------------------------------------------------------------------------------
# Standard input


class BadInput(Exception):
    """A line that cannot be a row: its number, what is wrong with it, and the fix."""

    def __init__(self, line: int, reason: str, fix: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason, self.fix = line, reason, fix


class Stopped(Exception):
    """Uploads stopped on an error (the exception it carries)."""


class Input:
    """Standard input, read as it comes: ``blocks()`` yields the complete lines of each
    read. Before each wait for more, ``before_wait`` ends the minibatch; while waiting,
    ``idle`` runs every IDLE_CHECK_S; a byte on ``wake_fd`` ends the input like its end."""

    def __init__(self, fd: int, wake_fd: int, before_wait: Callable[[], None],
                 idle: Callable[[], None], bad: Callable[[BadInput], None]) -> None:
        self.fd = fd
        self.wake_fd = wake_fd
        self.before_wait = before_wait
        self.idle = idle
        self.bad = bad
        self.time = 0  # when the last read happened, Unix ms, never decreasing
        self.lines = 0  # lines yielded (or skipped) so far
        self.stopped = False  # woken (a signal) rather than at the end of the input
        self.error: OSError | None = None  # standard input could not be read
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._poll.register(wake_fd, select.POLLIN)

    def _read(self) -> bytes:
        """The next bytes, or b"" at the end of the input (or when woken)."""
        self.before_wait()
        while True:
            events = self._poll.poll(IDLE_CHECK_S * 1000)
            if not events:
                self.idle()
                continue
            if any(fd == self.wake_fd for fd, _ in events):
                self.stopped = True
                return b""
            try:
                data = os.read(self.fd, READ_BYTES)
            except OSError as e:  # e.g. no standard input at all: its end, reported
                self.error = e
                return b""
            self.time = max(self.time, time.time_ns() // 1_000_000)
            return data

    def blocks(self) -> Iterator[tuple[int, list[str]]]:
        """(number of the first line, the lines without their LF) per read."""
        carry: list[bytes] = []
        first = True
        while True:
            data = self._read()
            if not data:
                rest = b"".join(carry)
                if rest:
                    yield from self._decode(rest, first)
                return
            end = data.rfind(b"\n")
            if end < 0:
                carry.append(data)
                continue
            block = b"".join((*carry, data[: end + 1])) if carry else data[: end + 1]
            carry = [data[end + 1 :]] if end + 1 < len(data) else []
            yield from self._decode(block, first)
            first = False

    def _decode(self, block: bytes, first: bool) -> Iterator[tuple[int, list[str]]]:
        while block:
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as e:
                good = block.rfind(b"\n", 0, e.start) + 1  # the lines before the bad one
                if good:
                    yield from self._decode(block[:good], first)
                    first = False
                end = block.find(b"\n", e.start)
                end = len(block) if end < 0 else end + 1
                self.lines += 1
                self.bad(BadInput(
                    self.lines, f"not UTF-8 text (byte 0x{block[e.start]:02x} at byte {e.start - good + 1})",
                    "convert the input to UTF-8 first, e.g. with iconv -f latin1 -t utf-8",
                ))
                block = block[end:]
                continue
            if first and text.startswith("\ufeff"):  # a byte order mark is no data
                text = text[1:]
            lines = text.split("\n")
            if text.endswith("\n"):
                lines.pop()
            start = self.lines + 1
            self.lines += len(lines)
            yield start, lines
            return


# ---------------------------------------------------------------------------------------
# Rows


def _row_error(e: BaseException) -> bool:
    """Whether a write's exception is about the row (rather than the sink)."""
    if isinstance(e, _s3sink.UploadError):
        return False
    if isinstance(e, _s3sink.SinkError):
        return isinstance(e, (_s3sink.ConfigError, _s3sink.ScriptError))
    return isinstance(e, (TypeError, ValueError, OverflowError, KeyError))


def _row_fix(reason: str, columns: list[tuple[str, str, bool]]) -> tuple[str, str]:
    """(reason, fix) of a row the extension or the runtime refused."""
    m = re.match(r"(column '([^']*)' holds \w+ values but got null)", reason)
    col = next((c for c in columns if m and c[0] == m.group(2)), None)
    if m and col:
        return m.group(1), f"give it a value, or let the column hold null: --columns ...,{col[0]}:{col[1]}?,..."
    return reason, "fix the line, or change the column's type in --columns"


class Pump:
    """Reads the input and writes its rows to the writer: ``prepare()`` reads what the
    columns depend on (a CSV header), then ``run(writer)`` the rest."""

    def __init__(self, settings: Settings, wake_fd: int, fd: int = 0) -> None:
        self.s = settings
        self.w: Any = None
        self.columns = list(settings.columns)
        self.dirty = False  # rows written since the last minibatch end
        self.failed_seen = 0
        self.skipped = 0
        self.input = Input(fd, wake_fd, self.end_minibatch, self.check_uploads, self.bad)
        self._csv: Any = None
        self._record_line = 0  # the first line of the CSV record being read

    # -- the sink

    def end_minibatch(self) -> None:
        if self.dirty and self.w is not None:
            self.dirty = False
            try:
                self.w.on_time_end(self.input.time)
            except _s3sink.SinkError as e:
                raise Stopped(e) from e
        self.report_failed_attempts()

    def check_uploads(self) -> None:
        if self.w is None:
            return
        failure = self.w.failure
        if failure is not None:
            raise Stopped(failure)
        self.report_failed_attempts()

    def report_failed_attempts(self) -> None:
        if self.w is None:
            return
        failed = self.w.failed_uploads
        if failed > self.failed_seen:
            self.failed_seen = failed
            _say(f"{failed} upload attempt(s) failed so far; the rows are kept and retried. "
                 f"Last error: {self.w.last_error}")

    def bad(self, err: BadInput) -> None:
        if not self.s.skip_bad_lines:
            raise err
        self.skipped += 1
        _say(f"line {err.line} skipped: {err.reason}")

    def row_failed(self, e: BaseException, line: int) -> None:
        if not _row_error(e):
            if isinstance(e, _s3sink.SinkError):
                raise Stopped(e) from e
            raise e
        reason = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if e.__cause__ is not None:  # the extension's "cannot convert the value of column ..."
            reason += f": {e.__cause__}"
        reason, fix = _row_fix(reason, self.columns)
        self.bad(BadInput(line, reason, "fix the line" if isinstance(e, BadValue) else fix))

    # -- the inputs

    def prepare(self) -> None:
        if self.s.input == "csv":
            self._csv = csv.reader(self._csv_lines(), delimiter=self.s.delimiter, strict=True)
            if self.s.header:
                self._csv_header()

    def run(self, writer: Any) -> None:
        self.w = writer
        {"lines": self.lines, "jsonl": self.jsonl, "csv": self.csv}[self.s.input]()

    def lines(self) -> None:
        write = self.w.on_engine_change
        for first, lines in self.input.blocks():
            t = self.input.time
            self.dirty = True
            for i, line in enumerate(lines):
                if line.endswith("\r"):
                    line = line[:-1]
                try:
                    write(None, [line], t, 1)
                except Exception as e:  # noqa: BLE001 - sorted by row_failed
                    self.row_failed(e, first + i)

    def jsonl(self) -> None:
        names = [c[0] for c in self.columns]
        converters = [(i, conv) for i, c in enumerate(self.columns) if (conv := _json_to(c[1])) is not None]
        loads = json.loads
        on_change, on_values = self.w.on_change, self.w.on_engine_change
        for first, lines in self.input.blocks():
            t = self.input.time
            self.dirty = True
            for i, line in enumerate(lines):
                if not line or line.isspace():
                    continue
                try:
                    record = loads(line)
                except ValueError as e:
                    where = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
                    self.bad(BadInput(first + i, f"not JSON ({where})", "fix the line"))
                    continue
                if type(record) is not dict:
                    self.bad(BadInput(first + i, f"{_json_kind(record)}, not a JSON object",
                                      "give one JSON object per line"))
                    continue
                try:
                    if converters:
                        values = [record.get(n) for n in names]
                        for j, conv in converters:
                            if values[j] is not None:
                                values[j] = _column_value(conv, values[j], self.columns[j])
                        on_values(None, values, t, 1)
                    else:
                        try:
                            on_change(None, record, t, True)
                        except KeyError:  # a key is missing: null
                            on_values(None, [record.get(n) for n in names], t, 1)
                except Exception as e:  # noqa: BLE001 - sorted by row_failed
                    self.row_failed(e, first + i)

    def _csv_lines(self) -> Iterator[str]:
        """The lines of the input for csv.reader, noting the number of the first line of
        each record (csv.reader counts only the lines it gets, not those skipped)."""
        for first, lines in self.input.blocks():
            self.dirty = True  # a record may end in this block
            for i, line in enumerate(lines):
                if self._record_line == 0:
                    self._record_line = first + i
                yield line + "\n"

    def _next_record(self) -> tuple[int, list[str]]:
        """(number of its first line, the record); StopIteration at the end."""
        self._record_line = 0
        try:
            record = next(self._csv)
        except csv.Error as e:
            raise _CsvError(self._record_line, e) from None
        return self._record_line, record

    def _csv_header(self) -> None:
        """The columns of the header row, typed by --columns."""
        header: list[str] = []
        while not header:  # the first row that is not blank
            try:
                line, header = self._next_record()
            except StopIteration:
                return
            except _CsvError as e:
                raise BadInput(e.line, f"not a valid CSV header ({e.error})", "fix the header row") from None
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            raise BadInput(line, f"the header names column {dup!r} twice", "give every column its own name")
        typed = {c[0]: c for c in self.columns}
        unknown = [name for name in typed if name not in header]
        if unknown:
            raise BadInput(line, f"the header has no column {unknown[0]!r} (it has {', '.join(header)})",
                           "type only columns of the header in --columns")
        self.columns = [typed.get(name, (name, "str", False)) for name in header]

    def csv(self) -> None:
        if not self.columns:  # the input ended before its header
            return
        n = len(self.columns)
        convert = _row_converter(self.columns)
        write = self.w.on_engine_change
        while True:
            try:
                line, record = self._next_record()
            except StopIteration:
                return
            except _CsvError as e:
                self.bad(BadInput(e.line, f"not valid CSV ({e.error})",
                                  "quote fields that hold the delimiter, a quote or a line break, "
                                  "and double the quotes inside them"))
                continue
            if not record:
                continue
            if len(record) != n:
                self.bad(BadInput(line, f"{len(record)} fields, but there are {n} columns "
                                  f"({', '.join(c[0] for c in self.columns)})",
                                  "give every row the same fields, quoting fields that hold the delimiter"))
                continue
            try:
                write(None, record if convert is None else convert(record), self.input.time, 1)
            except Exception as e:  # noqa: BLE001 - sorted by row_failed
                self.row_failed(e, line)


class _CsvError(Exception):
    def __init__(self, line: int, error: csv.Error) -> None:
        super().__init__(line, error)
        self.line, self.error = line, error


def _column_value(conv: Callable[[Any], Any], value: Any, col: tuple[str, str, bool]) -> Any:
    try:
        return conv(value)
    except BadValue as e:
        raise BadValue(f"column {col[0]!r} ({col[1]}): {e}") from None


def _with_flags(message: object) -> str:
    """A runtime message, with the command-line spelling of the options it names."""
    text = str(message)
    named = [n for n in _OPTIONS if "_" in n and n not in HOST_SETTINGS
             and re.search(rf"\b{n}\b", text)]
    if named:
        text += f" ({', '.join(_flag(n) for n in named)} on the command line)"
    return text


def _log_to_stderr(verbose: bool) -> None:
    """The s3sink logger's lines on standard error: retried and failed uploads always,
    each object uploaded with --verbose. A host that set up logging keeps its own."""
    logger = logging.getLogger("s3sink")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"s3sink: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# ---------------------------------------------------------------------------------------
# The run: a worker thread reads and writes; the main thread waits for it and for signals


class Command:
    """One run of the command. The worker thread opens the writer, pumps standard input
    into it and closes it; the main thread only waits, so that it can take SIGTERM and
    SIGINT even while the worker waits in C (for room in the buffer, or for the final
    upload)."""

    def __init__(self, settings: Settings, fd: int = 0) -> None:
        self.s = settings
        self.fd = fd
        self.status = EXIT_FAILED
        self.writer: Any = None
        self.signals = 0
        self._wake_r, self._wake_w = os.pipe()

    def run(self) -> int:
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        worker = threading.Thread(target=self._work, name="s3sink-input", daemon=True)
        try:
            worker.start()
            worker.join()  # signal handlers run meanwhile
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.status

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            os.write(self._wake_w, b"x")  # the input ends; every row read is uploaded
            return
        self._abandon(signal.Signals(signum).name)

    def _abandon(self, name: str) -> NoReturn:
        """A second signal: give up the final upload, say what it costs, exit now."""
        w = self.writer
        pending = 0
        if w is not None:
            w.interrupt()  # a write waiting for room gives up
            try:
                pending = w.stats["buffered_rows"]
            except _s3sink.SinkError:
                pending = 0
        if pending:
            last = w.last_error
            _say(f"{name} again: gave up uploading {pending} rows; {self._where_rows_stay()}"
                 + (f". Last error: {last}" if last is not None else ""))
        else:
            _say(f"{name} again: stopped; nothing was left to upload")
        os._exit(EXIT_FAILED if pending else EXIT_OK)

    def _where_rows_stay(self) -> str:
        spool = self.s.writer.get("spool_dir")
        if spool:
            return (f"the complete minibatches stay in the spool {spool}: run s3sink again with "
                    f"--spool-dir {spool} and the same destination to upload them")
        return "they are lost (with --spool-dir they would have stayed on disk)"

    def _work(self) -> None:
        pump = Pump(self.s, self._wake_r, self.fd)
        try:
            pump.prepare()
        except BadInput as e:
            _say(f"line {e.line}: {e.reason}: {e.fix}")
            _say("stopped before writing anything")
            self.status = EXIT_BAD_INPUT
            return
        if not pump.columns:  # the input ended (or a signal came) before the CSV header
            self.status = self._input_status(pump)
            return
        if not self._open(pump.columns):
            return
        bad: BadInput | None = None
        failure: BaseException | None = None
        try:
            pump.run(self.writer)
        except BadInput as e:
            bad = e
        except Stopped as e:
            failure = e.args[0]
        if failure is None:
            failure = self._close()
        if bad is not None:
            _say(f"line {bad.line}: {bad.reason}: {bad.fix}")
        if failure is not None:
            self._give_up(failure)
            return
        if bad is not None:
            _say(f"stopped at line {bad.line}: the rows before it were uploaded, nothing from it "
                 "on was written (--skip-bad-lines goes on past bad lines)")
            self.status = EXIT_BAD_INPUT
            return
        if pump.skipped:
            _say(f"{pump.skipped} bad line(s) skipped")
        if self.s.verbose:
            st = self.writer.stats
            last = self.writer.last_key
            _say(f"uploaded {st['rows']} rows in {st['objects']} objects to {self.s.destination}"
                 + (f" (last key {last})" if last else ""))
        self.status = self._input_status(pump)

    @staticmethod
    def _input_status(pump: Pump) -> int:
        if pump.input.error is None:
            return EXIT_OK
        _say(f"cannot read standard input ({pump.input.error}); every row read before was uploaded")
        return EXIT_FAILED

    def _open(self, columns: list[tuple[str, str, bool]]) -> bool:
        """Opens the writer; False (the status set, the reason said) if it cannot."""
        try:
            self.writer = Writer(columns=columns, **self.s.writer)
        except (_s3sink.ConfigError, _s3sink.ScriptError, TypeError) as e:
            hint = ""
            if self.s.input == "csv" and self.s.header and "clashes with the" in str(e):
                hint = (" (of the CSV header: skip the header, e.g. with tail -n +2, and name the "
                        "columns with --no-header --columns)")
            _say(f"{_with_flags(e)}{hint}")
            self.status = EXIT_USAGE
            return False
        except _s3sink.SinkError as e:
            _say(f"cannot write to {self.s.destination}: {_with_flags(e)}")
            self.status = EXIT_FAILED
            return False
        return True

    def _close(self) -> BaseException | None:
        """Uploads every row read (the last minibatch too); the error if that failed."""
        w = self.writer
        failure = w.failure
        if failure is not None:
            return failure
        try:
            w.close()
        except _s3sink.SinkError as e:
            return e
        return None

    def _give_up(self, failure: BaseException) -> None:
        w = self.writer
        pending = w.stats["buffered_rows"] if not w.closed else 0
        w.discard()  # a spool keeps its rows for the next run
        _say(f"uploads failed: {failure}")
        if pending:
            _say(f"{pending} rows were not uploaded: {self._where_rows_stay()}")
        self.status = EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """The command: ``s3sink [options] s3://bucket/prefix`` (see ``s3sink --help``).
    Returns the exit status."""
    settings = resolve(argv)
    _log_to_stderr(settings.verbose)
    try:
        os.fstat(0)  # before any file of ours could take descriptor 0
    except OSError:
        _say("standard input is closed: pipe the records in, or redirect a file (< file)")
        return EXIT_USAGE
    return Command(settings).run()


if __name__ == "__main__":
    sys.exit(main())
