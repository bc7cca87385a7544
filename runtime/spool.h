/* spool.h - internal: the crash-safe spool of a sink (config.spool_dir).
 *
 * The spool is a folder of segments. A segment is the body of one object to be (the
 * format's header, then rows) in "<id>.seg", and its journal "<id>.journal": the sink
 * that wrote it (bucket, prefix, extension, content type), one "commit" line per complete
 * minibatch (the segment's length and row count at that point), and a "key" line once the
 * segment is named. Each commit is fsync'ed before the sink acknowledges the minibatch, so
 * after a crash the committed bytes are there and the rest is cut off. With compression,
 * the sink's thread compresses a named segment into "<id>.packed" before its first upload
 * and records it ("packed" line); from then on the object is those bytes, so an upload
 * after a crash sends exactly what an earlier attempt may have stored. A large object
 * goes up as a multipart upload; its journal records the upload ("multipart" before
 * creating it, "upload" with its id), so that a sink recovering the segment aborts what
 * a crash left. A segment is removed once its object is uploaded. See docs/spool.md. */
#ifndef S3SINK_SPOOL_H
#define S3SINK_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3sink.h"

typedef struct spool spool;

/* A multipart upload that an earlier run may have left for a segment's object. */
typedef struct spool_upload {
  char *key;                /* the key it was created for */
  char *upload_id;          /* NULL: it was being created and its id never recorded */
} spool_upload;

/* A segment found by spool_open: committed by an earlier run, not uploaded yet. */
typedef struct spool_segment {
  uint64_t id;
  char *key;                /* the key it was given, or NULL if it was never named */
  uint64_t len, rows;       /* committed bytes (header included) and rows */
  int64_t first_time, last_time;
  char *extension, *content_type; /* of the objects of the sink that wrote it */
  char *partition;          /* its partition's path and event-time field (see */
  char *time_field;         /* spool_stream_new), or NULL if it was not partitioned */
  bool has_event;           /* the event-time range of its rows (time_column) */
  int64_t min_event, max_event;
  char *codec;              /* its compression ("gzip", "zstd"), or NULL */
  int level;                /* its compression_level (0: the default) */
  bool packed;              /* compressed into "<id>.packed" already, packed_len bytes */
  uint64_t packed_len;
  spool_upload *uploads;    /* multipart uploads of it, to abort: none may be completed */
  size_t nuploads;
} spool_segment;

/* Opens (creating it if needed) and locks the folder, then recovers what an earlier run
 * left: cuts uncommitted bytes, removes segments with nothing committed, and keeps the
 * others as recovered segments, oldest first. Fails if another process holds the folder,
 * or if it holds segments of another bucket or prefix. `header` starts every new segment.
 * `codec` (NULL: none) and `level` are recorded with each segment: its object is
 * compressed so even when a sink with other settings uploads it. Strings are copied. */
int spool_open(const char *dir, const char *bucket, const char *prefix, const char *header,
               size_t header_len, const char *extension, const char *content_type,
               const char *codec, int level, spool **out, s3sink_err *err);
void spool_close(spool *sp);

size_t spool_recovered_count(const spool *sp);
const spool_segment *spool_recovered(const spool *sp, size_t i);

/* The segments of one partition, one after the other: the current one takes rows, sealing
 * it names it and starts the next. A sink without partitions has one stream. Files are
 * opened for each operation, so a stream holds no file descriptor. */
typedef struct spool_stream spool_stream;

/* A stream whose segments record the partition they hold (`partition`: its path, e.g.
 * "country=FR", and `time_field`: "" if rows are not routed by event time, "null", or
 * nanoseconds of one of its rows), or NULL for an unpartitioned sink. Strings are copied;
 * *out is the caller's (spool_stream_free). */
int spool_stream_new(const char *partition, const char *time_field, spool_stream **out,
                     s3sink_err *err);
/* Frees the stream: its committed rows stay on disk for the next sink on the folder; a
 * current segment with nothing committed is removed. */
void spool_stream_free(spool *sp, spool_stream *st);

/* Appends row bytes to the stream's current segment (starting one if there is none); not
 * synced. */
int spool_append(spool *sp, spool_stream *st, const void *bytes, size_t n, s3sink_err *err);

/* Makes everything appended so far durable as complete minibatches: `rows` rows more,
 * engine times first..last, and, with has_event, event times min_event..max_event.
 * Returns only once the bytes and the journal are on disk. */
int spool_commit(spool *sp, spool_stream *st, uint64_t rows, int64_t first_time,
                 int64_t last_time, bool has_event, int64_t min_event, int64_t max_event,
                 s3sink_err *err);

/* Drops the bytes appended since the last commit. */
int spool_drop_uncommitted(spool *sp, spool_stream *st, s3sink_err *err);

/* Whether the current segment has committed rows / bytes not yet committed. */
bool spool_has_committed(const spool_stream *st);
bool spool_has_uncommitted(const spool_stream *st);

/* Names the current segment's committed part `key` (durably) and returns its id and
 * length; bytes appended after the last commit move to a new current segment. */
int spool_seal(spool *sp, spool_stream *st, const char *key, uint64_t *id, uint64_t *len,
               s3sink_err *err);

/* Records a new key for a sealed segment (its first key was taken by someone else). */
int spool_rename(spool *sp, uint64_t id, const char *key, s3sink_err *err);

/* Compressing a sealed segment: opens "<id>.seg" for reading (*seg_fd) and creates an
 * empty "<id>.packed" (*packed_fd); the caller closes both. Reading and writing them
 * needs no lock. */
int spool_pack_begin(spool *sp, uint64_t id, int *seg_fd, int *packed_fd, s3sink_err *err);

/* The caller wrote len compressed bytes to "<id>.packed" and synced them: makes that
 * file the segment's body (a synced "packed" journal line) and removes "<id>.seg". */
int spool_pack_end(spool *sp, uint64_t id, uint64_t len, s3sink_err *err);

/* Compressing failed: removes "<id>.packed"; the segment stays as it was. */
void spool_pack_abandon(spool *sp, uint64_t id);

/* Opens a sealed or recovered segment's body ("<id>.packed" once packed) for reading;
 * the caller closes *fd. */
int spool_open_body(spool *sp, uint64_t id, bool packed, int *fd, s3sink_err *err);

/* Records (synced) a multipart upload of a sealed segment's object under key: with
 * upload_id NULL before it is created, then with its id. A sink recovering the segment
 * aborts each one it finds, and for one whose id was never recorded, every upload of the
 * key (a crash may have come between the server's creating it and the record). */
int spool_note_upload(spool *sp, uint64_t id, const char *key, const char *upload_id,
                      s3sink_err *err);

/* Removes an uploaded segment. */
void spool_remove(spool *sp, uint64_t id);

/* Bytes of all segments on disk. */
uint64_t spool_bytes(const spool *sp);
const char *spool_dir(const spool *sp);

#endif
