/*
 * s3sink.h - public C API of the s3sink runtime.
 *
 * A sink turns a stream of row changes into a series of self-contained objects in an
 * S3-compatible bucket. Rows are formatted by a Lua format script, buffered in memory and
 * uploaded as a new object (named by a Lua naming policy, or a key template) once
 * `write_interval_ms` has passed since the last successful upload; with partitions, rows
 * are routed by their values to one object per partition.
 *
 * Conventions
 *  - Every public symbol starts with `s3sink_`; handles are opaque.
 *  - Functions return S3SINK_OK (0) or a negative s3sink_code. When they fail and the
 *    caller passed a non-NULL `s3sink_err *`, it is filled with a message the caller can
 *    show to a user. The library never prints and never exits.
 *  - Strings passed in are borrowed for the duration of the call unless stated otherwise;
 *    the library copies what it keeps.
 *  - One sink may be used from several threads, but calls on it are serialized by the sink.
 */
#ifndef S3SINK_H
#define S3SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S3SINK_VERSION "0.1.0"

typedef enum s3sink_code {
  S3SINK_OK = 0,
  S3SINK_EINVAL = -1,   /* bad argument or configuration */
  S3SINK_ESCRIPT = -2,  /* a Lua format or naming script failed to load or to run */
  S3SINK_ENOMEM = -3,   /* out of memory, or a buffer reached its cap */
  S3SINK_EHTTP = -4,    /* transport failure: DNS, connect, TLS, timeout */
  S3SINK_ES3 = -5,      /* the server answered with an S3 error response */
  S3SINK_ESTATE = -6,   /* the call is not allowed now (e.g. the sink is closed) */
  S3SINK_EIO = -7,      /* the spool's files could not be written or read */
  S3SINK_EAGAIN = -8    /* s3sink_try_write: the row is held until there is room */
} s3sink_code;

/* Error details, owned by the caller (usually on its stack). */
typedef struct s3sink_err {
  int code;               /* an s3sink_code */
  bool transient;         /* the same request may succeed later (connection reset,
                             timeout, HTTP 5xx, 429, SlowDown, ...); false for errors that
                             only a change of settings or of the bucket fixes */
  long http_status;       /* HTTP status of the failed request, 0 if none */
  char s3_code[64];       /* S3 error <Code>, e.g. "NoSuchBucket"; empty if none */
  char request_id[128];   /* S3 <RequestId>, empty if none */
  char msg[1024];         /* human-readable message naming the problem and the fix */
} s3sink_err;

/* Static string describing a code. Never NULL; the caller must not free it. */
const char *s3sink_strerror(int code);

/* ----------------------------------------------------------------------------------------
 * Values
 * -------------------------------------------------------------------------------------- */

/* Kinds of a single cell value. Composite values (tuples, lists, ndarrays, JSON) are
 * passed as compact JSON text with S3SINK_V_JSON. */
typedef enum s3sink_kind {
  S3SINK_V_NULL = 0,
  S3SINK_V_INT,            /* u.i */
  S3SINK_V_FLOAT,          /* u.f */
  S3SINK_V_BOOL,           /* u.b (0 or 1) */
  S3SINK_V_STR,            /* u.s, UTF-8 text */
  S3SINK_V_BYTES,          /* u.s, arbitrary bytes */
  S3SINK_V_POINTER,        /* u.s, the Pathway pointer text ("^...") */
  S3SINK_V_DATETIME_NAIVE, /* u.i, nanoseconds since 1970-01-01T00:00:00 (no zone) */
  S3SINK_V_DATETIME_UTC,   /* u.i, nanoseconds since the Unix epoch, UTC */
  S3SINK_V_DURATION,       /* u.i, nanoseconds */
  S3SINK_V_JSON            /* u.s, compact JSON text */
} s3sink_kind;

typedef struct s3sink_value {
  s3sink_kind kind;
  union {
    int64_t i;
    double f;
    int b;
    struct { const char *ptr; size_t len; } s;
  } u;
} s3sink_value;

/* Column types: what a table's column holds. The names are the vocabulary of every
 * binding (a column is declared as {name, type}); the table below is the one place they
 * are defined. The format script may refuse types it cannot write. */
