"""Partitioned keys through Pathway (docs/partitions.md), against the real MinIO:
key_template, partition_by and time_column on pw.io.minio.write / pw.io.s3.write; keys as
the template says, every row once (counted with boto3), each partition's objects in
increasing order, read back per partition with pw.io.minio.read and pw.io.s3.read; the
network dropping uploads; bad settings refused when the writer is made."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pathway as pw
import pytest

import s3sink
from faultproxy import DROP_RESPONSE, RESET_REQUEST, always, every_nth, respond
from helpers import keys, objects, read_back, run

BASE = datetime(2025, 11, 25, 22, 30, tzinfo=timezone.utc)
COUNTRIES = ("FR", "DE", "PL")
TEMPLATE = "{prefix}dt={date}/hour={hour}/{partition}/{stamp}-{seq}.{ext}"
KEY = re.compile(r"^sales/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/country=(\w\w)/\d{8}T\d{6}\.\d{3}Z-\d{10}\.csv$")


class Sale(pw.Schema):
    id: int
    country: str
    ts: pw.DateTimeUtc
    amount: float


def sale(i: int) -> dict:
    """Row i: its country, and an event time in one of 4 hours across midnight."""
    return {"id": i, "country": COUNTRIES[i % 3], "ts": BASE + timedelta(hours=i % 4, minutes=i % 50),
            "amount": i / 4}


class SaleSubject(pw.io.python.ConnectorSubject):
    """Emits rows 0..n-1 in minibatches of `batch`, `pause` seconds apart."""

    def __init__(self, n: int, batch: int, pause: float = 0.03) -> None:
        super().__init__()
        self.n, self.batch, self.pause = n, batch, pause

    def run(self) -> None:
        for start in range(0, self.n, self.batch):
            for i in range(start, min(self.n, start + self.batch)):
                self.next(**sale(i))
            self.commit()
            time.sleep(self.pause)


def sales(n: int, batch: int = 40) -> pw.Table:
    return pw.io.python.read(SaleSubject(n, batch), schema=Sale, autocommit_duration_ms=20)


def aws_settings(minio) -> pw.io.s3.AwsS3Settings:
    return pw.io.s3.AwsS3Settings(endpoint=minio.endpoint, access_key=minio.access_key,
                                  secret_access_key=minio.secret_key, with_path_style=True,
                                  region="us-east-1")


def stored(s3, bucket: str, prefix: str = "sales/") -> list[tuple[str, list[dict]]]:
    """(key, rows) of every object under prefix, in listing order."""
    out = []
    for key, body in objects(s3, bucket, prefix):
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        out.append((key, rows))
    return out


def check_layout(s3, bucket: str, n: int) -> dict[str, list[str]]:
    """Every key is laid out as TEMPLATE says and holds only rows of its partition; every
    row is stored once. Returns the keys of each partition folder, in listing order."""
    ids: Counter[int] = Counter()
    folders: dict[str, list[str]] = {}
    for key, rows in stored(s3, bucket):
        m = KEY.match(key)
        assert m, key
        date, hour, country = m.groups()
        assert rows, key
        for row in rows:
            i = int(row["id"])
            expected = sale(i)
            assert row["country"] == country == expected["country"], (key, row)
            assert (date, hour) == (expected["ts"].strftime("%Y-%m-%d"), expected["ts"].strftime("%H")), (key, row)
            ids[i] += 1
        folders.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
    assert set(ids) == set(range(n)), f"lost: {sorted(set(range(n)) - set(ids))[:10]}"
    assert [i for i, c in ids.items() if c > 1] == []
    return folders


@pytest.mark.usefixtures("pathway_path")
def test_pathway_writes_each_partition_in_its_folder_and_reads_one_back(s3, bucket, minio, minio_settings):
    n = 600
    pw.io.minio.write(sales(n), "sales", "csv", minio_settings=minio_settings, write_interval_ms=150,
                      key_template=TEMPLATE, partition_by=["country"], time_column="ts")
    run()
    folders = check_layout(s3, bucket, n)
    assert set(folders) == {f"sales/dt={s['ts']:%Y-%m-%d}/hour={s['ts']:%H}/country={s['country']}/"
                            for s in map(sale, range(n))}
    # a reader of one folder consumes it in order: keys increase as objects were made, so
    # the engine times of its rows never go back from one object to the next
    for folder, folder_keys in folders.items():
        assert keys(s3, bucket, folder) == folder_keys
        times = [int(r["time"]) for _, rows in stored(s3, bucket, folder) for r in rows]
        assert times == sorted(times), folder
    assert max(len(k) for k in folders.values()) > 1  # several flushes per partition

    folder = "sales/dt=2025-11-26/hour=00/country=FR/"
    want = sorted(((i, "FR", sale(i)["ts"], i / 4) for i in range(n)
                   if sale(i)["country"] == "FR" and sale(i)["ts"].hour == 0), key=repr)
    assert want
    got = read_back(folder, minio_settings, "csv", Sale, reader="minio")
    assert [(r[0], r[1], r[3]) for r in got] == [(r[0], r[1], r[3]) for r in want]
    assert [r[2].timestamp() for r in got] == [r[2].timestamp() for r in want]
    got = read_back(f"s3://{bucket}/{folder}", aws_settings(minio), "csv", Sale, reader="s3")
    assert [(r[0], r[1], r[3]) for r in got] == [(r[0], r[1], r[3]) for r in want]


def test_flush_time_templates_and_the_default_partition_layout(s3, bucket, minio_settings):
    table = pw.debug.table_from_rows(Sale, [tuple(sale(i).values()) for i in range(30)])
    pw.io.minio.write(table, "hourly", "json", minio_settings=minio_settings,
                      key_template="{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}")
    pw.io.minio.write(table, "by_country", "csv", minio_settings=minio_settings,
                      partition_by="country", writer_id="w0")
    before = datetime.now(timezone.utc)
    run()
    hourly = keys(s3, bucket, "hourly/")
    assert len(hourly) == 1
    m = re.match(r"^hourly/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/(\d{8}T\d{6}\.\d{3}Z)-0000000000\.json$", hourly[0])
    assert m, hourly
    flushed = datetime.strptime(m.group(3), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(seconds=1) <= flushed <= datetime.now(timezone.utc)
    assert (m.group(1), m.group(2)) == (flushed.strftime("%Y-%m-%d"), flushed.strftime("%H"))
    by_country = keys(s3, bucket, "by_country/")
    assert sorted(k.split("/")[1] for k in by_country) == ["country=DE", "country=FR", "country=PL"]
    assert all(re.search(r"/\d{8}T\d{6}\.\d{3}Z-\d{10}-w0\.csv$", k) for k in by_country), by_country


def test_bad_settings_are_refused_when_the_writer_is_made(minio_settings):
    table = pw.debug.table_from_rows(Sale, [tuple(sale(0).values())])
    with pytest.raises(s3sink.ConfigError,
                       match=r"partition_by: 'contry' is not a column of the table; its columns are "
                             r"'id', 'country', 'ts', 'amount'"):
        pw.io.minio.write(table, "x", "csv", minio_settings=minio_settings, partition_by=["contry"])
    with pytest.raises(ValueError, match=r"time_column: column 'amount' has type float"):
        pw.io.minio.write(table, "x", "csv", minio_settings=minio_settings, time_column="amount",
                          key_template="{prefix}dt={date}/{stamp}-{seq}.{ext}")
    with pytest.raises(s3sink.ConfigError, match=r"unknown placeholder \{hr\} \(did you mean \{hour\}\?\)"):
        pw.io.minio.write(table, "x", "csv", minio_settings=minio_settings,
                          key_template="{prefix}{hr}/{stamp}-{seq}.{ext}")
    with pytest.raises(s3sink.ConfigError, match=r"does not place partition_by column 'country'"):
        pw.io.minio.write(table, "x", "csv", minio_settings=minio_settings, partition_by=["country"],
                          key_template="{prefix}{date}/{stamp}-{seq}.{ext}")
    with pytest.raises(TypeError, match=r"option 'partition_by' must be str or a list of str"):
        pw.io.minio.write(table, "x", "csv", minio_settings=minio_settings, partition_by=3)


@pytest.mark.parametrize("fault", [RESET_REQUEST, DROP_RESPONSE], ids=["reset mid-request", "response dropped"])
def test_dropped_uploads_lose_and_duplicate_nothing_with_partitions(fault, s3, bucket, minio, proxy):
    proxy.rule = every_nth(3, fault, method="PUT")
    n = 900
    settings = pw.io.minio.MinIOSettings(endpoint=proxy.endpoint, bucket_name=bucket,
                                         access_key=minio.access_key,
                                         secret_access_key=minio.secret_key, region="us-east-1")
    pw.io.minio.write(sales(n, batch=30), "sales", "csv", minio_settings=settings, write_interval_ms=100,
                      key_template=TEMPLATE, partition_by=["country"], time_column="ts")
    run()
    assert proxy.actions(fault.kind) >= 3
    check_layout(s3, bucket, n)


def test_a_writer_dying_with_a_spool_leaves_each_partition_to_the_next(s3, bucket, minio, proxy, tmp_path):
    """A Writer with a spool acknowledges minibatches of several partitions while the
    storage refuses every upload (503), names some objects (max_object_rows), then dies
    without uploading (discard: what a killed process leaves); the next Writer on the
    spool uploads each partition's rows under its own keys, exactly once."""
    proxy.rule = always(respond(503, "SlowDown"), method="PUT")
    columns = [("id", "int"), ("country", "str"), ("ts", "datetime_utc"), ("amount", "float")]
    kwargs = dict(bucket=bucket, access_key=minio.access_key, secret_key=minio.secret_key,
                  prefix="sales/", columns=columns, key_template=TEMPLATE, partition_by=["country"],
                  time_column="ts", spool_dir=str(tmp_path / "spool"), write_interval_ms=100,
                  max_object_rows=8)
    first_writer = s3sink.Writer(endpoint=proxy.endpoint, **kwargs)
    n = 240
    for start in range(0, n, 40):
        for i in range(start, start + 40):
            first_writer.on_change(None, sale(i), start, True)
        first_writer.on_time_end(start)
    first_writer.on_change(None, sale(n), n, True)  # not acknowledged: not kept
    assert first_writer.stats["pending_objects"] > 0  # objects were named, none stored
    assert proxy.actions("respond") > 0
    first_writer.discard()
    assert keys(s3, bucket, "sales/") == []
    second = s3sink.Writer(endpoint=minio.endpoint, **kwargs)
    second.close()
    check_layout(s3, bucket, n)


def test_a_partition_per_row_is_bounded_by_max_open_partitions(s3, bucket, minio_settings):
    """More partitions than max_open_partitions in one minibatch: objects are sealed
    early, and every row is still stored once, in its partition."""

    class Row(pw.Schema):
        id: int
        country: str

    rows = [(i, f"c{i % 40}") for i in range(400)]
    table = pw.debug.table_from_rows(Row, rows)
    pw.io.minio.write(table, "many", "csv", minio_settings=minio_settings, partition_by=["country"],
                      max_open_partitions=8)
    run()
    seen: Counter[int] = Counter()
    for key, rows_ in stored(s3, bucket, "many/"):
        country = re.match(r"^many/country=(c\d+)/", key).group(1)
        for r in rows_:
            assert r["country"] == country
            seen[int(r["id"])] += 1
    assert seen == Counter(range(400))
    assert len(keys(s3, bucket, "many/")) >= 40
