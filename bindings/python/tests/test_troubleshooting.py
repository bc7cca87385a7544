"""docs/troubleshooting.md quotes the messages users meet; each quoted message is produced
here for real and compared with the document, so the guide cannot drift from the runtime.

Two MinIO servers of their own: one configured with a region (eu-central-1) and a user
whose policy allows writing under one prefix only, one serving HTTPS with a self-signed
certificate. Clock skew and AWS's PermanentRedirect cannot be had from MinIO: a proxy in
front of it answers as S3 does. The document writes the endpoints as
http://127.0.0.1:9000 (https:// for TLS); the numbers that vary from run to run (retry
attempts, milliseconds, the time in a key) are compared as "N".
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pathway as pw
import pytest

import s3sink

from faultproxy import STALL, FaultProxy, always, respond
from helpers import ROOT, MinioServer

DOC = ROOT / "docs" / "troubleshooting.md"
ADMIN, ADMIN_SECRET = "admin", "admin-secret"
REGION = "eu-central-1"
WRITER, WRITER_SECRET = "writer", "writer-secret"  # may write under allowed/ only


def documented() -> dict[str, str]:
    """The message under every `<!-- message: id -->` marker of the document."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- message: ([\w-]+) -->\n```text\n(.*?)\n```", text, re.S)
    ids = [i for i, _ in found]
    assert len(ids) == len(set(ids)), "a message id is used twice"
    return dict(found)


def variable_parts(message: str) -> str:
    """The message with what varies between runs as N."""
    for pattern, fixed in [
        (r"after \d+ attempts over \d+ s", "after N attempts over N s"),
        (r"after \d+ ms\b", "after N ms"),
        (r"after \d+ milliseconds", "after N milliseconds"),
        (r"\d{8}T\d{6}\.\d{3}Z-\d{10}", "<time>-<sequence>"),
        (r"OpenSSL/[\w.]+", "OpenSSL/N"),
    ]:
        message = re.sub(pattern, fixed, message)
    return message


class Servers:
    def __init__(self, tmp: Path) -> None:
        certs = tmp / "certs"
        certs.mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(certs / "private.key"), "-out", str(certs / "public.crt"),
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )
        self.ca_file = str(certs / "public.crt")
        self.plain = MinioServer(tmp / "plain", ADMIN, ADMIN_SECRET, env={"MINIO_SITE_REGION": REGION})
        self.tls = MinioServer(tmp / "tls", ADMIN, ADMIN_SECRET, certs_dir=certs)
        self.proxy: FaultProxy | None = None  # in front of the plain server, once it runs

    def __enter__(self) -> "Servers":
        self.plain.start()
        self.tls.start()
        self.plain.client(REGION).create_bucket(
            Bucket="s3sink", CreateBucketConfiguration={"LocationConstraint": REGION})
        self.tls.client().create_bucket(Bucket="s3sink")
        self._add_writer_user()
        self.proxy = FaultProxy(self.plain.endpoint).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.proxy:
            self.proxy.close()
        self.plain.kill()
        self.tls.kill()

    def _add_writer_user(self) -> None:
        # the admin API's payload is encrypted with pycryptodome, whose libraries are
        # loaded with RTLD_DEEPBIND unless told otherwise, which ASan refuses
        os.environ.setdefault("PYCRYPTODOME_DISABLE_DEEPBIND", "1")
        from minio import MinioAdmin
        from minio.credentials import StaticProvider

        admin = MinioAdmin(endpoint=f"127.0.0.1:{self.plain.port}",
                           credentials=StaticProvider(ADMIN, ADMIN_SECRET), secure=False)
        admin.user_add(WRITER, WRITER_SECRET)
        # the policy of docs/troubleshooting.md's example, for the prefix allowed/
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::s3sink"]},
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
                 "Resource": ["arn:aws:s3:::s3sink/allowed/*"]},
            ],
        }
        admin.policy_add("s3sink-allowed", policy=policy)
        admin.policy_set("s3sink-allowed", user=WRITER)

    def canonical(self, message: str) -> str:
        """The message as the document writes it: every server at port 9000."""
        for endpoint in (self.plain.endpoint, self.tls.endpoint, self.proxy.endpoint):
            port = endpoint.rsplit(":", 1)[1]
            message = message.replace(f"127.0.0.1:{port}", "127.0.0.1:9000")
            message = message.replace(f"localhost:{port}", "localhost:9000")
        return variable_parts(message)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with Servers(tmp_path_factory.mktemp("troubleshooting")) as s:
        yield s


def settings(servers: Servers, **kw):
    """Writer arguments for the plain server; None drops an argument."""
    args = dict(endpoint=servers.plain.endpoint, region=REGION, bucket="s3sink",
                access_key=ADMIN, secret_key=ADMIN_SECRET, columns=[("id", "int")],
                max_retry_ms=1500)
    args.update(kw)
    return {k: v for k, v in args.items() if v is not None}


def opening(servers: Servers, **kw) -> str:
    """The message of a Writer that fails to open."""
    with pytest.raises(s3sink.SinkError) as e:
        s3sink.Writer(**settings(servers, **kw))
    return str(e.value)