typedef enum s3sink_type {
  S3SINK_T_INT, S3SINK_T_FLOAT, S3SINK_T_BOOL, S3SINK_T_STR, S3SINK_T_BYTES,
  S3SINK_T_POINTER, S3SINK_T_DATETIME_NAIVE, S3SINK_T_DATETIME_UTC, S3SINK_T_DURATION,
  S3SINK_T_JSON, S3SINK_T_TUPLE, S3SINK_T_LIST, S3SINK_T_ARRAY,
  S3SINK_T_ANY,            /* values of every kind, null included: the format learns each
                              value's type per row */
  S3SINK_T_COUNT
} s3sink_type;

typedef struct s3sink_column_type {
  const char *name;        /* "int", "datetime_utc", ... */
  s3sink_kind kind;        /* the kind of the values a host passes (composites: JSON
                              text); S3SINK_V_NULL for "any" (every kind) */
  const char *doc;         /* one line for users */
} s3sink_column_type;

/* The entry of type t (static, never freed), or NULL if t is not a type. */
const s3sink_column_type *s3sink_column_type_info(s3sink_type t);

/* The type called `name`, or -1 if there is none. */
int s3sink_column_type_find(const char *name);

/* Column of the table written; `type` is a column type's name. */
typedef struct s3sink_column {
  const char *name;
  const char *type;
  bool optional;           /* the column may hold S3SINK_V_NULL */
} s3sink_column;

/* ----------------------------------------------------------------------------------------
 * Formatter: a Lua format script bound to a table's columns. Used by the sink; public so
 * hosts and tests can render rows without uploading.
 * -------------------------------------------------------------------------------------- */

typedef struct s3sink_formatter s3sink_formatter;

/* `format` is a bundled name ("csv", "json") or the path of a Lua format script.
 * On success *out is a new formatter owned by the caller (free with
 * s3sink_formatter_free). A script that fails to load, or refuses the columns, gives
 * S3SINK_ESCRIPT / S3SINK_EINVAL with the file, line and reason. */
int s3sink_formatter_open(const char *format, const s3sink_column *columns, size_t ncolumns,
                          s3sink_formatter **out, s3sink_err *err);

/* Header bytes that start every object (may be empty). *bytes is borrowed from the
 * formatter and valid until its next call. */
int s3sink_formatter_header(s3sink_formatter *f, const char **bytes, size_t *len, s3sink_err *err);

/* Formats one change. *bytes is borrowed from the formatter, valid until its next call. */
int s3sink_formatter_row(s3sink_formatter *f, const s3sink_value *values, size_t nvalues,
                         int64_t time, int diff, const char **bytes, size_t *len, s3sink_err *err);

/* Borrowed strings, valid for the formatter's life. */
const char *s3sink_formatter_extension(const s3sink_formatter *f);
const char *s3sink_formatter_content_type(const s3sink_formatter *f);

void s3sink_formatter_free(s3sink_formatter *f);

/* ----------------------------------------------------------------------------------------
 * Sink
 * -------------------------------------------------------------------------------------- */

typedef struct s3sink s3sink;

/* Milliseconds since the Unix epoch. Called from the host's thread and the sink's timer
 * thread, so it must be thread-safe. Replaces the system clocks of the flush policy
 * (tests drive time with it); retry backoff always runs on the real monotonic clock. */
typedef int64_t (*s3sink_clock_fn)(void *ud);

/* Credentials a provider hands to the sink. The strings are the provider's: they must
 * stay valid until the provider is called again or the sink is freed (the sink copies
 * them before either). */
typedef struct s3sink_credentials {
  const char *access_key;    /* required */
  const char *secret_key;    /* required */
  const char *session_token; /* NULL or "": none */
  int64_t expires_at;        /* seconds since the Unix epoch when they stop working; 0:
                                they do not expire */
  const char *source;        /* optional: where they came from, for messages ("vault",
                                "botocore: iam-role"); never a secret */
} s3sink_credentials;

