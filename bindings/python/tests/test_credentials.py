"""Credentials against the real MinIO: botocore's chain (environment, shared files and
profiles, credential_process, AssumeRole, web identity, SSO, container and instance
metadata), the endpoint it configures, refreshes while a writer runs (temporary
credentials of MinIO's STS that really stop working), callables of the caller's, the GIL,
and anonymous requests.

The metadata services, the SSO portal and the web-identity STS are small local HTTP
servers handing out real MinIO credentials: botocore's side of each flow is real, and so
is every request the writer signs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pathway as pw
import pytest

import s3sink
from helpers import TESTS_DIR, ScriptedSubject, keys, python_env, run
from sts import assume_role

COLS = [("a", "int")]
STS_PROCESS = TESTS_DIR / "scripts" / "sts_credential_process.py"


def write_rows(w, n: int, pause: float = 0.0, start: int = 0) -> None:
    for i in range(start, start + n):
        w.on_change(None, {"a": i}, 2 * i + 2, True)
        w.on_time_end(2 * i + 2)
        if pause:
            time.sleep(pause)


def access_key_of(authorization: str) -> str:
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


def record_signers(proxy) -> list[tuple[float, str]]:
    """(time, access key) of every PUT through the proxy, as it passes."""
    signed: list[tuple[float, str]] = []

    def rule(req):
        if req.method == "PUT":
            signed.append((time.time(), access_key_of(req.headers.get("authorization", "Credential=-/"))))
        return None

    proxy.rule = rule
    return signed


class LocalServer:
    """A small HTTP server on 127.0.0.1: `answer(method, path, headers, body)` returns
    (status, content type, body); every request is kept in `requests`."""

    def __init__(self, answer: Callable[[str, str, dict, bytes], tuple[int, str, str]]) -> None:
        self.requests: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path))
                try:
                    status, ctype, text = answer(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                except Exception as e:  # noqa: BLE001 - the client sees it, and so does the test
                    server.errors.append(e)
                    status, ctype, text = 500, "text/plain", repr(e)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LocalServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- the environment, the shared files, profiles -----------------------------------------


def test_environment(monkeypatch, minio, s3, bucket):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", minio.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", minio.secret_key)
    w = s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="env/", columns=COLS)
    assert (w.credentials_source, w.anonymous) == ("the credentials provider (botocore: env)", False)
    write_rows(w, 1)
    w.close()
    assert w.credentials_source == "the credentials provider (botocore: env)"
    assert len(keys(s3, bucket, "env/")) == 1


def test_session_token_from_the_environment(monkeypatch, minio, s3, bucket):
    t = assume_role(300)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", t["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", t["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", t["SessionToken"])
    with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="sts/", columns=COLS) as w:
        write_rows(w, 1)
    assert len(keys(s3, bucket, "sts/")) == 1


def test_profiles_of_the_credentials_and_config_files(monkeypatch, tmp_path, minio, s3, bucket):
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = wrongkey\naws_secret_access_key = wrongsecret\n\n"
        f"[work]\naws_access_key_id = {minio.access_key}\naws_secret_access_key = {minio.secret_key}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile cfg]\naws_access_key_id = {minio.access_key}\naws_secret_access_key = {minio.secret_key}\n"
        "region = us-east-1\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    kw = dict(endpoint=minio.endpoint, bucket=bucket, columns=COLS)

    with pytest.raises(s3sink.UploadError, match=r"InvalidAccessKeyId.*\[credentials from the credentials provider \(botocore: shared-credentials-file\)\]"):
        s3sink.Writer(**kw)  # the default profile's keys are wrong
    monkeypatch.setenv("AWS_PROFILE", "work")
    with s3sink.Writer(**kw, prefix="work/") as w:
        assert w.credentials_source == "the credentials provider (botocore: shared-credentials-file)"
        write_rows(w, 1)
    monkeypatch.setenv("AWS_PROFILE", "cfg")
    with s3sink.Writer(**kw, prefix="cfg/") as w:
        assert w.credentials_source == "the credentials provider (botocore: config-file)"
        write_rows(w, 1)
    # the profile option names one, and then the environment's keys do not count
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrongkey")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrongsecret")
    with s3sink.Writer(**kw, prefix="opt/", profile="work") as w:
        write_rows(w, 1)
    assert [len(keys(s3, bucket, p)) for p in ("work/", "cfg/", "opt/")] == [1, 1, 1]
    with pytest.raises(s3sink.ConfigError, match="nosuch"):
        s3sink.Writer(**kw, profile="nosuch")


def test_explicit_keys_win(monkeypatch, minio, s3, bucket):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrongkey")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrongsecret")
    with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="k/", columns=COLS,
                       access_key=minio.access_key, secret_key=minio.secret_key) as w:
        assert w.credentials_source == "the access_key option"
        write_rows(w, 1)
    settings = pw.io.minio.MinIOSettings(minio.endpoint, bucket, minio.access_key, minio.secret_key, region="us-east-1")
    pw.io.minio.write(pw.debug.table_from_markdown("a\n1"), "pw/", "csv", minio_settings=settings)
    run()
    assert len(keys(s3, bucket, "k/")) == 1 and len(keys(s3, bucket, "pw/")) == 1


# --- endpoint ------------------------------------------------------------------------------


def test_endpoint_from_the_environment_and_the_profile(monkeypatch, tmp_path, minio, s3, bucket):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", minio.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", minio.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # the S3 one wins
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", minio.endpoint)
    with s3sink.Writer(bucket=bucket, prefix="e1/", columns=COLS) as w:
        write_rows(w, 1)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    config = tmp_path / "config"
    config.write_text(f"[profile ep]\nendpoint_url = {minio.endpoint}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "ep")
    with s3sink.Writer(bucket=bucket, prefix="e2/", columns=COLS) as w:
        write_rows(w, 1)
    # Pathway: AwsS3Settings without an endpoint went to AWS before; now to the
    # configured one (an IP address, so path-style)
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_ENDPOINT_URL", minio.endpoint)
    pw.io.s3.write(pw.debug.table_from_markdown("a\n1"), f"s3://{bucket}/e3", "csv",
                   aws_s3_settings=pw.io.s3.AwsS3Settings(region="us-east-1"))
    run()
    assert [len(keys(s3, bucket, f"e{i}/")) for i in (1, 2, 3)] == [1, 1, 1]


# --- credential_process and refreshes during a run -----------------------------------------


def issued(log: Path) -> list[tuple[float, str, float]]:
    """(issued_at, access key, expires_at) of each run of the credential process."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        at, key, until = line.split()
        out.append((float(at), key, float(until)))
    return out


