"""The ``s3sink`` command, run as a subprocess (``python -m s3sink`` and the console
script) against the real MinIO; boto3 reads back every object and every row is counted
(none lost, none duplicated) and compared byte for byte with what s3sink.Formatter (the
Writer's formatting) gives for the same rows."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import fcntl
import glob
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import s3sink
from faultproxy import always, respond
from helpers import objects
from s3sink import cli

PKG_DIR = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------
# Running the command


def installed_script() -> str | None:
    """The console script pip installed beside this Python (make python), if any."""
    found = shutil.which("s3sink", path=os.path.dirname(sys.executable))
    return found


@pytest.fixture(scope="session")
def script_command(tmp_path_factory) -> list[str]:
    """The console script: the installed one when there is one (make test installs the
    package); else a script of the same name and body as the one pip writes for the entry
    point of pyproject.toml (a development checkout's venv may hold an older install)."""
    found = installed_script()
    if found:
        return [found]
    text = (PKG_DIR / "pyproject.toml").read_text()
    assert '[project.scripts]\ns3sink = "s3sink.cli:main"' in text
    path = tmp_path_factory.mktemp("bin") / "s3sink"
    path.write_text(f"#!{sys.executable}\nimport sys\nfrom s3sink.cli import main\nsys.exit(main())\n")
    path.chmod(0o755)
    return [str(path)]


@pytest.fixture(params=["module", "script"])
def command(request, script_command) -> list[str]:
    return [sys.executable, "-m", "s3sink"] if request.param == "module" else script_command


MODULE = [sys.executable, "-m", "s3sink"]


@pytest.fixture
def env(minio) -> dict[str, str]:
    """The environment of a run: the test MinIO's endpoint and keys as the AWS tools
    take them."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("S3SINK_", "AWS_"))}
    e.update(PYTHONPATH=os.environ["PYTHONPATH"], AWS_ENDPOINT_URL=minio.endpoint,
             AWS_ACCESS_KEY_ID=minio.access_key, AWS_SECRET_ACCESS_KEY=minio.secret_key,
             AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull)
    return e


def run(args: list[str], data: bytes, env: dict[str, str], cmd: list[str] = MODULE,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd, *args], input=data, capture_output=True, env=env, timeout=timeout)


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr.decode()
    return r


# ---------------------------------------------------------------------------------------
# Reading back


def times_of(body: bytes, fmt: str) -> list[int]:
    """The time of every row of an object."""
    if fmt == "json":
        return [json.loads(line)["time"] for line in body.decode().split("\n") if line]
    if fmt == TSV:
        return [int(line.split("\t")[-2]) for line in body.decode().split("\n")[1:] if line]
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    return [int(r[-2]) for r in rows[1:]]


def assert_objects_hold(s3, bucket: str, prefix: str, fmt: str, columns, rows: list[dict],
                        since_ms: int | None = None) -> list[tuple[str, bytes]]:
    """The objects under prefix hold exactly `rows`, in order, each once, and are byte for
    byte what the Writer's formatter writes for them (with the times the objects carry:
    when the command read each row, never decreasing)."""
    found = objects(s3, bucket, prefix)
    assert found, "no object"
    f = s3sink.Formatter(fmt, columns)
    done = 0
    all_times: list[int] = []
    for key, body in found:
        times = times_of(body, fmt)
        assert times, key
        want = f.header() + b"".join(f.row(rows[done + j], t) for j, t in enumerate(times))
        assert body == want, key
        done += len(times)
        all_times += times
    assert done == len(rows)
    assert all_times == sorted(all_times)
    if since_ms is not None:
        assert since_ms <= all_times[0] and all_times[-1] <= time.time() * 1000 + 1
    return found


TSV = str(PKG_DIR.parents[1] / "examples" / "formats" / "tsv.lua")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------
# --help: every option of the runtime's table


def test_help_documents_every_option_of_the_table():
    r = subprocess.run([*MODULE, "--help"], capture_output=True, text=True, check=True)
    text = " ".join(r.stdout.split())
    for o in s3sink.options():
        name = o["name"]
        if o["group"] == "host":
            assert f"{name} = " in text, name  # set by the command, and said so
            continue
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
        assert f"[S3SINK_{name.upper()}]" in text, name
        assert " ".join(o["doc"].split()) in text, name
        if o["type"] == "bool":
            assert "--no-" + name.replace("_", "-") in text
    for own in ("--input", "--columns", "--header", "--delimiter", "--skip-bad-lines", "--profile"):
        assert own in text
    for status in ("exit status", "SIGTERM", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        assert status in text


def test_the_command_reads_every_option_type():
    # an option of another type would not be on the command line (--help would say so)
    assert {o["type"] for o in s3sink.options()} <= set(cli.COMMAND_LINE_TYPES)
    assert cli.NOT_ON_COMMAND_LINE == []


def test_every_host_option_is_set_by_the_command():
    host = {o["name"] for o in s3sink.options() if o["group"] == "host"}
    assert host == set(cli.HOST_SETTINGS)


def test_the_command_does_not_import_pathway():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "s3sink", "--version"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == f"s3sink {s3sink.__version__}"
    assert "s3sink.cli" in r.stderr and "pathway" not in r.stderr


# ---------------------------------------------------------------------------------------
# Lines


LINES = [
    "plain",
    "",
    'quotes " and "" and, commas',
    "tab\there",
    "unicode: žluťoučký kůň 🐎",
    "with CR at the end\r",
    "  spaces around  ",
    "x" * 5000,
]


def lines_input(n: int) -> tuple[bytes, list[str]]:
    texts = [f"{i} {LINES[i % len(LINES)]}" for i in range(n)]
    data = "\n".join(texts).encode()  # the last line without its LF
    return data, [t[:-1] if t.endswith("\r") else t for t in texts]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_lines_arrive_once_each_as_the_writer_formats_them(command, fmt, env, s3, bucket):
    data, texts = lines_input(20000)
    start = now_ms()
    ok(run(["--format", fmt, "--max-object-rows", "5000", f"s3://{bucket}/logs"], data, env, command))
    found = assert_objects_hold(s3, bucket, "logs/", fmt, [("line", "str")],
                                [{"line": t} for t in texts], since_ms=start)
    assert len(found) >= 2  # rolled by --max-object-rows at minibatch ends


def test_a_lua_format_script(env, s3, bucket):
    data, texts = lines_input(300)
    ok(run(["--format", TSV, f"s3://{bucket}"], data, env))
    assert_objects_hold(s3, bucket, "", TSV, [("line", "str")], [{"line": t} for t in texts])


def test_compression_and_object_settings_are_options_too(env, s3, bucket):
    import gzip

    data, texts = lines_input(500)
    ok(run(["--format", "json", "--compression", "gzip", "--tags", "team=data,env=a=b",
            "--tags", '{"more": "x y"}', "--metadata", "source=cli", f"s3://{bucket}/z"], data,
           {**env, "S3SINK_STORAGE_CLASS": "STANDARD"}))
    [(key, body)] = objects(s3, bucket, "z/")
    assert key.endswith(".json.gz")
    f = s3sink.Formatter("json", [("line", "str")])
    rows = gzip.decompress(body)
    assert rows == b"".join(f.row({"line": t}, tm) for t, tm in zip(texts, times_of(rows, "json")))
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "env": "a=b", "more": "x y"}
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["source"] == "cli"


def test_a_list_option_takes_names_separated_by_commas(env, s3, bucket):
    """partition_by (a list option) as "a,b" on the command line, with gzip: every row
    once, in its partition's folder, in .csv.gz objects."""
    import gzip

    assert "--partition-by NAME,..." in subprocess.run([*MODULE, "--help"], capture_output=True,
                                                       text=True, check=True).stdout
    rows = [(f"c{i % 3}", f"t{i % 2}", str(i)) for i in range(600)]
    data = "country,city,n\n" + "".join(",".join(r) + "\n" for r in rows)
    ok(run(["--input", "csv", "--partition-by", "country,city", "--compression", "gzip",
            f"s3://{bucket}/p"], data.encode(), env))
    seen = []
    for key, body in objects(s3, bucket, "p/"):
        assert key.endswith(".csv.gz"), key
        records = list(csv.reader(io.StringIO(gzip.decompress(body).decode(), newline="")))
        assert records[0][:3] == ["country", "city", "n"]
        for country, city, n, *_ in records[1:]:
            assert key.startswith(f"p/country={country}/city={city}/"), key
            seen.append(int(n))
    assert sorted(seen) == list(range(600))