/* A credentials provider: fills *out and returns S3SINK_OK, or returns a negative
 * s3sink_code and fills err (its message says what failed and how to fix it; `transient`
 * when asking again later may succeed, e.g. a metadata service that did not answer).
 *
 * The sink asks before signing a request when it has no credentials yet, when the ones it
 * has are close to their expiry (half their life is left, at most 5 minutes), and when
 * the server rejected them (InvalidAccessKeyId, ExpiredToken, ...); otherwise it reuses
 * them. A failure while the cached credentials are still valid keeps them in use; once
 * they expired it fails the request: at s3sink_open, transient failures are retried for
 * up to 10 s; during uploads, as any upload failure (within max_retry_ms if transient).
 *
 * Threads: called by the thread about to sign, which is the host's thread inside
 * s3sink_open, s3sink_flush, s3sink_finish / s3sink_close or s3sink_refresh_credentials,
 * or the sink's own thread (background uploads); never two calls at once for one sink,
 * and never with a lock of the sink held except the one serializing these calls. So the
 * provider may take the host's own locks (Python's GIL) as long as no host thread holding
 * them waits for the sink meanwhile (calls that may upload or wait for room). It must not
 * call the sink's functions. A provider that can only run on the host's thread (one Lua
 * state) fails with `transient` on the sink's thread and relies on
 * s3sink_refresh_credentials. */
typedef int (*s3sink_credentials_fn)(void *ud, s3sink_credentials *out, s3sink_err *err);

/* What happened to uploads, for logs and metrics (see s3sink_event_fn). */
typedef enum s3sink_event_kind {
  S3SINK_EVENT_UPLOADED = 1, /* an object is stored: key, rows, bytes, elapsed_ms (its
                                upload, the last attempt's) */
  S3SINK_EVENT_RETRY,        /* an attempt failed and the object is tried again (its rows
                                are kept): key, rows, bytes, attempts (failed so far),
                                retry_in_ms, code, message (also when its key was taken
                                by another object: it is renamed and retry_in_ms is 0) */
  S3SINK_EVENT_RECOVERED,    /* an object is stored after failed attempts (comes before
                                its UPLOADED): key, attempts, elapsed_ms (since the first
                                failure) */
  S3SINK_EVENT_STOPPED,      /* uploads stopped on an error, the one s3sink_failure
                                returns until a forced flush: code, message (key when an
                                object's upload gave up) */
} s3sink_event_kind;

/* One event. Its strings are valid only during the call. Messages never hold secrets. */
typedef struct s3sink_event {
  s3sink_event_kind kind;
  const char *key;           /* the object's key, or NULL */
  uint64_t rows, bytes;      /* the object's rows, and bytes as stored (compressed, with
                                compression); 0 without an object */
  int64_t elapsed_ms;        /* see the kinds */
  int attempts;              /* failed attempts of the object so far */
  int64_t retry_in_ms;       /* RETRY: when it is tried again */
  int code;                  /* RETRY, STOPPED: an s3sink_code */
  const char *message;       /* RETRY, STOPPED: what failed, as s3sink_last_error says */
  const char *s3_code;       /* RETRY, STOPPED: the S3 error code ("SlowDown"), or NULL */
} s3sink_event;

/* Receives the sink's events. Called without any lock of the sink held, one call at a
 * time and in order: by the sink's own thread (background uploads), or by the host's
 * thread at the end of s3sink_write, s3sink_write_held, s3sink_time_end, s3sink_flush,
 * s3sink_finish / s3sink_close (events of its own uploads, or the sink's thread's not
 * delivered yet). With `events_on_host_calls`, only by the host's thread in those calls
 * and in s3sink_try_write: events of the sink's thread wait until the next one. So the
 * callback may take the host's own locks (Python's GIL) under the rule of
 * s3sink_credentials_fn: no host thread holding them calls one of those functions but
 * s3sink_try_write. It may call s3sink_get_stats, s3sink_last_key, s3sink_last_error and
 * s3sink_failure, no function that writes, flushes or closes. Events not delivered when
 * the sink is freed without s3sink_finish are dropped. */
typedef void (*s3sink_event_fn)(void *ud, const s3sink_event *ev);
/* A string-to-string map: the value of the options tags and metadata. Keys are distinct.
 * Both strings of each pair are borrowed, as every string of s3sink_config. */
