"""The Pathway-facing API: installation into pw.io, argument checking at the call,
mapping of Pathway's settings classes (the credentials: test_credentials.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pathway as pw
import pytest

import s3sink
import s3sink.minio
import s3sink.s3
from s3sink import _pathway
from s3sink._pathway import _resolve_target

from faultproxy import first, respond
from helpers import keys, run


def small_table():
    return pw.debug.table_from_markdown(
        """
        a | b
        1 | x
        2 | y
        """
    )


# --- installation -------------------------------------------------------------------------


def test_installed_into_pathway():
    assert pw.io.s3.write is s3sink.s3.write
    assert pw.io.s3.write_to_digital_ocean is s3sink.s3.write_to_digital_ocean
    assert pw.io.s3.write_to_wasabi is s3sink.s3.write_to_wasabi
    assert pw.io.minio.write is s3sink.minio.write
    assert pw.io.minio.write.__name__ == "write"
    assert "write_interval_ms" in pw.io.s3.write.__doc__


def test_install_keeps_pathways_own_functions(monkeypatch):
    def own(*a, **k):
        pass

    monkeypatch.setattr(pw.io.s3, "write", own)
    monkeypatch.setattr(pw.io.minio, "write", own)
    s3sink.install()
    assert pw.io.s3.write is own and pw.io.minio.write is own


def test_import_without_pathway():
    code = (
        "import sys; sys.modules['pathway'] = None\n"
        "import s3sink\n"
        "assert s3sink.Writer and s3sink.Formatter\n"
        "print(s3sink.Formatter('csv', [('a', 'int')]).row({'a': 1}, 2).decode(), end='')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == '"1","2","1"\n'


def test_no_install_env():
    code = (
        "import s3sink, sys\n"
        "assert 'pathway' not in sys.modules\n"
        "import pathway as pw\n"
        "assert not hasattr(pw.io.s3, 'write')\n"
        "s3sink.install()\n"
        "assert pw.io.s3.write\n"
    )
    env = dict(os.environ, S3SINK_NO_INSTALL="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


# --- argument checking (all before any network access) --------------------------------------

AWS = pw.io.s3.AwsS3Settings(bucket_name="b", region="us-east-1", access_key="k", secret_access_key="s")


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(format="parquet"), ValueError, "format"),
        (dict(format="missing/fmt.lua"), ValueError, "format"),
        (dict(format=3), TypeError, "format"),
        (dict(write_interval_ms=0), ValueError, "write_interval_ms"),
        (dict(write_interval_ms=-5), ValueError, "write_interval_ms"),
        (dict(write_interval_ms="1000"), TypeError, "write_interval_ms"),
        (dict(write_interval_ms=True), TypeError, "write_interval_ms"),
        (dict(write_interval_ms=1.5), TypeError, "write_interval_ms"),
        (dict(naming="fancy"), ValueError, "naming"),
        (dict(writer_id="a/b"), ValueError, "writer_id"),
        (dict(connect_timeout_ms=0), ValueError, "connect_timeout_ms"),
        (dict(create_bucket="yes"), TypeError, "create_bucket"),
        (dict(name=5), TypeError, "name"),
        (dict(aws_s3_settings="s3://b"), TypeError, "aws_s3_settings"),
        (dict(path="prefix", aws_s3_settings=pw.io.s3.AwsS3Settings(region="us-east-1")), ValueError, "bucket"),
        (dict(path="s3://", aws_s3_settings=pw.io.s3.AwsS3Settings(region="us-east-1")), ValueError, "bucket"),
        (dict(path="/abs"), ValueError, "starts with '/'"),
        (dict(path=5), TypeError, "path"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(path="s3://b/p", format="csv", aws_s3_settings=AWS)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        pw.io.s3.write(small_table(), args.pop("path"), args.pop("format"), **args)


def test_options_are_the_runtime_s():
    t = small_table()
    with pytest.raises(s3sink.ConfigError, match="unknown option 'write_intervall_ms': did you mean 'write_interval_ms'"):
        pw.io.s3.write(t, "s3://b/p", "csv", aws_s3_settings=AWS, write_intervall_ms=10)
    with pytest.raises(TypeError, match="bucket is not an option of this writer: it is set by the path and the settings"):
        pw.io.s3.write(t, "s3://b/p", "csv", aws_s3_settings=AWS, bucket="c")
    with pytest.raises(TypeError, match="no_timer is not an option of this writer: it is set by the writer"):
        pw.io.s3.write(t, "s3://b/p", "csv", aws_s3_settings=AWS, no_timer=True)
    # every option the writers take is documented, from the runtime's table
    for name in _pathway._WRITER_OPTIONS:
        assert f"        {name}: " in pw.io.minio.write.__doc__


def test_bundled_script_names_come_from_the_runtime(monkeypatch, tmp_path):
    assert _pathway._script("json", "format") == "json"
    monkeypatch.setattr(_pathway._s3sink, "bundled", lambda kind: ("csv", "json", "tsv"))
    assert _pathway._script("tsv", "format") == "tsv"  # a formats/tsv.lua of the runtime
    script = tmp_path / "mine.lua"
    script.write_text("return {}")
    assert _pathway._script(script, "naming") == str(script)  # PathLike, made absolute
    with pytest.raises(ValueError, match="does not exist"):
        _pathway._script(tmp_path / "missing.lua", "format")


def test_table_must_be_a_table():
    with pytest.raises(TypeError, match="table"):
        pw.io.s3.write([1, 2], "s3://b/p", "csv", aws_s3_settings=AWS)


@pytest.mark.parametrize("name", ["time", "diff"])
def test_reserved_column_names(name):
    t = small_table().select(**{name: pw.this.a, "b": pw.this.b})
    with pytest.raises(ValueError, match=f"'{name}'"):
        pw.io.s3.write(t, "s3://b/p", "json", aws_s3_settings=AWS)


def test_unsupported_column_types():
    t = small_table()
    wrapped = t.select(w=pw.apply_with_type(lambda a: pw.wrap_py_object(a), pw.PyObjectWrapper, pw.this.a))
    with pytest.raises(ValueError, match="column 'w'"):
        pw.io.s3.write(wrapped, "s3://b/p", "csv", aws_s3_settings=AWS)
    nested = t.select(z=pw.apply_with_type(lambda a: (a, pw.wrap_py_object(a)), tuple[int, pw.PyObjectWrapper], pw.this.a))
    with pytest.raises(ValueError, match="column 'z'"):
        pw.io.s3.write(nested, "s3://b/p", "csv", aws_s3_settings=AWS)


def test_settings_classes_are_checked():
    t = small_table()
    with pytest.raises(TypeError, match="minio_settings"):
        pw.io.minio.write(t, "p", "csv", minio_settings=AWS)
    with pytest.raises(TypeError, match="do_s3_settings"):
        pw.io.s3.write_to_digital_ocean(t, "p", AWS, "csv")
    with pytest.raises(TypeError, match="wasabi_s3_settings"):
        pw.io.s3.write_to_wasabi(t, "p", AWS, "csv")
    with pytest.raises(TypeError):
        pw.io.minio.write(t, "p", "csv")  # minio_settings is required


MINIO = pw.io.minio.MinIOSettings("http://127.0.0.1:9000", "b", "k", "s")
DO = pw.io.s3.DigitalOceanS3Settings("b", region="ams3", access_key="k", secret_access_key="s")


@pytest.mark.parametrize(
    "call,message",
    [
        # pw.io.minio.read takes its settings positionally: the writer says how it differs
        (lambda t: pw.io.minio.write(t, "readings/", MINIO, "csv"),
         "pw.io.minio.write() got a MinIOSettings as its 3rd positional argument, where format "
         "goes (minio_settings is keyword-only); call it as pw.io.minio.write(table, "
         "'readings/', format='csv', minio_settings=settings)"),
        (lambda t: pw.io.minio.write(t, "readings/", MINIO, write_interval_ms=1000),
         "pw.io.minio.write() got a MinIOSettings as its 3rd positional argument, where format "
         "goes (minio_settings is keyword-only); call it as pw.io.minio.write(table, "
         "'readings/', format='csv', minio_settings=settings, write_interval_ms=...)"),
        (lambda t: pw.io.minio.write(t, "readings/", "json"),
         "pw.io.minio.write() missing a required argument: 'minio_settings' (minio_settings is "
         "keyword-only); call it as pw.io.minio.write(table, 'readings/', format='json', "
         "minio_settings=settings)"),
        (lambda t: pw.io.s3.write(t, "s3://b/p", "json", AWS),
         "pw.io.s3.write() got an AwsS3Settings as its 4th positional argument, but it takes 3 "
         "positional arguments (aws_s3_settings is keyword-only); call it as "
         "pw.io.s3.write(table, 's3://b/p', format='json', aws_s3_settings=settings)"),
        (lambda t: pw.io.s3.write(t, AWS, "csv"),
         "pw.io.s3.write() got an AwsS3Settings as its 2nd positional argument, where path goes "
         "(aws_s3_settings is keyword-only); call it as pw.io.s3.write(table, "
         "'s3://bucket/prefix/', format='csv', aws_s3_settings=settings)"),
        (lambda t: pw.io.s3.write(t, "csv", "s3://b/p", aws_s3_settings=AWS),
         "pw.io.s3.write() got the S3 path 's3://b/p' as format (aws_s3_settings is "
         "keyword-only); call it as pw.io.s3.write(table, 's3://b/p', format='csv', "
         "aws_s3_settings=settings)"),
        (lambda t: pw.io.s3.write(t, "s3://b/p", format=AWS),
         "pw.io.s3.write() got an AwsS3Settings as format (aws_s3_settings is keyword-only); "
         "call it as pw.io.s3.write(table, 's3://b/p', format='csv', aws_s3_settings=settings)"),
        (lambda t: pw.io.s3.write_to_digital_ocean(t, "p", "csv", DO),
         "pw.io.s3.write_to_digital_ocean() got a DigitalOceanS3Settings as its 4th positional "
         "argument, where format goes; call it as pw.io.s3.write_to_digital_ocean(table, 'p', "
         "do_s3_settings=settings, format='csv')"),
        (lambda t: pw.io.s3.write_to_wasabi(t, "p", "my/format.lua"),
         "pw.io.s3.write_to_wasabi() missing a required argument: 'format'; call it as "
         "pw.io.s3.write_to_wasabi(table, 'p', wasabi_s3_settings=settings, "
         "format='my/format.lua')"),
    ],
)
def test_misplaced_arguments_show_the_right_call(call, message):
    with pytest.raises(TypeError) as e:
        call(small_table())
    assert str(e.value) == message


def test_the_checked_writers_keep_their_signatures():
    import inspect

    sig = inspect.signature(pw.io.minio.write)
    assert list(sig.parameters)[:4] == ["table", "path", "format", "minio_settings"]
    assert sig.parameters["minio_settings"].kind is inspect.Parameter.KEYWORD_ONLY
    assert pw.io.s3.write_to_wasabi.__name__ == "write_to_wasabi"


# --- addressing: an IP address or localhost endpoint without with_path_style -------------


def test_ip_endpoint_without_path_style_is_refused_at_the_call(minio, s3, bucket):
    t = small_table()
    keys_ = dict(access_key=minio.access_key, secret_access_key=minio.secret_key)
    for settings, param in [
        (pw.io.s3.AwsS3Settings(endpoint=minio.endpoint, region="us-east-1", **keys_), "aws_s3_settings"),
        (pw.io.minio.MinIOSettings(minio.endpoint, bucket, with_path_style=False, region="us-east-1", **keys_),
         "minio_settings"),
    ]:
        start = time.monotonic()
        with pytest.raises(s3sink.ConfigError) as e:
            pw.io.s3.write(t, f"s3://{bucket}/p", "csv", aws_s3_settings=settings)
        assert time.monotonic() - start < 1  # before any request
        assert str(e.value).startswith(f"endpoint '{minio.endpoint}' is an IP address, which virtual-hosted")
        assert str(e.value).endswith("(in Pathway's AwsS3Settings or MinIOSettings: with_path_style=True)")
    # the fix it names
    aws = pw.io.s3.AwsS3Settings(endpoint=minio.endpoint, region="us-east-1", with_path_style=True, **keys_)
    pw.io.s3.write(t, f"s3://{bucket}/p", "csv", aws_s3_settings=aws)
    run()
    assert len(keys(s3, bucket, "p/")) == 1


def test_localhost_without_path_style_names_the_fix(minio, bucket):
    localhost = minio.endpoint.replace("127.0.0.1", "localhost")
    aws = pw.io.s3.AwsS3Settings(endpoint=localhost, region="us-east-1", access_key=minio.access_key,
                                 secret_access_key=minio.secret_key)
    with pytest.raises(s3sink.UploadError) as e:
        pw.io.s3.write(small_table(), f"s3://{bucket}/p", "csv", aws_s3_settings=aws)
    assert "the server answered with its list of all buckets, so it ignored the bucket in the host name" in str(e.value)
    assert str(e.value).endswith("(in Pathway's AwsS3Settings or MinIOSettings: with_path_style=True)")


def test_localhost_virtual_hosted_where_the_server_serves_it(tmp_path):
    """Why localhost is not refused up front: a MinIO with MINIO_DOMAIN serves
    bucket.localhost, and Pathway's default addressing then works."""
    from helpers import MinioServer

    with MinioServer(tmp_path / "data", "admin", "admin-secret", env={"MINIO_DOMAIN": "localhost"}) as server:
        server.client().create_bucket(Bucket="vhosted")
        aws = pw.io.s3.AwsS3Settings(endpoint=f"http://localhost:{server.port}", region="us-east-1",
                                     access_key="admin", secret_access_key="admin-secret")
        pw.io.s3.write(small_table(), "s3://vhosted/p", "csv", aws_s3_settings=aws)
        run()
        assert len(keys(server.client(), "vhosted", "p/")) == 1