def test_credential_process_runs_again_as_its_credentials_expire(monkeypatch, tmp_path, minio, proxy, bucket):
    """Credentials that stop working 6 s after they are issued (MinIO denies them then,
    which would stop uploads); the sink's own thread uploads, so it is the one that asks
    botocore again, with the GIL."""
    log = tmp_path / "issued"
    config = tmp_path / "config"
    config.write_text(f"[profile proc]\ncredential_process = {sys.executable} {STS_PROCESS} {log} 6\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "proc")
    signed = record_signers(proxy)
    w = s3sink.Writer(endpoint=proxy.endpoint, bucket=bucket, prefix="proc/", columns=COLS,
                      write_interval_ms=300, background_uploads=True)
    assert w.credentials_source == "the credentials provider (botocore: custom-process)"
    n = 0
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        write_rows(w, 1, pause=0.1, start=n)
        n += 1
    w.close()
    runs = issued(log)
    assert len(runs) >= 3, runs
    assert w.failure is None and w.stats["failed_uploads"] == 0
    assert w.stats["rows"] == n and w.stats["objects"] >= 10
    expiry = {key: until for _, key, until in runs}
    for at, key in signed:  # every upload signed with credentials valid at the time
        assert key in expiry and at < expiry[key], (at, key)
    assert len({key for _, key in signed}) >= 3


def test_credentials_refreshed_during_a_pathway_run(monkeypatch, minio, s3, bucket):
    """A streaming Pathway pipeline on container credentials (ECS) that stop working 5 s
    after they are served: the server is asked again during the run, and every row
    arrives."""

    def answer(method, path, headers, body):
        t = assume_role(5)
        return 200, "application/json", json.dumps({
            "AccessKeyId": t["AccessKeyId"], "SecretAccessKey": t["SecretAccessKey"],
            "Token": t["SessionToken"], "Expiration": t["Expiration"]})

    class Row(pw.Schema):
        a: int

    with LocalServer(answer) as server:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.endpoint + "/v2/credentials")
        plan = [step for i in range(60) for step in (("row", {"a": i}), ("sleep", 0.2))]
        subject = ScriptedSubject(plan)
        table = pw.io.python.read(subject, schema=Row, autocommit_duration_ms=50)
        settings = pw.io.s3.AwsS3Settings(bucket_name=bucket, endpoint=minio.endpoint, region="us-east-1",
                                          with_path_style=True)
        pw.io.s3.write(table, "ecs/", "csv", aws_s3_settings=settings, write_interval_ms=500)
        run()
        served = len(server.requests)
    assert served >= 3, served
    rows = sorted(int(line.split(b",")[0].strip(b'"')) for k in keys(s3, bucket, "ecs/")
                  for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines()[1:])
    assert rows == list(range(60))