def test_lines_column_may_be_renamed(env, s3, bucket):
    ok(run(["--columns", "msg:str", "--format", "json", f"s3://{bucket}"], b"a\nb\n", env))
    assert_objects_hold(s3, bucket, "", "json", [("msg", "str")], [{"msg": "a"}, {"msg": "b"}])


def test_verbose_prints_each_upload_and_retries_are_printed_anyway(env, s3, bucket, proxy):
    from faultproxy import first

    r = ok(run(["--verbose", f"s3://{bucket}/v"], b"a\nb\nc\n", env))
    [(key, body)] = objects(s3, bucket, "v/")
    lines = r.stderr.decode().splitlines()
    assert f"s3sink s3://{bucket}/v/: uploaded {key}: 3 rows, {len(body)} bytes in " in r.stderr.decode()
    assert lines[-1].startswith("s3sink: uploaded 3 rows in 1 objects")

    proxy.rule = first(1, respond(503, "SlowDown"), method="PUT")
    r = ok(run(["--endpoint", proxy.endpoint, f"s3://{bucket}/q"], b"a\n", env))
    text = r.stderr.decode()
    assert "SlowDown" in text and "retried in" in text and ": uploaded " not in text
    assert len(objects(s3, bucket, "q/")) == 1


def test_an_empty_input_uploads_nothing(env, s3, bucket):
    ok(run([f"s3://{bucket}/p"], b"", env))
    assert objects(s3, bucket) == []


