/* partition.h - internal: what routes a row to its partition, computed in C for every row
 * (no Lua per row): the partition_by columns' values as path-safe text, and the UTC
 * calendar fields of the time_column's event time, truncated to the finest field the key
 * template uses. A partition is named by a `partkey`, shared by the partition's open
 * object and the objects it sealed. See docs/partitions.md. */
#ifndef S3SINK_PARTITION_H
#define S3SINK_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytebuf.h"
#include "s3sink.h"

/* The text of a null (or empty) partition value, and of the time fields of a row whose
 * time_column is null: Hive's, which Spark, Hive and Athena read back as null. */
#define PARTITION_NULL_TEXT "__HIVE_DEFAULT_PARTITION__"

/* The finest calendar field a key template takes from the event time: the rows of one
 * partition share every field down to it. NONE: rows are not routed by time. */
typedef enum part_unit {
  PART_UNIT_NONE, PART_UNIT_YEAR, PART_UNIT_MONTH, PART_UNIT_DAY, PART_UNIT_HOUR, PART_UNIT_MINUTE
} part_unit;

/* UTC calendar fields of an instant, as they appear in keys (zero-padded). */
typedef struct part_time {
  char year[5], month[3], day[3], hour[3], minute[3], date[11]; /* date: YYYY-MM-DD */
} part_time;

/* The fields of `ns` nanoseconds since the epoch (a naive datetime is read as UTC). */
void partition_time_fields(int64_t ns, part_time *out);

/* Appends the path-safe text of n bytes: A-Z a-z 0-9 - _ . ~ stay (but a leading '.',
 * which readers take for a hidden file), every other byte is %XX; an empty text is
 * PARTITION_NULL_TEXT. False if b is full. */
bool partition_encode(bytebuf *b, const char *s, size_t n);

/* The partition of a set of rows: immutable but for last_key, counted references (the
 * sink's lock guards them). */
typedef struct partkey {
  unsigned refs;
  uint64_t hash;
  char *id;               /* the identity rows are routed by (id_len bytes) */
  size_t id_len;
  size_t nvalues;
  char **values;          /* path text of each partition_by column's value */
  char *path;             /* "col=value/col2=value2" ("" without partition_by) */
  bool timed;             /* routed by event time */
  bool has_time;          /* timed: false for the rows whose event time is null */
  int64_t time_ns;        /* timed and has_time: an instant of its rows' bucket */
  char *last_key;         /* the last key this sink named in the partition, or NULL */
} partkey;

/* The hash of an identity. */
uint64_t partition_hash(const char *id, size_t len);

partkey *partition_key_ref(partkey *k);
void partition_key_unref(partkey *k);

/* The partitioner of a sink: its partition_by columns and time_column, resolved against
 * the table's columns. */
typedef struct partitioner partitioner;

/* `partition_by` holds column names separated by commas (or is NULL); `time_column` names
 * a datetime column (or is NULL); `unit` is how finely rows are routed by it (NONE: the
 * event time only gives the objects' time range). Unknown columns, and columns whose
 * values cannot name a partition, are refused with a message naming them and the table's
 * columns. *out is owned by the caller (partition_free). */
int partition_new(const s3sink_column *columns, size_t ncolumns, const char *partition_by,
                  const char *time_column, part_unit unit, partitioner **out, s3sink_err *err);
void partition_free(partitioner *p);

size_t partition_ncolumns(const partitioner *p);
const char *partition_column_name(const partitioner *p, size_t i);
/* Whether rows are routed (by column values, or by event time). */
bool partition_routes(const partitioner *p);
/* Whether the rows carry an event time (a time_column). */
bool partition_has_time(const partitioner *p);

/* The identity of a row's partition (appended to `id`, reset first) and its event time
 * (*has_event false without a time_column or when it is null). False if `id` is full. */
bool partition_of_row(const partitioner *p, const s3sink_value *values, bytebuf *id,
                      bool *has_event, int64_t *event_ns);

/* A new partkey (one reference) for an identity partition_of_row gave, with the event
 * time of one of its rows. NULL when out of memory. */
partkey *partition_key_new(const partitioner *p, const char *id, size_t id_len, bool has_event,
                           int64_t event_ns);

/* The partkey of a segment an earlier run spooled, from what its journal recorded: the
 * partition's path and event-time field ("" if it was not routed by time, "null", or
 * nanoseconds). Fails, naming the segment's partition and the fix, when it was not
 * partitioned as this sink partitions. */
int partition_key_recover(const partitioner *p, const char *path, const char *time_field,
                          partkey **out, s3sink_err *err);

/* The journal's event-time field of k: "" (not routed by time), "null", or nanoseconds;
 * buf holds at least 24 bytes. */
void partition_key_time_field(const partkey *k, char *buf, size_t cap);

#endif