# --- metadata services, AssumeRole, web identity, SSO ---------------------------------------


def test_instance_metadata_imdsv2(monkeypatch, minio, s3, bucket):
    token = "imds-session-token"
    role = "s3sink-writer"

    def answer(method, path, headers, body):
        if method == "PUT" and path == "/latest/api/token":
            return 200, "text/plain", token
        if headers.get("x-aws-ec2-metadata-token") != token:
            return 401, "text/plain", ""
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, "text/plain", role
        if path == f"/latest/meta-data/iam/security-credentials/{role}":
            t = assume_role(600)
            return 200, "application/json", json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": t["AccessKeyId"],
                "SecretAccessKey": t["SecretAccessKey"], "Token": t["SessionToken"],
                "Expiration": t["Expiration"]})
        return 404, "text/plain", ""

    with LocalServer(answer) as server:
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.endpoint + "/")
        with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="imds/", columns=COLS) as w:
            assert w.credentials_source == "the credentials provider (botocore: iam-role)"
            write_rows(w, 2)
        assert ("PUT", "/latest/api/token") in server.requests
    assert len(keys(s3, bucket, "imds/")) == 1


def test_assume_role_profile(monkeypatch, tmp_path, minio, s3, bucket):
    """role_arn + source_profile: botocore calls STS AssumeRole, here MinIO's."""
    creds = tmp_path / "credentials"
    creds.write_text(f"[base]\naws_access_key_id = {minio.access_key}\naws_secret_access_key = {minio.secret_key}\n")
    config = tmp_path / "config"
    config.write_text("[profile writer]\nrole_arn = arn:minio:iam:::role/s3sink-writer\nsource_profile = base\n"
                      "region = us-east-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "writer")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", minio.endpoint)
    with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="role/", columns=COLS) as w:
        assert w.credentials_source == "the credentials provider (botocore: assume-role)"
        write_rows(w, 1)
    assert len(keys(s3, bucket, "role/")) == 1


def test_web_identity(monkeypatch, tmp_path, minio, s3, bucket):
    """AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (EKS/IRSA): botocore sends the token to
    STS AssumeRoleWithWebIdentity, here a local one handing out MinIO's credentials."""
    token_file = tmp_path / "token"
    token_file.write_text("the-service-account-token")
    seen = []

    def answer(method, path, headers, body):
        form = dict(p.split("=", 1) for p in body.decode().split("&"))
        seen.append(form)
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("WebIdentityToken") != "the-service-account-token":
            return 400, "text/xml", "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"
        t = assume_role(600)
        return 200, "text/xml", (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{t['AccessKeyId']}</AccessKeyId><SecretAccessKey>{t['SecretAccessKey']}</SecretAccessKey>"
            f"<SessionToken>{t['SessionToken']}</SessionToken><Expiration>{t['Expiration']}</Expiration>"
            "</Credentials><SubjectFromWebIdentityToken>system:serviceaccount:ns:writer</SubjectFromWebIdentityToken>"
            "</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>")

    with LocalServer(answer) as sts:
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/writer")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
        with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="irsa/", columns=COLS) as w:
            assert w.credentials_source == "the credentials provider (botocore: assume-role-with-web-identity)"
            write_rows(w, 1)
    assert seen and seen[0]["RoleArn"].startswith("arn%3Aaws%3Aiam")
    assert len(keys(s3, bucket, "irsa/")) == 1