typedef struct s3sink_pair {
  const char *key;
  const char *value;
} s3sink_pair;

typedef struct s3sink_map {
  const s3sink_pair *pairs;  /* n pairs (NULL when n is 0) */
  size_t n;
} s3sink_map;

/* Configuration. Zero means "default" for every field; only bucket and columns are
 * required. All strings are borrowed for the duration of s3sink_open. Each field but the
 * columns, the clock, the credentials provider and the event callback is an option (see s3sink_option_info
 * below: its type, range, default and documentation); hosts that read options from users
 * set them by name.
 *
 * Credentials come from one source, decided at s3sink_open, in this order (the AWS CLI's
 * for the sources it shares):
 *   1. `credentials`, a provider (asked again as the credentials near their expiry);
 *   2. access_key and secret_key (and session_token);
 *   3. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *      (skipped when the `profile` option names a profile);
 *   4. the profile (`profile`, else AWS_PROFILE, AWS_DEFAULT_PROFILE, "default") in the
 *      shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials),
 *      then in the config file (AWS_CONFIG_FILE, else ~/.aws/config, "[profile name]");
 *   5. none: s3sink_open fails, naming what it searched, unless `anonymous` is set (then
 *      requests are not signed; anonymous with any other source is an error).
 * Sources 3 and 4 give static keys, read once; profiles that fetch credentials
 * (credential_process, role_arn, SSO, web identity) are refused with a message: give a
 * provider instead. Without endpoint or region, they come from AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL or the profile's endpoint_url (and `services` section), and from
 * AWS_REGION, AWS_DEFAULT_REGION or the profile's region. The environment is read on the
 * thread calling s3sink_open. */