def test_sort_by_of_another_table_fails_without_leaking_a_writer(minio_settings, s3, bucket):
    t = small_table()
    other = small_table()
    with pytest.raises(ValueError):
        pw.io.minio.write(t, "p", "csv", minio_settings=minio_settings, sort_by=[other.a])
    assert keys(s3, bucket) == []


# --- settings mapping ------------------------------------------------------------------


def test_aws_settings_mapping():
    t = _resolve_target("s3://from-path/out/run1", AWS, "aws_s3_settings")
    assert (t.endpoint, t.region, t.bucket, t.prefix, t.virtual_hosted) == (
        "https://s3.us-east-1.amazonaws.com", "us-east-1", "b", "out/run1/", True,
    )
    assert (t.access_key, t.secret_key) == ("k", "s")
    assert "s'" not in repr(t) and "secret" not in repr(t).lower().replace("credentials=set", "")
    t = _resolve_target("s3://bkt", pw.io.s3.AwsS3Settings(region="eu-west-1", with_path_style=True), "x")
    assert (t.endpoint, t.bucket, t.prefix, t.virtual_hosted) == ("https://s3.eu-west-1.amazonaws.com", "bkt", "", False)
    t = _resolve_target(
        "out/", pw.io.s3.AwsS3Settings(bucket_name="b", endpoint="http://h:9000", session_token="tok", access_key="k", secret_access_key="s"), "x"
    )
    assert (t.endpoint, t.region, t.prefix, t.virtual_hosted, t.session_token) == ("http://h:9000", "us-east-1", "out/", True, "tok")
    # region names that Pathway's readers route to other providers
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(region="wa-eu-central-1"), "x")
    assert (t.endpoint, t.region) == ("https://s3.eu-central-1.wasabisys.com", "eu-central-1")
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(region="nyc3"), "x")
    assert (t.endpoint, t.region) == ("https://nyc3.digitaloceanspaces.com", "nyc3")