def test_sso(monkeypatch, tmp_path, minio, s3, bucket):
    """An SSO profile with a cached login: botocore asks the SSO portal (a local one) for
    the role's credentials with the cached token."""
    import hashlib

    start_url = "https://s3sink-test.awsapps.com/start"
    home = tmp_path / "home"
    cache = home / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    (cache / (hashlib.sha1(start_url.encode()).hexdigest() + ".json")).write_text(json.dumps({
        "startUrl": start_url, "region": "us-east-1", "accessToken": "sso-access-token",
        "expiresAt": "2099-01-01T00:00:00Z"}))
    config = tmp_path / "config"
    config.write_text(f"[profile sso]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
                      "sso_account_id = 123456789012\nsso_role_name = writer\n")

    def answer(method, path, headers, body):
        if headers.get("x-amz-sso_bearer_token") != "sso-access-token" or not path.startswith("/federation/credentials"):
            return 401, "application/json", '{"message": "no"}'
        t = assume_role(600)
        return 200, "application/json", json.dumps({"roleCredentials": {
            "accessKeyId": t["AccessKeyId"], "secretAccessKey": t["SecretAccessKey"],
            "sessionToken": t["SessionToken"], "expiration": int(t["expires_at"] * 1000)}})

    import botocore.credentials

    with LocalServer(answer) as portal:
        # botocore reads ~/.aws/sso/cache from the home folder it found at import
        monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.setenv("AWS_PROFILE", "sso")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSO", portal.endpoint)
        with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="sso/", columns=COLS) as w:
            assert w.credentials_source == "the credentials provider (botocore: sso)"
            write_rows(w, 1)
        assert any("role_name=writer" in p and "account_id=123456789012" in p for _, p in portal.requests)
    assert len(keys(s3, bucket, "sso/")) == 1


# --- a callable of the caller's --------------------------------------------------------------


def test_a_callable_is_asked_again_as_its_credentials_near_expiry(minio, s3, bucket):
    calls = []

    def credentials():
        calls.append(time.time())
        return {"access_key": minio.access_key, "secret_key": minio.secret_key,
                "expires_at": time.time() + 2, "source": "a test"}

    with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="fn/", columns=COLS,
                       credentials=credentials, write_interval_ms=1, no_timer=True) as w:
        assert w.credentials_source == "the credentials provider (a test)"
        for i in range(8):
            write_rows(w, 1, start=i)
            w.flush(True)
            time.sleep(0.5)
    assert 3 <= len(calls) <= 8, calls  # cached for about half their life, not per request
    assert len(keys(s3, bucket, "fn/")) == 8
    # botocore's frozen credentials are a tuple; no expiry: asked once
    tuples = []
    with s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="tuple/", columns=COLS, no_timer=True,
                       credentials=lambda: tuples.append(1) or (minio.access_key, minio.secret_key, None)) as w:
        write_rows(w, 3)
        w.flush(True)
        write_rows(w, 3, start=3)
    assert len(tuples) == 1 and len(keys(s3, bucket, "tuple/")) == 2


def test_callable_failures(minio, bucket):
    kw = dict(endpoint=minio.endpoint, bucket=bucket, columns=COLS)
    calls = []

    def flaky():
        calls.append(1)
        raise ConnectionError("the vault did not answer")

    with pytest.raises(s3sink.UploadError, match=r"attempts over .*cannot get credentials from the credentials "
                       r"provider: ConnectionError: the vault did not answer") as ei:
        s3sink.Writer(**kw, credentials=flaky, max_retry_ms=1500)
    assert len(calls) >= 2  # transient: retried
    calls.clear()

    def refused():
        calls.append(1)
        raise s3sink.ConfigError("no vault configured")

    with pytest.raises(s3sink.ConfigError, match="cannot get credentials from the credentials provider: no vault configured"):
        s3sink.Writer(**kw, credentials=refused)
    assert len(calls) == 1  # ConfigError: not retried
    for bad, match in [
        (lambda: "keys", "returned a str: return a dict"),
        (lambda: {"access_key": "k"}, "secret_key is missing"),
        (lambda: {"access_key": "k", "secret_key": 5}, "secret_key is int: it must be a str"),
        (lambda: {"access_key": "k", "secret_key": "s", "expires_at": "soon"}, "expires_at is a str"),
    ]:
        with pytest.raises(s3sink.ConfigError, match=match):
            s3sink.Writer(**kw, credentials=bad)
    with pytest.raises(TypeError, match="credentials must be a callable"):
        s3sink.Writer(**kw, credentials="minioadmin")
    with pytest.raises(s3sink.ConfigError, match="a credentials provider is given, and access_key/secret_key too"):
        s3sink.Writer(**kw, credentials=lambda: ("k", "s"), access_key="k", secret_key="s")
    assert str(ei.value).count("the vault") == 1