typedef struct s3sink_config {
  const char *endpoint;      /* "http://127.0.0.1:9000", "https://host"; default
                                "https://s3.<region>.amazonaws.com". https if no scheme. */
  const char *region;        /* default "us-east-1" */
  const char *bucket;        /* required */
  const char *prefix;        /* key prefix, e.g. "out/run1/"; default "" */
  bool virtual_hosted;       /* default false: path-style addressing (what MinIO expects) */
  const char *access_key;    /* NULL or empty: from the provider, the environment or a
                                profile (see above) */
  const char *secret_key;
  const char *session_token; /* optional */
  const char *profile;       /* the profile of the shared files; default AWS_PROFILE */
  bool anonymous;            /* send unsigned requests: no credentials at all */
  const char *format;        /* "csv" (default), "json", or a Lua script path */
  const char *naming;        /* "default" (default), or a Lua script path */
  int64_t write_interval_ms; /* minimum time between uploads; default 60000, >= 0 */
  const s3sink_column *columns;
  size_t ncolumns;
  const char *writer_id;     /* optional [A-Za-z0-9._-]{1,64}, put in object keys */
  int64_t connect_timeout_ms; /* default 10000 */
  int64_t request_timeout_ms; /* default 120000 */
  bool insecure_tls;         /* default false: verify TLS peer and host */
  const char *ca_file;       /* optional CA bundle */
  bool create_bucket;        /* create the bucket if it does not exist */
  bool no_timer;             /* disable the timer thread (tests); implies no background
                                uploads and no waiting for room in the buffer */
  bool background_uploads;   /* s3sink_flush(s, false) seals the object and returns; the
                                timer thread uploads it, so the host's thread never waits
                                on the network (forced flushes and close still wait) */
  int64_t max_buffer_bytes;  /* memory budget for buffered and in-flight bytes, default
                                1 GiB; s3sink_write waits for uploads to make room
                                (backpressure), or fails without the timer thread. A
                                minibatch larger than the budget is split across objects
                                (without a spool). With compression, a queued object counts
                                uncompressed until the sink's thread compressed it, then
                                compressed. */
  int64_t max_retry_ms;      /* how long transient failures of one upload are retried
                                (exponential backoff, full jitter) before the sink stops
                                with the error; default 300000, -1: forever. Permanent
                                errors (access denied, no such bucket, ...) stop it at
                                once. Opening retries for at most 10 s of it. */
  const char *spool_dir;     /* crash-safe spool: every complete minibatch is written and
                                fsync'ed here before s3sink_time_end returns, and uploads
                                read from here; what a crashed process left is uploaded
                                first by the next sink on the folder. Created if missing;
                                one sink per folder. NULL: rows live in memory only. */
  int64_t spool_max_bytes;   /* disk budget of the spool, default 8 GiB; then s3sink_write
                                waits for uploads (backpressure). A spooled object is named
                                at a quarter of it (objects over
                                multipart_threshold_bytes go up in parts). */
  int64_t max_object_rows;   /* an object is sealed (named and queued for upload) at the
                                first minibatch end where it holds this many rows or more;
                                default: no limit (the interval decides) */
  int64_t max_object_bytes;  /* likewise, once it holds this many bytes (header included,
                                before compression) */
  const char *compression;   /* "none" (default), "gzip" or "zstd": each object is one
                                gzip member / zstd frame (content size and checksum in
                                it) of the bytes it would hold uncompressed; its key ends
                                in ".gz" / ".zst" after the format's extension. Done by
                                the thread that uploads, once per object, never per row. */
  int64_t compression_level; /* 0: the library's default (gzip 6, zstd 3); gzip 1-9,
                                zstd 1-19 */
  const char *storage_class; /* S3 storage class of every object (x-amz-storage-class),
                                e.g. "STANDARD_IA"; NULL: the bucket's default */
  const char *sse;           /* server-side encryption: "AES256" (SSE-S3) or "aws:kms"
                                (SSE-KMS); NULL: the bucket's default */
  const char *sse_kms_key_id; /* with sse "aws:kms": the KMS key id, ARN or alias; NULL:
                                the account's default key */
  s3sink_map tags;           /* object tags (x-amz-tagging): at most 10, keys of 1 to 128
                                characters, values of 0 to 256 */
  s3sink_map metadata;       /* user metadata (x-amz-meta-<name>): names of lower-case
                                letters, digits, '-', '_', '.'; values of printable ASCII;
                                2 KiB in all with the sink's own */
  int64_t multipart_threshold_bytes; /* objects of at least this many bytes as stored
                                (compressed, with compression) are sent as multipart
                                uploads, each part retried on its own; default 64 MiB,
                                5 MiB to 5 GiB (S3's largest PutObject) */
  int64_t multipart_part_bytes; /* their parts' size (the last one smaller): default
                                16 MiB (an object still open that holds one part starts
                                early: sink_internal.h), 5 MiB to 5 GiB; at most 10000 parts, so
                                max_buffer_bytes (or spool_max_bytes with a spool) must
                                be at most 10000 of them */
  const char *key_template;  /* keys without a naming script, e.g.
                                "{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}"; checked
                                at open (docs/partitions.md has the placeholders and rules) */
  const char *partition_by;  /* column names, comma-separated: rows are routed by their
                                values, one object per partition per flush, each
                                partition's keys increasing */
  const char *time_column;   /* a datetime column: the rows' event time, for the template's
                                {date}, {hour}, ... (UTC), instead of the flush time */
  int64_t max_open_partitions; /* partitions kept open at once, default 1000 */
  s3sink_clock_fn clock;     /* default: the system clocks */
  void *clock_ud;
  s3sink_credentials_fn credentials; /* optional provider, see s3sink_credentials_fn */
  void *credentials_ud;      /* passed to it; must stay valid until s3sink_free */
  s3sink_event_fn on_event;  /* optional, see s3sink_event_fn */
  void *on_event_ud;         /* passed to it; must stay valid until s3sink_free */
  bool events_on_host_calls; /* deliver events only inside the host's calls (a host
                                whose callback runs on its own thread, e.g. Lua) */
} s3sink_config;

/* Options: the settings of s3sink_config by name, for hosts that take them from users
 * (the Lua and Python bindings). This table is their one definition: bindings walk it to
 * read, check, default and document options. */
typedef enum s3sink_option_type {
  S3SINK_OPTION_STRING,
  S3SINK_OPTION_INT,
  S3SINK_OPTION_BOOL,
  S3SINK_OPTION_MAP          /* an s3sink_map: string keys to string values */
} s3sink_option_type;