# ---------------------------------------------------------------------------------------
# JSON Lines


JSONL_COLUMNS = [
    ("id", "int", False), ("name", "str", True), ("score", "float", True), ("ok", "bool", True),
    ("blob", "bytes", True), ("at", "datetime_utc", True), ("local", "datetime_naive", True),
    ("took", "duration", True), ("meta", "json", True), ("tags", "list", True), ("v", "any", True),
]


def jsonl_records(n: int) -> tuple[bytes, list[dict]]:
    """JSON Lines (blank lines, extra and missing keys, every type) and the Python values
    the Writer gets for them."""
    lines, rows = [], []
    for i in range(n):
        at = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i, microseconds=i)
        local = dt.datetime(2023, 1, 1) + dt.timedelta(minutes=i)
        rec = {"id": i, "name": f"n\"{i}\"\n", "score": i / 7, "ok": i % 2 == 0,
               "blob": base64.b64encode(bytes([i % 256, 0, 255])).decode(),
               "at": at.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
               "local": local.isoformat(), "took": i * 1000, "meta": {"k": [i, None]},
               "tags": ["a", i], "v": [i, "x"] if i % 3 else i, "extra": "ignored"}
        row = {"id": i, "name": rec["name"], "score": rec["score"], "ok": rec["ok"],
               "blob": bytes([i % 256, 0, 255]), "at": at, "local": local, "took": i * 1000,
               "meta": rec["meta"], "tags": rec["tags"], "v": rec["v"]}
        if i % 5 == 0:  # missing keys and nulls are null
            for k in ("name", "score", "blob", "at"):
                del rec[k]
                row[k] = None
            rec["meta"] = None
            row["meta"] = None
        lines.append(json.dumps(rec, ensure_ascii=i % 2 == 0))
        if i % 100 == 0:
            lines.append("   ")
        rows.append(row)
    return ("\n".join(lines) + "\n").encode(), rows


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_jsonl_records_arrive_once_each_as_the_writer_formats_them(command, fmt, env, s3, bucket):
    data, rows = jsonl_records(3000)
    spec = ",".join(f"{n}:{t}{'?' if o else ''}" for n, t, o in JSONL_COLUMNS)
    ok(run(["--input", "jsonl", "--columns", spec, "--format", fmt, f"s3://{bucket}/j/"], data, env, command))
    assert_objects_hold(s3, bucket, "j/", fmt, JSONL_COLUMNS, rows)