def uploading(servers: Servers, **kw) -> str:
    """The message of a Writer that opens, then fails to upload one row."""
    w = s3sink.Writer(**settings(servers, **kw))
    w.on_change(None, {"id": 1}, 2, True)
    w.on_time_end(2)
    with pytest.raises(s3sink.UploadError) as e:
        w.close()
    w.discard()
    return str(e.value)


def proxied(servers: Servers, action, **kw) -> str:
    servers.proxy.rule = always(action)
    try:
        return opening(servers, endpoint=servers.proxy.endpoint, **kw)
    finally:
        servers.proxy.rule = None


def pathway_call(call) -> str:
    """The last line of the traceback of a failed call."""
    with pytest.raises(Exception) as e:
        call()
    cls = type(e.value)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return f"{name}: {e.value}"


def positional_settings(servers: Servers) -> str:
    t = pw.debug.table_from_markdown("reading\n1")
    minio = pw.io.minio.MinIOSettings(servers.plain.endpoint, "s3sink", ADMIN, ADMIN_SECRET)
    return pathway_call(lambda: pw.io.minio.write(t, "readings/", minio, "csv"))


def ip_virtual_hosted(servers: Servers) -> str:
    t = pw.debug.table_from_markdown("reading\n1")
    aws = pw.io.s3.AwsS3Settings(endpoint=servers.plain.endpoint, region=REGION,
                                 access_key=ADMIN, secret_access_key=ADMIN_SECRET)
    return pathway_call(lambda: pw.io.s3.write(t, "s3://s3sink/readings/", "csv", aws_s3_settings=aws))


def through_proxy(servers: Servers, proxy: str) -> str:
    """libcurl takes its proxy from the environment, at every request."""
    saved = {k: os.environ.pop(k, None) for k in ("http_proxy", "no_proxy", "NO_PROXY")}
    os.environ["http_proxy"] = proxy
    try:
        return opening(servers)
    finally:
        del os.environ["http_proxy"]
        os.environ.update({k: v for k, v in saved.items() if v is not None})


SKEWED = "The difference between the request time and the server's time is too large."
REDIRECTED = "The bucket you are attempting to access must be addressed using the specified endpoint."

# id in the document -> how the message is produced
SCENARIOS = {
    "positional-settings": positional_settings,
    "wrong-secret": lambda s: opening(s, secret_key="not-the-secret"),
    "wrong-access-key": lambda s: opening(s, access_key="nobody"),
    "clock-skew": lambda s: proxied(s, respond(403, "RequestTimeTooSkewed", SKEWED)),
    "prefix-denied": lambda s: uploading(s, access_key=WRITER, secret_key=WRITER_SECRET, prefix="readings/"),
    "wrong-region": lambda s: opening(s, region="us-east-1"),
    "permanent-redirect": lambda s: proxied(
        s, respond(301, "PermanentRedirect", REDIRECTED, {"x-amz-bucket-region": "eu-west-1"}),
        region="us-east-1"),
    "ip-virtual-hosted": ip_virtual_hosted,
    "localhost-virtual-hosted": lambda s: opening(
        s, endpoint=f"http://localhost:{s.plain.port}", virtual_hosted=True),
    "unresolved-virtual-hosted": lambda s: opening(
        s, endpoint="http://minio.invalid:9000", virtual_hosted=True),
    "not-running": lambda s: opening(s, endpoint="http://127.0.0.1:1"),
    "self-signed": lambda s: opening(s, endpoint=s.tls.endpoint, region="us-east-1"),
    "https-to-http": lambda s: opening(s, endpoint=s.plain.endpoint.replace("http:", "https:")),
    "http-to-https": lambda s: opening(s, endpoint=s.tls.endpoint.replace("https:", "http:"),
                                       region="us-east-1"),
    "no-bucket": lambda s: opening(s, bucket="readings"),
    "proxy-unresolved": lambda s: through_proxy(s, "http://proxy.invalid:3128"),
    "timeout": lambda s: proxied(s, STALL, request_timeout_ms=1000),
}


def test_every_documented_message_is_produced():
    assert sorted(documented()) == sorted(SCENARIOS)


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_documented_message(case, servers):
    produced = servers.canonical(SCENARIOS[case](servers))
    print(f"{case}\n{produced}")  # what the document should say, when it does not
    assert produced == variable_parts(documented().get(case, ""))


def test_the_fixes_work(servers):
    """What the document prescribes makes the same writers work."""
    for kw in (
        dict(prefix="allowed/readings/", access_key=WRITER, secret_key=WRITER_SECRET),
        dict(endpoint=f"http://localhost:{servers.plain.port}"),
        dict(endpoint=servers.tls.endpoint, region="us-east-1", ca_file=servers.ca_file),
        dict(endpoint=servers.tls.endpoint, region="us-east-1", insecure_tls=True),
        dict(bucket="readings", create_bucket=True),
    ):
        w = s3sink.Writer(**settings(servers, **kw))
        w.on_change(None, {"id": 1}, 2, True)
        w.on_time_end(2)
        w.close()
        assert w.stats["objects"] == 1, kw