typedef struct s3sink_option {
  const char *name;          /* the s3sink_config field it sets, e.g. "write_interval_ms" */
  s3sink_option_type type;
  const char *group;         /* "target" (where objects go), "output" (what they hold and
                                when), "transport", "reliability", or "host" (settings of
                                an embedding host, not of its users) */
  int64_t min, max;          /* integers: the accepted range */
  bool unlimited;            /* integers: -1 is accepted too and means "no limit"; a host
                                whose null differs from "not given" (Python's None) may
                                spell it that way */
  const char *default_text;  /* the default, as users read it ("60000", "csv", "false");
                                NULL if none */
  const char *doc;           /* a paragraph for users */
  bool list;                 /* strings: a list of names, separated by commas; bindings
                                also take their language's list of strings */
} s3sink_option;

/* The i-th option (static, never freed), or NULL when i is past the last one. */
const s3sink_option *s3sink_option_info(size_t i);

/* The option called `name`, or NULL. */
const s3sink_option *s3sink_option_find(const char *name);

/* Set an option of *cfg by name, checking the name, the type and the value (range,
 * characters) with the rules s3sink_open applies. S3SINK_EINVAL with a message naming
 * the option and what it accepts (or the option meant, for a misspelt name). Strings are
 * borrowed, as every string of s3sink_config. */
int s3sink_config_set_string(s3sink_config *cfg, const char *name, const char *value,
                             s3sink_err *err);
int s3sink_config_set_int(s3sink_config *cfg, const char *name, int64_t value, s3sink_err *err);
int s3sink_config_set_bool(s3sink_config *cfg, const char *name, bool value, s3sink_err *err);
/* n pairs (borrowed, the array too); a key given twice is refused. */
int s3sink_config_set_map(s3sink_config *cfg, const char *name, const s3sink_pair *pairs,
                          size_t n, s3sink_err *err);

/* The names of the scripts bundled in the library: `kind` is "format" or "naming"; the
 * i-th name (static), or NULL when i is past the last one. */
const char *s3sink_bundled_name(const char *kind, size_t i);

/* Counters, a consistent snapshot. */
typedef struct s3sink_stats {
  uint64_t objects;          /* objects uploaded */
  uint64_t rows;             /* rows uploaded */
  uint64_t bytes;            /* bytes uploaded: the objects as stored (headers included;
                                compressed, with compression) */
  uint64_t buffered_rows;    /* rows accepted but not uploaded yet */
  uint64_t buffered_bytes;   /* row bytes accepted but not uploaded yet (uncompressed) */
  uint64_t failed_uploads;   /* upload attempts that failed (their rows were kept) */
  int64_t last_write_ms;     /* clock time of the last successful upload (or open) */
  uint64_t pending_objects;  /* objects named and waiting for their upload */
  uint64_t spool_bytes;      /* bytes in the spool's files (0 without a spool) */
  uint64_t upload_ms;        /* time spent in successful uploads (their last attempts):
                                upload_ms / objects is the mean upload time */
  uint64_t early_bytes;      /* bytes sent while their object was still written (parts of
                                a large open object, see multipart_threshold_bytes) */
} s3sink_stats;

/* The fields of s3sink_stats by name, for bindings that show them (Lua tables, Python
 * dicts): i from 0; NULL past the last. */
typedef struct s3sink_stat_field {
  const char *name;          /* the field's name, e.g. "objects" */
  size_t offset;             /* offsetof(s3sink_stats, <field>) */
  bool is_signed;            /* int64_t; else uint64_t */
} s3sink_stat_field;
const s3sink_stat_field *s3sink_stat_field_info(size_t i);

/* The name of an event kind: "uploaded", "retry", "recovered", "stopped"; NULL for
 * others. */
const char *s3sink_event_kind_name(s3sink_event_kind kind);

/* Creates a sink: validates the configuration, loads and checks the scripts, checks that
 * the bucket is reachable with the credentials (HeadBucket; creates it if asked), lists
 * the prefix so object keys continue after those of an earlier run (from the naming
 * policy's start_after, keeping only the keys it owns), and takes over what an earlier
 * run left in the spool. Transient failures are retried for up to 10 s.
 * On success *out is owned by the caller and must be released with s3sink_close or
 * s3sink_free. */