def test_datetimes_keep_their_nanoseconds(env, s3, bucket):
    data = b'{"at":"2024-01-02T03:04:05.123456789-01:30","n":"2024-01-02 03:04:05.5","i":1704164645000000001}\n'
    ok(run(["--input", "jsonl", "--columns", "at:datetime_utc,n:datetime_naive,i:datetime_utc",
            "--format", "json", f"s3://{bucket}"], data, env))
    row = json.loads(objects(s3, bucket)[0][1])
    assert row["at"] == "2024-01-02T04:34:05.123456789+0000"
    assert row["n"] == "2024-01-02T03:04:05.500000000"
    assert row["i"] == "2024-01-02T03:04:05.000000001+0000"


# ---------------------------------------------------------------------------------------
# CSV


def test_csv_records_arrive_once_each_as_the_writer_formats_them(command, env, s3, bucket):
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["id", "name", "price", "flag", "at", "meta"])
    rows = []
    for i in range(5000):
        name = [f"plain {i}", f"a,b {i}", f'quo"te {i}', f"multi\nline {i}", ""][i % 5]
        price = "" if i % 7 == 0 else f"{i / 4}"
        flag = ["true", "False", "1", "0", ""][i % 5]
        at = f"2024-03-01T00:00:{i % 60:02d}Z" if i % 3 else ""
        w.writerow([i, name, price, flag, at, json.dumps({"i": i})])
        if i % 1000 == 0:
            out.write("\r\n")  # blank lines are skipped
        rows.append({"id": i, "name": name, "price": None if not price else i / 4,
                     "flag": {"true": True, "False": False, "1": True, "0": False, "": None}[flag],
                     "at": dt.datetime(2024, 3, 1, 0, 0, i % 60, tzinfo=dt.timezone.utc) if at else None,
                     "meta": {"i": i}})
    columns = [("id", "int", False), ("name", "str", False), ("price", "float", True),
               ("flag", "bool", True), ("at", "datetime_utc", True), ("meta", "json", False)]
    ok(run(["--input", "csv", "--columns", "id:int,price:float?,flag:bool?,at:datetime_utc?,meta:json",
            "--format", "json", "--max-object-rows", "2000", f"s3://{bucket}/c"],
           ("\ufeff" + out.getvalue()).encode(), env, command))
    assert_objects_hold(s3, bucket, "c/", "json", columns, rows)


def test_csv_without_a_header_and_another_delimiter(env, s3, bucket):
    data = b"1\tone\n2\t\"t\tw\to\"\n"
    ok(run(["--input", "csv", "--no-header", "--delimiter", "\\t", "--columns", "n:int,word:str",
            f"s3://{bucket}"], data, env))
    assert_objects_hold(s3, bucket, "", "csv", [("n", "int"), ("word", "str")],
                        [{"n": 1, "word": "one"}, {"n": 2, "word": "t\tw\to"}])


# ---------------------------------------------------------------------------------------
# Settings from the environment


def test_options_from_the_environment_and_the_command_line_wins(minio, s3, bucket):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("S3SINK_", "AWS_"))}
    e.update(S3SINK_ENDPOINT=minio.endpoint, S3SINK_BUCKET=bucket, S3SINK_PREFIX="env/",
             S3SINK_ACCESS_KEY=minio.access_key, S3SINK_SECRET_KEY=minio.secret_key,
             S3SINK_FORMAT="json", S3SINK_INPUT="jsonl", S3SINK_COLUMNS="a:int",
             S3SINK_WRITER_ID="w1", S3SINK_CREATE_BUCKET="yes",
             AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull)
    ok(run([], b'{"a":1}\n', e))
    [(key, body)] = objects(s3, bucket)
    assert key.startswith("env/") and key.endswith("-w1.json") and b'"a":1' in body
    ok(run(["--format", "csv", "--writer-id", "w2", f"s3://{bucket}/cmd"], b'{"a":2}\n', e))
    [(key, body)] = objects(s3, bucket, "cmd/")
    assert key.endswith("-w2.csv") and body.startswith(b'"a","time","diff"\n"2",')