def test_region_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    t = _resolve_target("s3://b/p", None, "aws_s3_settings")
    assert (t.endpoint, t.region, t.bucket, t.virtual_hosted) == ("https://s3.ap-south-1.amazonaws.com", "ap-south-1", "b", True)


def test_other_providers_mapping():
    t = _resolve_target("p", pw.io.minio.MinIOSettings("http://127.0.0.1:9000", "mb", "k", "s"), "minio_settings")
    assert (t.endpoint, t.region, t.bucket, t.prefix, t.virtual_hosted) == ("http://127.0.0.1:9000", "us-east-1", "mb", "p/", False)
    t = _resolve_target("p", pw.io.minio.MinIOSettings("minio.local", "mb", "k", "s", with_path_style=False, region="r1"), "m")
    assert (t.endpoint, t.region, t.virtual_hosted) == ("minio.local", "r1", True)
    t = _resolve_target("p", pw.io.s3.DigitalOceanS3Settings("db", region="fra1", access_key="k", secret_access_key="s"), "do")
    assert (t.endpoint, t.region, t.bucket, t.virtual_hosted) == ("https://fra1.digitaloceanspaces.com", "fra1", "db", True)
    t = _resolve_target("p", pw.io.s3.WasabiS3Settings("wb", region="us-east-2", access_key="k", secret_access_key="s"), "w")
    assert (t.endpoint, t.region, t.bucket, t.virtual_hosted) == ("https://s3.us-east-2.wasabisys.com", "us-east-2", "wb", True)
    with pytest.raises(ValueError, match="region"):
        _resolve_target("p", pw.io.s3.WasabiS3Settings("wb"), "wasabi_s3_settings")