int s3sink_open(const s3sink_config *cfg, s3sink **out, s3sink_err *err);

/* Formats one change of the row (one value per column, in column order) at engine time
 * `time` with `diff` (+1 insertion, -1 retraction) and appends it to the buffer. Never
 * touches the network; when the memory (or spool) budget is used up it waits for the
 * timer thread's uploads to make room. Once uploads have stopped on an error (see
 * s3sink_failure), returns that error without accepting the row. */
int s3sink_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                 int diff, s3sink_err *err);

/* s3sink_write that never waits: if the row does not fit the budget yet, it is formatted
 * and held, and S3SINK_EAGAIN is returned; s3sink_write_held then waits for room and
 * appends it. Lets a host release its own locks (e.g. Python's GIL) exactly when a write
 * has to wait, and format each row once. */
int s3sink_try_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                     int diff, s3sink_err *err);

/* Waits for room for the row s3sink_try_write held and appends it. If uploads stop
 * meanwhile, returns that error and the held row is not accepted. */
int s3sink_write_held(s3sink *s, s3sink_err *err);

/* Marks every row written so far as part of complete minibatches: only complete
 * minibatches are ever uploaded. With a spool, returns once they are on disk (fsync):
 * its return is the acknowledgement. */
int s3sink_time_end(s3sink *s, int64_t time, s3sink_err *err);

/* Applies the flush policy. Uploads the complete minibatches as one new object (one per
 * partition, with partition_by or an event-time key_template) when
 * `forced`, or when write_interval_ms has passed since the last successful upload;
 * otherwise does nothing. Returns 1 if an object was uploaded (with background_uploads
 * and !forced: named and handed to the timer thread), 0 if not, or a negative code if
 * the upload failed; the rows are then kept. A forced flush uploads everything kept,
 * retrying transient failures for up to max_retry_ms, and first clears a failure that
 * had stopped uploads (it is the host's request to try again). */
int s3sink_flush(s3sink *s, bool forced, s3sink_err *err);

/* How s3sink_finish ends a sink. */
enum {
  S3SINK_DROP_UNFINISHED = 1, /* rows written after the last s3sink_time_end are dropped
                                 (the host stops mid-stream and will send them again)
                                 instead of being uploaded as a minibatch of their own */
  S3SINK_LEAVE_SPOOLED = 2    /* with a spool: upload nothing now; every kept row stays in
                                 the spool for the next sink on it (no network, so it
                                 cannot hang). Without a spool: no effect. */
};

/* Makes a write that waits for room (backpressure) return at once with S3SINK_ESTATE,
 * its row not accepted, and every later one too. For a host that is shutting down while
 * its thread waits in s3sink_write (e.g. on a signal): it can then finish or free the
 * sink. Safe to call from any thread while the sink is alive. */
void s3sink_interrupt(s3sink *s);

/* Ends the stream: stops the sink's thread, makes the unfinished minibatch complete
 * (the host writes nothing more) and uploads everything kept, with the retries of a
 * forced flush. If that fails, returns the error with every row kept: call it again, or
 * give up with s3sink_free. Once it succeeded, the sink takes no more rows; its stats and
 * last key can still be read until s3sink_free. */
int s3sink_finish(s3sink *s, unsigned flags, s3sink_err *err);

/* Frees the sink (also the way to give up on a sink whose close() keeps failing). Rows
 * not uploaded are lost if they are in memory (and the multipart upload of an object
 * among them is aborted, with one request); complete minibatches in a spool stay there
 * for the next sink on it (which aborts such an upload). */
void s3sink_free(s3sink *s);

/* s3sink_finish(s, 0, err), then s3sink_free if it succeeded. */
int s3sink_close(s3sink *s, s3sink_err *err);

void s3sink_get_stats(s3sink *s, s3sink_stats *out);

/* Key of the last object uploaded, copied into buf (NUL-terminated, truncated to cap).
 * Empty if none. */
void s3sink_last_key(s3sink *s, char *buf, size_t cap);