def test_aws_variables_and_profiles_as_the_aws_tools_read_them(minio, s3, bucket, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[other]\naws_access_key_id = {minio.access_key}\n"
                     f"aws_secret_access_key = {minio.secret_key}\n")
    config = tmp_path / "config"
    config.write_text(f"[profile other]\nregion = eu-central-1\nendpoint_url = {minio.endpoint}\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("S3SINK_", "AWS_"))}
    e.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(config), AWS_PROFILE="other")
    ok(run([f"s3://{bucket}/prof"], b"x\n", e))
    assert len(objects(s3, bucket, "prof/")) == 1
    # AWS_ENDPOINT_URL_S3 wins over the profile's endpoint, the environment's keys over
    # the profile's: wrong keys are refused by the server
    bad = dict(e, AWS_ACCESS_KEY_ID="nobody", AWS_SECRET_ACCESS_KEY="nothing")
    r = run([f"s3://{bucket}/prof"], b"x\n", bad)
    assert r.returncode == cli.EXIT_FAILED and b"InvalidAccessKeyId" in r.stderr
    r = run(["--profile", "missing", f"s3://{bucket}"], b"x\n", e)
    assert r.returncode == cli.EXIT_USAGE and b"profile 'missing'" in r.stderr
    # a profile named on the command line wins over the environment's keys (aws --profile)
    ok(run(["--profile", "other", f"s3://{bucket}/named"], b"x\n", bad))
    assert len(objects(s3, bucket, "named/")) == 1
    # no credentials anywhere: an error naming the way out, not an anonymous request
    none = {k: v for k, v in e.items() if k != "AWS_PROFILE"}
    none.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    r = run([f"s3://{bucket}/none", "--endpoint", minio.endpoint], b"x\n", none)
    assert r.returncode != 0 and b"no AWS credentials found" in r.stderr and b"anonymous" in r.stderr