def test_settings_bucket_wins_over_the_path(caplog):
    with caplog.at_level(logging.WARNING, logger="s3sink"):
        t = _resolve_target("s3://other/p", AWS, "aws_s3_settings")
    assert t.bucket == "b"
    assert "other" in caplog.text


# --- credentials -------------------------------------------------------------------------


def test_keys_of_the_settings_come_in_pairs_else_the_writer_uses_the_aws_chain(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "envkey")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    t = _resolve_target("s3://b/p", AWS, "x")
    assert (t.access_key, t.secret_key, t.session_token) == ("k", "s", None)
    # no keys in the settings: the Writer signs with botocore's chain (test_credentials.py)
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(region="us-east-1", session_token="t"), "x")
    assert (t.access_key, t.secret_key, t.session_token) == (None, None, None)
    assert "credentials=the AWS chain" in repr(t)
    t = _resolve_target("p", pw.io.minio.MinIOSettings("http://127.0.0.1:9000", "mb", "", ""), "m")
    assert (t.access_key, t.secret_key) == (None, None)
    with pytest.raises(ValueError, match="minio_settings: only one of the access key and the secret access key"):
        _resolve_target("p", pw.io.minio.MinIOSettings("http://127.0.0.1:9000", "mb", "k", None), "minio_settings")


