"""storage_class, sse, sse_kms_key_id, tags and metadata through the Pathway writers,
against the real MinIO (started with a KMS key by tools/minio.sh): boto3's head_object and
get_object_tagging show what every object carries."""

from __future__ import annotations

import os

import pathway as pw
import pytest

import s3sink
from helpers import objects, run, unpack


class Row(pw.Schema):
    id: int
    name: str


def write_two_objects(minio_settings, **options) -> None:
    """Two objects under out/ (two runs), with the writer options given."""
    from pathway.internals.parse_graph import G

    for part in range(2):
        rows = [(part * 10 + i, f"n{i}") for i in range(10)]
        pw.io.minio.write(pw.debug.table_from_rows(Row, rows), "out", "csv", minio_settings=minio_settings,
                          **options)
        run()
        G.clear()


def heads(s3, bucket: str) -> list[dict]:
    listed = objects(s3, bucket, "out/")
    assert len(listed) == 2
    return [s3.head_object(Bucket=bucket, Key=key) | {"Key": key, "Body": body} for key, body in listed]


def test_storage_class_tags_and_metadata_are_on_every_object(s3, bucket, minio_settings):
    tags = {"team": "data eng", "path": "a/b:c@d+e=f", "Case": "Sensitive", "empty": ""}  # MinIO: ASCII only
    metadata = {"source": "pathway", "run-id": "42", "note": "free text, with punctuation!", "blank": ""}
    write_two_objects(minio_settings, storage_class="REDUCED_REDUNDANCY", tags=tags, metadata=metadata)
    for head in heads(s3, bucket):
        assert head["StorageClass"] == "REDUCED_REDUNDANCY"
        assert head["Metadata"] == metadata | {"s3sink-sha256": head["Metadata"]["s3sink-sha256"]}
        tagging = s3.get_object_tagging(Bucket=bucket, Key=head["Key"])["TagSet"]
        assert {t["Key"]: t["Value"] for t in tagging} == tags


def test_sse_s3(s3, bucket, minio_settings):
    write_two_objects(minio_settings, sse="AES256", compression="gzip")
    for head in heads(s3, bucket):
        assert head["ServerSideEncryption"] == "AES256"
        assert unpack(head["Key"], head["Body"]).startswith(b'"id","name","time","diff"\n')


@pytest.mark.parametrize("key_id", [os.environ.get("S3SINK_TEST_KMS_KEY", "s3sink-test-key"), None])
def test_sse_kms(key_id, s3, bucket, minio_settings):
    options = {"sse": "aws:kms"} | ({"sse_kms_key_id": key_id} if key_id else {})
    write_two_objects(minio_settings, **options)
    for head in heads(s3, bucket):
        assert head["ServerSideEncryption"] == "aws:kms"
        # MinIO's only key serves as the default; it reports the key as an ARN
        assert head["SSEKMSKeyId"].endswith(os.environ.get("S3SINK_TEST_KMS_KEY", "s3sink-test-key"))
        assert head["Body"].count(b"\n") == 11  # readable: the server decrypts


def test_pw_io_s3_write_takes_them_too(minio, s3, bucket):
    settings = pw.io.s3.AwsS3Settings(endpoint=minio.endpoint, access_key=minio.access_key,
                                      secret_access_key=minio.secret_key, with_path_style=True,
                                      region="us-east-1")
    table = pw.debug.table_from_rows(Row, [(1, "a")])
    pw.io.s3.write(table, f"s3://{bucket}/out", "json", aws_s3_settings=settings, tags={"k": "v"},
                   metadata={"m": "v"}, storage_class="STANDARD", compression="zstd")
    run()
    ((key, _),) = objects(s3, bucket, "out/")
    assert key.endswith(".json.zst")
    assert s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] == [{"Key": "k", "Value": "v"}]
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["m"] == "v"


def test_bad_values_are_refused_at_construction(writer_kwargs):
    cols = [("id", "int")]
    with pytest.raises(s3sink.ConfigError, match="storage_class 'Standard' is not spelt as S3 spells it: write 'STANDARD'"):
        s3sink.Writer(columns=cols, storage_class="Standard", **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="sse_kms_key_id is set but sse is not set"):
        s3sink.Writer(columns=cols, sse_kms_key_id="k", **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="tags: 11 tags, S3 keeps at most 10"):
        s3sink.Writer(columns=cols, tags={f"k{i}": "v" for i in range(11)}, **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="metadata: name 'Team' has upper-case letters"):
        s3sink.Writer(columns=cols, metadata={"Team": "x"}, **writer_kwargs)
    with pytest.raises(TypeError, match="option 'tags' must map str to str, not hold int"):
        s3sink.Writer(columns=cols, tags={"k": 1}, **writer_kwargs)
    with pytest.raises(TypeError, match="option 'metadata' must be dict of str to str, not str"):
        s3sink.Writer(columns=cols, metadata="k=v", **writer_kwargs)
    with pytest.raises(s3sink.ConfigError, match="NUL"):
        s3sink.Writer(columns=cols, tags={"k": "a\0b"}, **writer_kwargs)
    # the Pathway writers check them when the pipeline is built, before anything runs
    table = pw.debug.table_from_rows(Row, [(1, "a")])
    with pytest.raises(s3sink.ConfigError, match="sse 'KMS' is not one of S3's"):
        pw.io.minio.write(table, "out", "csv", minio_settings=pw.io.minio.MinIOSettings(
            endpoint=writer_kwargs["endpoint"], bucket_name=writer_kwargs["bucket"],
            access_key=writer_kwargs["access_key"], secret_access_key=writer_kwargs["secret_key"],
            region="us-east-1"), sse="KMS")