def test_no_deadlock_when_the_sinks_thread_needs_the_gil(minio, s3, bucket):
    """The sink's thread asks for credentials while the host's thread writes with the GIL
    and waits for room (a tiny buffer): the wait releases the GIL, so the callable runs."""
    threads = set()

    def credentials():
        threads.add(threading.get_ident())
        return {"access_key": minio.access_key, "secret_key": minio.secret_key, "expires_at": time.time() + 1}

    w = s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="gil/", columns=COLS, credentials=credentials,
                      write_interval_ms=50, max_buffer_bytes=4096, background_uploads=True)
    deadline = time.monotonic() + 4
    n = 0
    while time.monotonic() < deadline:
        for _ in range(200):
            w.on_change(None, {"a": n}, 2, True)
            n += 1
        w.on_time_end(2)
    w.close()
    assert threading.get_ident() in threads and len(threads) >= 2  # the sink's thread called it too
    assert w.stats["rows"] == n


def test_interpreter_exit_with_a_writer_left_open(minio, bucket, tmp_path):
    """A writer nobody closed, whose thread keeps asking a callable: the process still
    exits (Python ends threads waiting for the GIL at exit; the sink survives that)."""
    script = tmp_path / "left_open.py"
    script.write_text(
        "import time, s3sink\n"
        f"KEYS = {{'access_key': {minio.access_key!r}, 'secret_key': {minio.secret_key!r}}}\n"
        f"w = s3sink.Writer(endpoint={minio.endpoint!r}, bucket={bucket!r}, prefix='exit/', columns=[('a', 'int')],\n"
        "    write_interval_ms=5, background_uploads=True,\n"
        "    credentials=lambda: {**KEYS, 'expires_at': time.time() + 0.5})\n"
        "for i in range(2000):\n"
        "    w.on_change(None, {'a': i}, 2 * i + 2, True)\n"
        "    w.on_time_end(2 * i + 2)\n"
        "print('exiting', flush=True)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=python_env())
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout


# --- anonymous ---------------------------------------------------------------------------------


def test_no_credentials_is_an_error_and_anonymous_says_so(minio, bucket, caplog):
    kw = dict(endpoint=minio.endpoint, bucket=bucket, columns=COLS)
    with pytest.raises(s3sink.ConfigError, match=r"no AWS credentials found by botocore \(the environment, the shared "
                       r"credentials and config files for profile 'default'.*pass anonymous=True"):
        s3sink.Writer(**kw)
    with pytest.raises(s3sink.UploadError, match=r"AccessDenied|access denied") as ei:
        s3sink.Writer(**kw, anonymous=True)
    assert ei.value.status == 403
    assert "the request was anonymous (the anonymous option): nothing was signed" in str(ei.value)
    with pytest.raises(s3sink.ConfigError, match="anonymous is set, and access_key/secret_key too"):
        s3sink.Writer(**kw, anonymous=True, access_key="k", secret_key="s")
    # the Pathway writers take it as an option
    with pytest.raises(s3sink.UploadError, match="the request was anonymous"):
        pw.io.s3.write(pw.debug.table_from_markdown("a\n1"), f"s3://{bucket}/anon", "csv", anonymous=True,
                       aws_s3_settings=pw.io.s3.AwsS3Settings(endpoint=minio.endpoint, region="us-east-1",
                                                              with_path_style=True))


def test_anonymous_writes_to_a_public_bucket(minio, s3, bucket, caplog):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]},
                       "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:PutObject", "s3:GetObject"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
    import logging

    with caplog.at_level(logging.INFO, logger="s3sink"):
        w = s3sink.Writer(endpoint=minio.endpoint, bucket=bucket, prefix="public/", columns=COLS, anonymous=True)
    assert w.anonymous and "requests are anonymous (anonymous=True)" in caplog.text
    write_rows(w, 1)
    w.close()
    assert w.anonymous
    assert len(keys(s3, bucket, "public/")) == 1