def test_region_and_endpoint_from_the_environment_and_the_profile(monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text("[profile cfg]\nregion = eu-north-1\n\n[profile ep]\nendpoint_url = http://10.1.2.3:9000\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "cfg")
    t = _resolve_target("s3://b/p", None, "x")
    assert (t.endpoint, t.region) == ("https://s3.eu-north-1.amazonaws.com", "eu-north-1")
    monkeypatch.setenv("AWS_PROFILE", "ep")
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(), "x")
    # an endpoint given by IP address is addressed path-style, as botocore does
    assert (t.endpoint, t.region, t.virtual_hosted) == ("http://10.1.2.3:9000", "us-east-1", False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://objects.example.com")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(), "x")
    assert (t.endpoint, t.region, t.virtual_hosted) == ("https://objects.example.com", "eu-west-3", True)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
    t = _resolve_target("p", pw.io.minio.MinIOSettings(None, "mb", "k", "s"), "m")
    assert t.endpoint == "http://127.0.0.1:9001"
    # what the settings say wins
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(endpoint="http://h:1", region="r"), "x")
    assert (t.endpoint, t.region) == ("http://h:1", "r")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    t = _resolve_target("s3://b/p", pw.io.s3.AwsS3Settings(), "x")
    assert t.endpoint == "https://s3.eu-west-3.amazonaws.com"


def test_writes_with_credentials_from_env_and_profile(monkeypatch, tmp_path, minio, s3, bucket):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", minio.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", minio.secret_key)
    settings = pw.io.s3.AwsS3Settings(bucket_name=bucket, endpoint=minio.endpoint, region="us-east-1", with_path_style=True)
    pw.io.s3.write(small_table(), "env", "csv", aws_s3_settings=settings)
    run()
    assert len(keys(s3, bucket, "env/")) == 1

    from pathway.internals.parse_graph import G

    G.clear()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    creds = tmp_path / "credentials"
    creds.write_text(f"[minio]\naws_access_key_id={minio.access_key}\naws_secret_access_key={minio.secret_key}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "minio")
    pw.io.s3.write(small_table(), "profile", "json", aws_s3_settings=settings)
    run()
    assert len(keys(s3, bucket, "profile/")) == 1


def test_secrets_never_in_errors_or_logs(minio, bucket, caplog):
    secret = "TopSecretValue-" + "q" * 20
    settings = pw.io.minio.MinIOSettings(minio.endpoint, bucket, minio.access_key, secret, region="us-east-1")
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(s3sink.UploadError) as ei:
            pw.io.minio.write(small_table(), "p", "csv", minio_settings=settings)
    assert ei.value.status == 403
    text = str(ei.value) + repr(ei.value) + caplog.text
    assert secret not in text and minio.secret_key not in text
    target = _resolve_target("p", settings, "minio_settings")
    assert secret not in repr(target)


# --- the observer's Python side ------------------------------------------------------------


def test_observer_logs_failed_uploads_and_exit_hook_drops_the_unfinished_minibatch(
    s3, bucket, proxied_kwargs, proxy, caplog
):
    obs = _pathway._S3Observer(**proxied_kwargs, prefix="obs/", columns=[("a", "int")], write_interval_ms=1, no_timer=True)
    assert isinstance(obs, pw.io.python.ConnectorObserver)
    proxy.rule = first(1, respond(503, "SlowDown"), method="PUT")
    obs.on_change(key=None, row={"a": 1}, time=2, is_addition=True)
    time.sleep(0.01)  # write_interval_ms
    with caplog.at_level(logging.WARNING, logger="s3sink"):
        obs.on_time_end(2)
    assert "(attempt 1, retried in" in caplog.text and "SlowDown" in caplog.text
    assert proxied_kwargs["secret_key"] not in caplog.text
    obs.on_change(key=None, row={"a": 2}, time=4, is_addition=True)
    obs.on_time_end(4)
    obs.on_change(key=None, row={"a": 3}, time=6, is_addition=True)  # unfinished minibatch
    _pathway._close_live_writers()  # what atexit runs
    assert obs.closed
    bodies = [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys(s3, bucket, "obs/")]
    # the failed object is retried as it was (same key, same rows), then the complete
    # minibatch; the unfinished one was never acknowledged to Pathway: a restart resends it
    assert bodies == [b'"a","time","diff"\n"1","2","1"\n', b'"a","time","diff"\n"2","4","1"\n']