def test_aws_settings_precedence(tmp_path):
    creds = tmp_path / "c"
    creds.write_text("[default]\naws_access_key_id = P\naws_secret_access_key = PS\naws_session_token = PT\n")
    config = tmp_path / "k"
    config.write_text("[default]\nregion = from-profile\nendpoint_url = http://profile\nca_bundle = /p.pem\n")
    files = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config)}
    assert cli.aws_settings(env=files) == {
        "access_key": "P", "secret_key": "PS", "session_token": "PT", "region": "from-profile",
        "endpoint": "http://profile", "ca_file": "/p.pem"}
    env = {**files, "AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "ES", "AWS_REGION": "r1",
           "AWS_DEFAULT_REGION": "r2", "AWS_ENDPOINT_URL": "http://generic", "AWS_ENDPOINT_URL_S3": "http://s3",
           "AWS_CA_BUNDLE": "/e.pem"}
    assert cli.aws_settings(env=env) == {
        "access_key": "E", "secret_key": "ES", "region": "r1", "endpoint": "http://s3", "ca_file": "/e.pem"}
    assert "endpoint" not in cli.aws_settings(env={**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    # a profile named on the command line wins over the environment's keys (aws --profile)
    assert cli.aws_settings("default", env)["access_key"] == "P"
    assert cli.aws_settings(env={**env, "AWS_PROFILE": "default"})["access_key"] == "E"
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"):
        cli.aws_settings(env={**files, "AWS_ACCESS_KEY_ID": "E"})
    with pytest.raises(ValueError, match="profile 'nope'"):
        cli.aws_settings(env={**files, "AWS_PROFILE": "nope"})
    assert cli.aws_settings(env={"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                                 "AWS_CONFIG_FILE": str(tmp_path / "none")}) == {}


@pytest.mark.parametrize("args, variables, message", [
    ([], {}, "no bucket: give the destination s3://BUCKET/PREFIX"),
    (["b"], {}, "destination 'b' is not s3://BUCKET/PREFIX"),
    (["--bucket", "x", "s3://b"], {}, "not both"),
    (["--input", "jsonl", "s3://b"], {}, "--input jsonl needs --columns"),
    (["--columns", "a:integer", "--input", "csv", "s3://b"], {}, "column 'a' has unknown type 'integer': use one of int,"),
    (["--columns", "a", "--input", "csv", "s3://b"], {}, "'a' is not name:type"),
    (["--input", "lines", "--columns", "a:int", "s3://b"], {}, "--input lines has one str column"),
    (["--input", "csv", "--no-header", "s3://b"], {}, "--no-header needs --columns"),
    (["--input", "csv", "--delimiter", "ab", "s3://b"], {}, "--delimiter 'ab'"),
    (["--input", "xml", "s3://b"], {}, "invalid choice: 'xml'"),
    (["s3://b"], {"S3SINK_WRITE_INTERVAL_MS": "soon"}, "S3SINK_WRITE_INTERVAL_MS='soon'"),
    (["s3://b"], {"S3SINK_CREATE_BUCKET": "maybe"}, "S3SINK_CREATE_BUCKET='maybe': not a boolean"),
    (["--write-interval-ms", "0", "s3://b"], {}, "write_interval_ms is 0: it must be 1 or more (--write-interval-ms on the command line)"),
    (["--format", "yaml", "s3://b"], {}, "yaml"),
    (["--tags", "novalue", "s3://b"], {}, "'novalue' is not KEY=VALUE"),
    (["s3://b"], {"S3SINK_METADATA": "{1}"}, "S3SINK_METADATA='{1}': '{1}' is not a JSON object"),
])
def test_mistakes_are_usage_errors_naming_the_fix(env, args, variables, message):
    r = run(args, b"x\n", {**env, **variables})
    assert r.returncode == cli.EXIT_USAGE, r.stderr
    assert message in r.stderr.decode()


def test_a_bucket_that_does_not_exist_fails_naming_it(env):
    r = run(["s3://no-such-bucket-here/p"], b"x\n", env)
    assert r.returncode == cli.EXIT_FAILED
    assert b"bucket 'no-such-bucket-here' does not exist" in r.stderr
    assert b"(--create-bucket on the command line)" in r.stderr


def test_no_standard_input_at_all_is_a_usage_error(env, bucket):
    r = subprocess.run([*MODULE, f"s3://{bucket}"], capture_output=True, env=env, timeout=60,
                       stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert r.returncode == cli.EXIT_USAGE
    assert b"standard input is closed: pipe the records in" in r.stderr


# ---------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kind, args, lines, bad, message", [
    ("jsonl", ["--columns", "id:int"], ['{"id":%d}'], '{"id": 5,', "line 41: not JSON (Expecting property name"),
    ("jsonl", ["--columns", "id:int"], ['{"id":%d}'], '[1, 2]', "line 41: an array, not a JSON object"),
    ("jsonl", ["--columns", "id:int"], ['{"id":%d}'], '{"id": "five"}', "line 41: column 'id' (int) needs an int, got str"),
    ("jsonl", ["--columns", "id:int"], ['{"id":%d}'], '{"id": 99999999999999999999}', "line 41: cannot convert the value of column 'id' (int): int column: integer 99999999999999999999 does not fit in 64 bits"),
    ("jsonl", ["--columns", "id:int"], ['{"id":%d}'], '{"other": 5}', "line 41: column 'id' holds int values but got null: give it a value, or let the column hold null: --columns ...,id:int?"),
    ("csv", ["--columns", "id:int"], ["%d,x"], "7,x,extra", "line 42: 3 fields, but there are 2 columns (id, name): give every row the same fields"),
    ("csv", ["--columns", "id:int"], ["%d,x"], "seven,x", "line 42: column 'id' (int): 'seven' is not an integer"),
    ("csv", ["--columns", "id:int"], ["%d,x"], '8,"unclosed', "line 42: not valid CSV"),
    ("lines", [], ["%d"], b"\xff\xfe latin", "line 41: not UTF-8 text (byte 0xff at byte 1): convert the input to UTF-8"),
])
def test_a_bad_line_stops_the_command_naming_it_and_the_rows_before_it_are_uploaded(
        env, s3, bucket, kind, args, lines, bad, message):
    good = [(lines[0] % i).encode() for i in range(40)]
    after = [(lines[0] % i).encode() for i in range(100, 110)]
    head = [b"id,name"] if kind == "csv" else []
    data = b"\n".join(head + good + [bad if isinstance(bad, bytes) else bad.encode()] + after) + b"\n"
    r = run(["--input", kind, *args, "--format", "json", f"s3://{bucket}"], data, env)
    assert r.returncode == cli.EXIT_BAD_INPUT, r.stderr
    err = r.stderr.decode()
    assert message in err, err
    assert "the rows before it were uploaded" in err
    stored = [json.loads(line) for _, body in objects(s3, bucket) for line in body.decode().splitlines()]
    key = "line" if kind == "lines" else "id"
    assert [str(row[key]) for row in stored] == [str(i) for i in range(40)]


def test_skip_bad_lines_reports_each_and_goes_on(env, s3, bucket):
    data = b'{"id":1}\nnot json\n{"id":2}\n"a string"\n{"id":"x"}\n{"id":3}'
    r = ok(run(["--input", "jsonl", "--columns", "id:int", "--skip-bad-lines", "--format", "json",
                f"s3://{bucket}"], data, env))
    err = r.stderr.decode()
    assert "line 2 skipped: not JSON" in err and "line 4 skipped: a string, not a JSON object" in err
    assert "line 5 skipped: column 'id' (int) needs an int" in err and "3 bad line(s) skipped" in err
    stored = [json.loads(line)["id"] for _, body in objects(s3, bucket) for line in body.decode().splitlines()]
    assert stored == [1, 2, 3]


def test_csv_lines_are_counted_across_quoted_line_breaks_and_skipped_lines(env, s3, bucket):
    data = b'id,name\n1,a\n2,"b\nc"\n\xff\n3,"x"y\nfour,z\n5,"\n\n"\n6,e,f\n7,g\n'
    r = ok(run(["--input", "csv", "--columns", "id:int", "--skip-bad-lines", "--format", "json",
                f"s3://{bucket}"], data, env))
    err = r.stderr.decode()
    for line, reason in [(5, "not UTF-8"), (6, "not valid CSV"), (7, "'four' is not an integer"),
                         (11, "3 fields, but there are 2 columns")]:
        assert f"line {line} skipped: " in err and reason in err.split(f"line {line} skipped: ")[1].split("\n")[0]
    stored = [json.loads(line) for _, body in objects(s3, bucket) for line in body.decode().splitlines()]
    assert [(row["id"], row["name"]) for row in stored] == [(1, "a"), (2, "b\nc"), (5, "\n\n"), (7, "g")]


def test_a_bad_csv_header_uploads_nothing(env, s3, bucket):
    r = run(["--input", "csv", "--columns", "price:float", f"s3://{bucket}"], b"id,name\n1,a\n", env)
    assert r.returncode == cli.EXIT_BAD_INPUT
    assert b"line 1: the header has no column 'price' (it has id, name)" in r.stderr
    assert objects(s3, bucket) == []


# ---------------------------------------------------------------------------------------
# Streams: minibatches, idle uploads, signals, kill -9 and the spool


def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """The command reading a pipe the test writes to; returns it and the pipe's read end
    (kept here to see how much the command has not read yet)."""
    r, w = os.pipe()
    proc = subprocess.Popen([*MODULE, *args], stdin=r, stderr=subprocess.PIPE, env=env)
    watch = os.dup(r)
    os.close(r)
    proc.stdin_w = w  # type: ignore[attr-defined]
    return proc, watch


def feed(proc: subprocess.Popen, data: bytes) -> None:
    os.write(proc.stdin_w, data)  # type: ignore[attr-defined]


def wait_read(watch: int, timeout: float = 30) -> None:
    """Until the command has read everything written to its pipe."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = struct.unpack("i", fcntl.ioctl(watch, termios.FIONREAD, b"\0\0\0\0"))[0]
        if left == 0:
            return
        time.sleep(0.01)
    raise AssertionError("the command did not read its input")


def stop(proc: subprocess.Popen, watch: int, timeout: float = 60) -> tuple[int, str]:
    try:
        err = proc.communicate(timeout=timeout)[1].decode()
    finally:
        os.close(watch)
        try:
            os.close(proc.stdin_w)  # type: ignore[attr-defined]
        except OSError:
            pass
    return proc.returncode, err


def ids(s3, bucket: str, prefix: str = "") -> list[int]:
    return [int(json.loads(line)["line"]) for _, body in objects(s3, bucket, prefix)
            for line in body.decode().splitlines()]


def test_each_read_ends_a_minibatch_and_idle_rows_go_out_within_the_interval(env, s3, bucket):
    proc, watch = start(["--write-interval-ms", "300", "--format", "json", f"s3://{bucket}"], env)
    try:
        feed(proc, b"".join(b"%d\n" % i for i in range(100)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not objects(s3, bucket):
            time.sleep(0.05)
        assert ids(s3, bucket) == list(range(100))  # while the input is still open
        feed(proc, b"100\n")
        os.close(proc.stdin_w)  # type: ignore[attr-defined]
    finally:
        status, err = stop(proc, watch)
    assert status == 0, err
    assert ids(s3, bucket) == list(range(101))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_stream_uploads_every_row_read(env, s3, bucket, sig):
    proc, watch = start(["--write-interval-ms", "3600000", "--format", "json", f"s3://{bucket}"], env)
    try:
        for part in range(5):
            feed(proc, b"".join(b"%d\n" % i for i in range(part * 1000, part * 1000 + 1000)))
        wait_read(watch)
        assert objects(s3, bucket) == []  # nothing due yet: an hour's interval
        proc.send_signal(sig)
    finally:
        status, err = stop(proc, watch)
    assert status == 0, err
    assert ids(s3, bucket) == list(range(5000))


def committed_rows(spool: Path) -> int:
    """The rows the spool's journals count as complete (docs/spool.md)."""
    total = 0
    for journal in glob.glob(str(spool / "*.journal")):
        commits = [line for line in Path(journal).read_text().split("\n") if line.startswith("commit ")]
        if commits:
            total += int(commits[-1].split()[2])
    return total


def test_kill_9_with_a_spool_then_a_restart_uploads_every_row_once(env, s3, bucket, tmp_path):
    spool = tmp_path / "spool"
    args = ["--spool-dir", str(spool), "--format", "json", f"s3://{bucket}/k"]
    proc, watch = start(["--write-interval-ms", "3600000", *args], env)
    try:
        for part in range(4):
            feed(proc, b"".join(b"%d\n" % i for i in range(part * 500, part * 500 + 500)))
        wait_read(watch)
        deadline = time.monotonic() + 30
        while committed_rows(spool) < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert committed_rows(spool) == 2000
        proc.kill()
    finally:
        stop(proc, watch)
    assert objects(s3, bucket) == []
    ok(run(args, b"2000\n2001\n", env))
    assert sorted(ids(s3, bucket, "k/")) == list(range(2002))
    assert not glob.glob(str(spool / "*.seg"))


def test_a_second_signal_gives_up_the_final_upload_and_the_spool_keeps_the_rows(env, s3, bucket, proxy, tmp_path):
    spool = tmp_path / "spool"
    args = ["--spool-dir", str(spool), "--format", "json", f"s3://{bucket}/g"]
    proc, watch = start(["--endpoint", proxy.endpoint, "--max-retry-ms", "-1", *args], env)
    try:
        proxy.rule = always(respond(503, "SlowDown"), method="PUT")
        feed(proc, b"".join(b"%d\n" % i for i in range(300)))
        wait_read(watch)
        proc.send_signal(signal.SIGTERM)  # the final upload retries: the storage answers 503
        time.sleep(1.5)
        assert proc.poll() is None
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        status, err = stop(proc, watch, timeout=10)
        assert time.monotonic() - t < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            stop(proc, watch)
    assert status == cli.EXIT_FAILED, err
    assert f"gave up uploading 300 rows; the complete minibatches stay in the spool {spool}" in err
    assert "SlowDown" in err  # the retried attempts were reported
    proxy.rule = None
    assert objects(s3, bucket) == []
    ok(run(args, b"", env))
    assert sorted(ids(s3, bucket, "g/")) == list(range(300))


def test_uploads_that_stop_end_the_command_while_it_waits_for_input(env, s3, bucket, proxy, tmp_path):
    spool = tmp_path / "spool"
    proc, watch = start(["--endpoint", proxy.endpoint, "--write-interval-ms", "200", "--spool-dir", str(spool),
                         "--format", "json", f"s3://{bucket}/d"], env)
    try:
        proxy.rule = always(respond(403, "AccessDenied"), method="PUT")
        feed(proc, b"".join(b"%d\n" % i for i in range(50)))
        wait_read(watch)
        status, err = stop(proc, watch, timeout=20)  # the input stays open
    finally:
        if proc.poll() is None:
            proc.kill()
            stop(proc, watch)
    assert status == cli.EXIT_FAILED, err
    assert "AccessDenied" in err and f"50 rows were not uploaded: the complete minibatches stay in the spool {spool}" in err
    proxy.rule = None
    ok(run(["--spool-dir", str(spool), "--format", "json", f"s3://{bucket}/d"], b"", env))
    assert sorted(ids(s3, bucket, "d/")) == list(range(50))
