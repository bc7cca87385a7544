"""What the scripts share: the test MinIO's settings, from the environment that
tools/run-tests (or tools/with-minio) exports."""

import os

import pathway as pw


def minio_settings(bucket: str) -> pw.io.minio.MinIOSettings:
    return pw.io.minio.MinIOSettings(
        endpoint=os.environ["S3SINK_TEST_ENDPOINT"],
        bucket_name=bucket,
        access_key=os.environ["S3SINK_TEST_ACCESS_KEY"],
        secret_access_key=os.environ["S3SINK_TEST_SECRET_KEY"],
        region="us-east-1",
    )