/* Error of the last failed upload attempt, whichever thread made it (the timer's, a
 * flush, finish), copied into *err; returns its code (S3SINK_OK if the last attempt
 * succeeded or none ran). The attempt is retried while s3sink_failure is S3SINK_OK. */
int s3sink_last_error(s3sink *s, s3sink_err *err);

/* The error that stopped uploads (a permanent S3 error, transient ones past max_retry_ms,
 * a naming script that fails, a spool that cannot be written), copied into *err; returns
 * its code, or S3SINK_OK while uploads go on. Never waits on the network. */
int s3sink_failure(s3sink *s, s3sink_err *err);

/* With a credentials provider: asks it now, on the caller's thread, if the credentials
 * are missing, close to their expiry or were rejected; does nothing otherwise (and for
 * every other source). For hosts whose provider runs on their own thread only: call it
 * regularly (the Lua binding does at every time_end and flush). Returns an error only
 * when no valid credentials are left (the provider's, with its `transient`). Never waits
 * for an upload. */
int s3sink_refresh_credentials(s3sink *s, s3sink_err *err);

/* Where the sink's credentials come from, copied into buf (NUL-terminated, truncated to
 * cap), e.g. "the access_key option", "the environment (AWS_ACCESS_KEY_ID)", "profile
 * 'dev' in /home/u/.aws/credentials", "the credentials provider (botocore: iam-role)".
 * Returns true when requests are anonymous (the `anonymous` option). Never a secret. */
bool s3sink_credentials_source(s3sink *s, char *buf, size_t cap);

/* ----------------------------------------------------------------------------------------
 * AWS Signature Version 4
 * -------------------------------------------------------------------------------------- */

typedef struct s3sink_header {
  const char *name;
  const char *value;
} s3sink_header;

typedef struct s3sink_sigv4_request {
  const char *method;        /* "GET", "PUT", ... */
  const char *path;          /* as sent on the wire (already URI-encoded), e.g. "/bucket/key" */
  const char *query;         /* as sent, without '?', or NULL */
  const s3sink_header *headers; /* must include Host */
  size_t nheaders;
  const char *payload_hash;  /* hex SHA-256 of the body, "UNSIGNED-PAYLOAD", or NULL:
                                then the hash of `body` is used */
  const void *body;
  size_t body_len;
} s3sink_sigv4_request;

typedef struct s3sink_sigv4_params {
  const char *access_key;
  const char *secret_key;
  const char *session_token; /* optional */
  const char *region;
  const char *service;       /* "s3" */
  int64_t now;               /* seconds since the Unix epoch: the signing time */
  bool normalize;            /* generic services: normalize and double-encode the path.
                                false for S3 (path used exactly as sent). */
  bool add_content_sha256;   /* sign and return an x-amz-content-sha256 header (S3) */
  int64_t expires;           /* presigning only: X-Amz-Expires seconds (1..604800) */
} s3sink_sigv4_params;

/* Result of signing. All strings are owned by the result; free with
 * s3sink_sigv4_result_free. */
typedef struct s3sink_sigv4_result {
  char *canonical_request;
  char *string_to_sign;
  char *signature;           /* lowercase hex */
  char *authorization;       /* header signing: the Authorization header value */
  char *amz_date;            /* "20150830T123600Z" */
  char *content_sha256;      /* the payload hash that was signed */
  char *query;               /* presigning: the full query string to send (without '?') */
} s3sink_sigv4_result;

/* Header signing. The caller sends: its headers, X-Amz-Date: amz_date,
 * X-Amz-Security-Token (if a token is set), x-amz-content-sha256 (if asked) and
 * Authorization. */
int s3sink_sigv4_sign(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p,
                      s3sink_sigv4_result *out, s3sink_err *err);

/* Query signing (presigned URL). The caller sends path + '?' + out->query. */
int s3sink_sigv4_presign(const s3sink_sigv4_request *req, const s3sink_sigv4_params *p,
                         s3sink_sigv4_result *out, s3sink_err *err);

void s3sink_sigv4_result_free(s3sink_sigv4_result *r);

#ifdef __cplusplus
}
#endif
#endif /* S3SINK_H */
