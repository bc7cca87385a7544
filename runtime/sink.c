/* sink.c - buffering, the flush policy and the upload queue.
 *
 * Rows are formatted into the open object (in memory, or with a spool into the current
 * spool segment). s3sink_time_end marks them complete. Sealing names the complete
 * minibatches as one object and puts it on the queue of pending objects, which are
 * uploaded oldest first, so keys land in increasing order; a failed upload keeps its
 * object (same key, same bytes) at the head of the queue and retries it.
 *
 * Failures: a transient one (reset, timeout, 5xx, throttling) is retried with
 * exponential backoff and full jitter for up to max_retry_ms; a permanent one, or a
 * transient one past that, or a naming script that fails, stops uploads: the sink keeps
 * its rows and every host call returns the error, until a forced flush (or close) asks
 * to try again. Nothing spins and nothing waits without end.
 *
 * Locking: one mutex guards everything but the network call itself; the thread that
 * uploads (the host's or the sink's own) sets `uploading` and drops the lock meanwhile,
 * so the host keeps writing while the sink's thread uploads. The Lua state is only used
 * with the lock held. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytebuf.h"
#include "error.h"
#include "options.h"
#include "formatter.h"
#include "lua_host.h"
#include "naming.h"
#include "s3client.h"
#include "spool.h"

#define OPEN_RETRY_MS 10000              /* opening gives up on transient errors sooner */
#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 30000
#define SPOOL_CHUNK ((size_t)1 << 20)    /* rows reach the spool file in chunks this big */
#define SPOOL_OBJECT_MAX ((uint64_t)1 << 30) /* a spooled object is named at this size even
                                                while others wait: a backlog stays in
                                                objects one PUT can take (S3: 5 GiB) */
#define MAX_RENAMES 8                    /* keys taken by others, in a row, per flush */

/* An object named and waiting for its upload. */
typedef struct pending {
  struct pending *next;
  char *key;
  uint64_t rows, len, row_bytes;  /* len: the whole body, header included */
  int64_t first_time, last_time;  /* engine times of its rows */
  bytebuf body;                   /* without a spool */
  uint64_t segment;               /* with a spool */
  char *extension, *content_type; /* NULL: the format's (recovered segments keep theirs) */
  int attempts;                   /* failed attempts so far */
  bool failing;
  int64_t first_failure_ms, next_try_ms; /* real monotonic clock */
} pending;

struct s3sink {
  pthread_mutex_t mu;
  pthread_cond_t cv;          /* an upload ended, an object was queued, stop requested */
  pthread_t thread;
  bool has_thread, stopping, closed;

  luahost *lua;
  s3sink_formatter *fmt;
  naming *naming;
  s3client *client;
  spool *spool;

  char *prefix, *writer_id, *bucket;
  int64_t interval_ms, max_retry_ms;
  size_t max_buffer;          /* memory budget: buffered + queued bytes */
  uint64_t spool_max, spool_object_max;
  bool background;            /* flush() hands uploads to the sink's thread */
  s3sink_clock_fn clock;      /* the flush policy's clock, when the host sets one */
  void *clock_ud;
  uint64_t rng;               /* backoff jitter */

  /* The open object. Without a spool, buf holds the header and every row not sealed yet,
   * [0, complete_len) being the header and complete minibatches; with a spool, buf holds
   * rows not written to the current segment yet. */
  bytebuf buf;
  size_t header_len, complete_len;
  uint64_t rows, complete_rows;      /* rows in the open object; of those, complete */
  uint64_t row_bytes, complete_bytes; /* their bytes (header excluded) */
  int64_t complete_first_time, complete_last_time, open_first_time, open_last_time;
  bool have_open_first;
  bytebuf scratch;            /* a formatted row kept while its write waits for room */
  bool held;                  /* s3sink_try_write left it there */
  bool interrupted;           /* writes do not wait for room any more */
  int64_t held_time;

  pending *head, *tail;
  uint64_t npending;
  size_t pending_mem;         /* capacity of the queued bodies in memory */
  bool uploading;

  bool failed;                /* uploads stopped on `failure` */
  s3sink_err failure;
  s3sink_err last_err;        /* of the last failed attempt; code 0 once one succeeds */

  int64_t last_upload_ms;     /* flush-policy clock */
  uint64_t sequence;          /* objects named */
  char *last_named;           /* greatest key named or found under the prefix */
  char *last_uploaded;
  s3sink_stats stats;
};

/* ------------------------------------------------------------------------------------ */
/* Clocks and backoff                                                                   */

static int64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Real monotonic time: backoff and retry budgets. */
static int64_t real_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

/* The flush policy's clock: the host's, or monotonic (a step of the wall clock must not
 * stall or hurry uploads). */
static int64_t policy_ms(s3sink *s) { return s->clock ? s->clock(s->clock_ud) : real_ms(); }

/* Wall-clock time for object names. */
static int64_t wall_ms(s3sink *s) { return s->clock ? s->clock(s->clock_ud) : clock_ms(CLOCK_REALTIME); }

static uint64_t next_random(s3sink *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 0x2545F4914F6CDD1DULL;
}

/* "Full jitter": uniform in [0, min(cap, base * 2^attempts)]. */
static int64_t backoff_ms(s3sink *s, int attempts) {
  int64_t ceiling = BACKOFF_BASE_MS << (attempts < 16 ? attempts : 16);
  if (ceiling > BACKOFF_CAP_MS) ceiling = BACKOFF_CAP_MS;
  return (int64_t)(next_random(s) % (uint64_t)(ceiling + 1));
}

static void wait_until(s3sink *s, int64_t real_deadline_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ms = real_deadline_ms - real_ms();
  if (ms < 1) ms = 1;
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

/* ------------------------------------------------------------------------------------ */
/* Failure                                                                              */

static void where_rows_are(const s3sink *s, char *buf, size_t cap) {
  if (s->spool) snprintf(buf, cap, "in spool_dir '%s'", spool_dir(s->spool));
  else snprintf(buf, cap, "in memory");
}

/* Stops uploads on e (whose message already names the object): the host's next call
 * returns it, and so does the caller, with the same message. */
static int stop_uploads(s3sink *s, s3sink_err *e) {
  s->failed = true;
  s->failure = *e;
  char where[400];
  where_rows_are(s, where, sizeof where);
  s3sink_prefixerr(&s->failure, "uploads stopped: ");
  size_t n = strlen(s->failure.msg);
  if (e->s3_code[0] && !strstr(s->failure.msg, e->s3_code))
    n += (size_t)snprintf(s->failure.msg + n, sizeof s->failure.msg - n, " [S3 error %s, HTTP %ld]",
                          e->s3_code, e->http_status);
  if (n < sizeof s->failure.msg)
    snprintf(s->failure.msg + n, sizeof s->failure.msg - n,
             ". Every row is kept %s; a forced flush or close() tries again", where);
  *e = s->failure;
  pthread_cond_broadcast(&s->cv);
  return e->code;
}

static s3sink_err *err_oom(s3sink_err *err, const char *doing) {
  s3sink_seterr(err, S3SINK_ENOMEM, "out of memory %s", doing);
  return err;
}

static int failure_error(const s3sink *s, s3sink_err *err) {
  if (err) *err = s->failure;
  return s->failure.code;
}

/* ------------------------------------------------------------------------------------ */
/* The open object                                                                      */

static bool has_complete(const s3sink *s) { return s->complete_rows > 0; }
static bool has_open(const s3sink *s) { return s->rows > s->complete_rows; }

/* Bytes the open object's complete part would have as an object. */
static uint64_t complete_size(const s3sink *s) { return s->header_len + s->complete_bytes; }

/* The rows written since the last time_end form complete minibatches up to `time`. */
static int complete_rows_locked(s3sink *s, int64_t time, s3sink_err *err) {
  if (!has_open(s)) return S3SINK_OK;
  if (s->spool) {
    int rc = spool_append(s->spool, s->buf.data, s->buf.len, err);
    if (rc == S3SINK_OK)
      rc = spool_commit(s->spool, s->rows - s->complete_rows, s->open_first_time, time, err);
    if (rc) return stop_uploads(s, err);
    s->buf.len = 0;
  } else {
    s->complete_len = s->buf.len;
  }
  if (!has_complete(s)) s->complete_first_time = s->open_first_time;
  s->complete_last_time = time;
  s->complete_rows = s->rows;
  s->complete_bytes = s->row_bytes;
  s->have_open_first = false;
  return S3SINK_OK;
}

/* Drops the rows written since the last time_end. */
static void drop_open_locked(s3sink *s) {
  if (s->spool) {
    s->buf.len = 0;
    spool_drop_uncommitted(s->spool, NULL);
  } else {
    s->buf.len = s->complete_len;
  }
  s->rows = s->complete_rows;
  s->row_bytes = s->complete_bytes;
  s->have_open_first = false;
}

static void take_key(char **slot, const char *key) {
  if (*slot && strcmp(key, *slot) <= 0) return;
  char *k = strdup(key);
  if (!k) return; /* keeps the older key: names are checked against it, never wrongly */
  free(*slot);
  *slot = k;
}

static int name_object(s3sink *s, uint64_t rows, uint64_t bytes, int64_t first, int64_t last,
                       const char *extension, char **key, s3sink_err *err) {
  naming_ctx ctx = {
      .prefix = s->prefix, .extension = extension, .writer_id = s->writer_id,
      .last_key = s->last_named, .sequence = s->sequence, .rows = rows, .bytes = bytes,
      .flush_time_ms = wall_ms(s), .first_time = first, .last_time = last};
  int rc = naming_name(s->naming, &ctx, key, err);
  if (rc == S3SINK_OK) {
    take_key(&s->last_named, *key);
    s->sequence++;
  }
  return rc;
}

/* Memory the open object's buffer may take (without a spool). */
static size_t budget_left(const s3sink *s) {
  return s->max_buffer > s->pending_mem ? s->max_buffer - s->pending_mem : 0;
}

static void enqueue(s3sink *s, pending *p) {
  p->next = NULL;
  if (s->tail) s->tail->next = p;
  else s->head = p;
  s->tail = p;
  s->npending++;
  s->pending_mem += p->body.cap;
  pthread_cond_broadcast(&s->cv);
}

static void pending_free(pending *p) {
  bytebuf_free(&p->body);
  free(p->key);
  free(p->extension);
  free(p->content_type);
  free(p);
}

/* Names the complete minibatches and queues them as one object. With `split`, the rows
 * of the unfinished minibatch go too (it does not fit the budget: it spans objects). A
 * failure stops uploads: nothing is retried in a loop. */
static int seal(s3sink *s, bool split, s3sink_err *err) {
  int rc;
  if (split && (rc = complete_rows_locked(s, s->open_last_time, err))) return rc;
  pending *p = calloc(1, sizeof *p);
  if (!p) return stop_uploads(s, err_oom(err, "sealing an object"));
  bytebuf_init(&p->body, SIZE_MAX);
  rc = name_object(s, s->complete_rows, complete_size(s), s->complete_first_time,
                   s->complete_last_time, s3sink_formatter_extension(s->fmt), &p->key, err);
  if (rc) {
    free(p);
    return stop_uploads(s, err);
  }
  p->rows = s->complete_rows;
  p->row_bytes = s->complete_bytes;
  p->first_time = s->complete_first_time;
  p->last_time = s->complete_last_time;
  if (s->spool) {
    if ((rc = spool_seal(s->spool, p->key, &p->segment, &p->len, err))) {
      pending_free(p);
      return stop_uploads(s, err);
    }
  } else {
    /* the body keeps the buffer; the rows of the unfinished minibatch start a new one */
    size_t tail = s->buf.len - s->complete_len;
    bytebuf rest; /* exactly as large as needed: the sealed body still takes its memory */
    bytebuf_init(&rest, s->header_len + tail);
    if (!bytebuf_reserve(&rest, s->header_len + tail)) {
      pending_free(p);
      return stop_uploads(s, err_oom(err, "sealing an object"));
    }
    bytebuf_append(&rest, s->buf.data, s->header_len);
    bytebuf_append(&rest, s->buf.data + s->complete_len, tail);
    p->body = s->buf;
    p->body.len = s->complete_len;
    char *shrunk = realloc(p->body.data, p->body.len ? p->body.len : 1);
    if (shrunk) {
      p->body.data = shrunk;
      p->body.cap = p->body.len;
    }
    p->len = p->body.len;
    s->buf = rest;
    s->complete_len = s->header_len;
  }
  s->rows -= s->complete_rows;
  s->row_bytes -= s->complete_bytes;
  s->complete_rows = 0;
  s->complete_bytes = 0;
  enqueue(s, p);
  return S3SINK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Uploading                                                                            */

static void pop_head(s3sink *s) {
  pending *p = s->head;
  s->head = p->next;
  if (!s->head) s->tail = NULL;
  s->npending--;
  s->pending_mem -= p->body.cap;
  if (s->spool) spool_remove(s->spool, p->segment);
  pending_free(p);
}

/* The head's key was taken by someone else's object: name it anew, after that key. */
static int rename_head(s3sink *s, s3sink_err *err) {
  pending *p = s->head;
  take_key(&s->last_named, p->key);
  char *key = NULL;
  int rc = name_object(s, p->rows, p->len, p->first_time, p->last_time,
                       p->extension ? p->extension : s3sink_formatter_extension(s->fmt), &key,
                       err);
  if (rc == S3SINK_OK && s->spool) rc = spool_rename(s->spool, p->segment, key, err);
  if (rc) {
    free(key);
    return stop_uploads(s, err);
  }
  free(p->key);
  p->key = key;
  p->next_try_ms = 0;
  return S3SINK_OK;
}

/* One upload attempt of the head of the queue, with the lock released during the
 * request. Returns 1 if the object is stored, 0 if it was renamed (its key was taken: try
 * again), or a negative code: retried later if transient, else uploads stop. */
static int attempt(s3sink *s, s3sink_err *caller_err) {
  s3sink_err local, *err = caller_err ? caller_err : &local;
  pending *p = s->head;
  s3body body = {.data = p->body.data, .fd = -1, .len = p->len};
  int rc = S3SINK_OK;
  if (s->spool && (rc = spool_open_body(s->spool, p->segment, &body.fd, err)))
    return stop_uploads(s, err);
  const char *ctype = p->content_type ? p->content_type : s3sink_formatter_content_type(s->fmt);
  s3client_put_outcome outcome;
  s->uploading = true;
  pthread_mutex_unlock(&s->mu);
  rc = s3client_put_new_object(s->client, p->key, &body, ctype, &outcome, err);
  if (body.fd >= 0) close(body.fd);
  pthread_mutex_lock(&s->mu);
  s->uploading = false;
  pthread_cond_broadcast(&s->cv);

  if (rc == S3SINK_OK && outcome == S3CLIENT_TAKEN) {
    s->stats.failed_uploads++;
    s3sink_seterr(&s->last_err, S3SINK_ES3, "key '%s' was taken by another object", p->key);
    rc = rename_head(s, err);
    return rc ? rc : 0;
  }
  if (rc == S3SINK_OK) {
    s->stats.objects++;
    s->stats.rows += p->rows;
    s->stats.bytes += p->len;
    s->stats.last_write_ms = wall_ms(s);
    s->last_upload_ms = policy_ms(s);
    char *k = strdup(p->key);
    if (k) {
      free(s->last_uploaded);
      s->last_uploaded = k;
    }
    memset(&s->last_err, 0, sizeof s->last_err);
    pop_head(s);
    return 1;
  }

  s->stats.failed_uploads++;
  int64_t now = real_ms();
  if (!p->failing) {
    p->failing = true;
    p->first_failure_ms = now;
  }
  p->attempts++;
  int64_t spent = now - p->first_failure_ms;
  bool retry = err->transient && (s->max_retry_ms < 0 || spent < s->max_retry_ms);
  if (retry) {
    int64_t delay = backoff_ms(s, p->attempts);
    p->next_try_ms = now + delay;
    s3sink_prefixerr(err, "upload of '%s' (%" PRIu64 " rows) failed (attempt %d, retried in "
                     "%" PRId64 " ms; the rows are kept): ", p->key, p->rows, p->attempts, delay);
    s->last_err = *err;
    return rc;
  }
  if (err->transient)
    s3sink_prefixerr(err, "upload of '%s' (%" PRIu64 " rows) to bucket '%s' still failed after "
                     "%d attempts over %" PRId64 " s (max_retry_ms): ", p->key, p->rows,
                     s->bucket, p->attempts, spent / 1000);
  else
    s3sink_prefixerr(err, "upload of '%s' (%" PRIu64 " rows) to bucket '%s' failed: ", p->key,
                     p->rows, s->bucket);
  s->last_err = *err;
  return stop_uploads(s, err);
}

static bool interval_passed(s3sink *s) {
  return policy_ms(s) - s->last_upload_ms >= s->interval_ms;
}

/* The flush policy, with the lock held (see s3sink_flush). */
static int flush_locked(s3sink *s, bool forced, s3sink_err *err) {
  if (!forced) {
    if (s->failed) return failure_error(s, err);
    if (s->background || s->uploading) {
      /* the sink's thread uploads: this only names what is due */
      if (s->background && !s->head && has_complete(s) && interval_passed(s)) {
        int rc = seal(s, false, err);
        return rc ? rc : 1;
      }
      return 0;
    }
    if (!s->head) {
      if (!has_complete(s) || !interval_passed(s)) return 0;
      int rc = seal(s, false, err);
      if (rc) return rc;
    } else if (s->head->next_try_ms > real_ms()) {
      return 0; /* retried when its backoff has passed */
    }
    for (int renames = 0;; renames++) {
      int rc = attempt(s, err);
      if (rc != 0 || renames == MAX_RENAMES) return rc;
    }
  }
  /* Forced: everything kept goes, oldest first, with retries. */
  s->failed = false;
  int uploaded = 0;
  for (;;) {
    if (s->uploading) {
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    if (s->failed) return failure_error(s, err); /* the sink's thread gave up meanwhile */
    if (!s->head) {
      if (!has_complete(s)) return uploaded;
      int rc = seal(s, false, err);
      if (rc) return rc;
      continue;
    }
    if (s->head->next_try_ms > real_ms()) {
      wait_until(s, s->head->next_try_ms);
      continue;
    }
    int rc = attempt(s, err);
    if (rc > 0) uploaded = 1;
    if (rc < 0 && s->failed) return rc;
  }
}

static void *uploader_main(void *arg) {
  s3sink *s = arg;
  int64_t period = s->interval_ms / 10;
  if (period < 10) period = 10;
  if (period > 250) period = 250;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    int64_t now = real_ms(), wake = now + period;
    if (!s->failed && !s->uploading) {
      s3sink_err e;
      if (s->head && s->head->next_try_ms <= now) {
        attempt(s, &e);
        continue;
      }
      if (!s->head && has_complete(s) && interval_passed(s)) {
        seal(s, false, &e);
        continue;
      }
      if (s->head && s->head->next_try_ms < wake) wake = s->head->next_try_ms;
    }
    wait_until(s, wake);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Room for a row                                                                       */

/* Whether n more row bytes fit the budget, growing the buffer if need be. */
static bool fits(s3sink *s, size_t n) {
  if (s->spool) return spool_bytes(s->spool) + s->buf.len + n <= s->spool_max;
  size_t allowed = budget_left(s);
  if (s->buf.len + n > allowed) return false;
  if (s->buf.len + n <= s->buf.cap) return true;
  s->buf.max = allowed; /* the buffer's capacity stays within the budget */
  return bytebuf_reserve(&s->buf, n);
}

/* Something that frees room once uploads catch up: names what can be named. Returns
 * S3SINK_OK when waiting for an upload will help, or an error. */
static int make_room(s3sink *s, size_t n, s3sink_err *err) {
  if (s->failed) return failure_error(s, err);
  if (s->head) return S3SINK_OK;                      /* uploads are under way */
  if (has_complete(s)) return seal(s, false, err);    /* earlier than the interval */
  if (has_open(s) || (s->spool && spool_has_uncommitted(s->spool)))
    return seal(s, true, err);                        /* a minibatch over the budget */
  return s3sink_seterr(err, S3SINK_ENOMEM,
                       "a row of %zu bytes does not fit %s: raise it", n,
                       s->spool ? "spool_max_bytes" : "max_buffer_bytes");
}

/* ------------------------------------------------------------------------------------ */
/* Open                                                                                 */

/* Retries a request of the opening while its failure is transient, for up to `budget`
 * milliseconds. */
typedef int (*open_step)(s3sink *s, const s3sink_config *c, s3sink_err *err);

static int with_retries(s3sink *s, const s3sink_config *c, open_step step, int64_t budget,
                        s3sink_err *err) {
  int64_t start = real_ms();
  for (int attempts = 1;; attempts++) {
    s3sink_err e = {0};
    int rc = step(s, c, &e);
    int64_t spent = real_ms() - start;
    if (rc == S3SINK_OK || !e.transient || spent >= budget) {
      if (rc && e.transient)
        s3sink_prefixerr(&e, "after %d attempts over %" PRId64 " s: ", attempts, spent / 1000);
      if (rc && err) *err = e;
      return rc;
    }
    int64_t delay = backoff_ms(s, attempts);
    if (delay > budget - spent) delay = budget - spent;
    struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  }
}

static int check_bucket(s3sink *s, const s3sink_config *c, s3sink_err *err) {
  int rc = s3client_head_bucket(s->client, err);
  if (rc == S3SINK_ES3 && c->create_bucket && err &&
      (strcmp(err->s3_code, "NoSuchBucket") == 0 || err->http_status == 404))
    rc = s3client_create_bucket(s->client, err);
  return rc;
}

typedef struct listing {
  s3sink *s;
  s3sink_err *err;
} listing;

static int note_key(void *ud, const char *key, int64_t size) {
  (void)size;
  listing *l = ud;
  bool owns;
  int rc = naming_owns(l->s->naming, l->s->prefix, key, &owns, l->err);
  if (rc == S3SINK_OK && owns) take_key(&l->s->last_named, key);
  return rc;
}

static int list_prefix(s3sink *s, const s3sink_config *c, s3sink_err *err) {
  (void)c;
  char *start = NULL;
  int rc = naming_start_after(s->naming, s->prefix, s->writer_id, wall_ms(s), &start, err);
  if (rc) return rc;
  listing l = {s, err};
  rc = s3client_list(s->client, s->prefix, start, note_key, &l, err);
  free(start);
  return rc;
}

/* Queues what an earlier run left in the spool, under the keys it was given (or new
 * ones, for segments it never named), before anything this sink writes. */
static int take_over_spool(s3sink *s, s3sink_err *err) {
  size_t n = spool_recovered_count(s->spool);
  for (size_t i = 0; i < n; i++) {
    const spool_segment *g = spool_recovered(s->spool, i);
    if (g->key) take_key(&s->last_named, g->key);
  }
  for (size_t i = 0; i < n; i++) {
    const spool_segment *g = spool_recovered(s->spool, i);
    pending *p = calloc(1, sizeof *p);
    if (!p) return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
    bytebuf_init(&p->body, SIZE_MAX);
    p->segment = g->id;
    p->rows = g->rows;
    p->len = g->len;
    p->row_bytes = g->len > s->header_len ? g->len - s->header_len : 0;
    p->first_time = g->first_time;
    p->last_time = g->last_time;
    p->extension = strdup(g->extension);
    p->content_type = strdup(g->content_type);
    int rc = S3SINK_OK;
    if (g->key) p->key = strdup(g->key);
    else if ((rc = name_object(s, g->rows, g->len, g->first_time, g->last_time, g->extension,
                               &p->key, err)) == S3SINK_OK)
      rc = spool_rename(s->spool, g->id, p->key, err);
    if (rc == S3SINK_OK && (!p->key || !p->extension || !p->content_type))
      rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
    if (rc) {
      pending_free(p);
      return rc;
    }
    enqueue(s, p);
  }
  return S3SINK_OK;
}

int s3sink_open(const s3sink_config *given, s3sink **out, s3sink_err *err) {
  *out = NULL;
  s3sink_config resolved;
  int rc = options_resolve(given, &resolved, err);
  if (rc) return rc;
  const s3sink_config *c = &resolved;
  s3sink *s = calloc(1, sizeof *s);
  if (!s) return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  s->interval_ms = c->write_interval_ms;
  s->max_retry_ms = c->max_retry_ms;
  s->clock = c->clock;
  s->clock_ud = c->clock_ud;
  s->max_buffer = (size_t)c->max_buffer_bytes;
  s->spool_max = (uint64_t)c->spool_max_bytes;
  s->spool_object_max = s->spool_max / 4 < SPOOL_OBJECT_MAX ? s->spool_max / 4 : SPOOL_OBJECT_MAX;
  s->background = c->background_uploads && !c->no_timer;
  s->rng = (uint64_t)(uintptr_t)s ^ ((uint64_t)clock_ms(CLOCK_REALTIME) << 20) ^ 0x9E3779B97F4A7C15ULL;
  bytebuf_init(&s->buf, SIZE_MAX);
  bytebuf_init(&s->scratch, SIZE_MAX);
  s->prefix = strdup(c->prefix);
  s->bucket = strdup(c->bucket);
  s->writer_id = c->writer_id ? strdup(c->writer_id) : NULL;
  if (!s->prefix || !s->bucket || (c->writer_id && !s->writer_id)) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }

  if ((rc = luahost_new(&s->lua, err))) goto fail;
  if ((rc = formatter_open_on(s->lua, c->format, c->columns, c->ncolumns, &s->fmt, err)))
    goto fail;
  if ((rc = naming_open(s->lua, c->naming, &s->naming, err))) goto fail;

  const char *header;
  s3sink_formatter_header(s->fmt, &header, &s->header_len, NULL);
  if (s->header_len >= s->max_buffer) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "the format's header is larger than max_buffer_bytes");
    goto fail;
  }
  if (!c->spool_dir) {
    s->buf.max = s->max_buffer;
    if (!bytebuf_append(&s->buf, header, s->header_len)) {
      rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
      goto fail;
    }
    s->complete_len = s->header_len;
  } else if ((rc = spool_open(c->spool_dir, s->bucket, s->prefix, header, s->header_len,
                              s3sink_formatter_extension(s->fmt),
                              s3sink_formatter_content_type(s->fmt), &s->spool, err))) {
    goto fail;
  }

  s3client_config cc = {
      .endpoint = c->endpoint, .region = c->region, .bucket = c->bucket,
      .virtual_hosted = c->virtual_hosted, .access_key = c->access_key,
      .secret_key = c->secret_key, .session_token = c->session_token,
      .connect_timeout_ms = (long)c->connect_timeout_ms,
      .request_timeout_ms = (long)c->request_timeout_ms,
      .insecure_tls = c->insecure_tls, .ca_file = c->ca_file,
  };
  if ((rc = s3client_new(&cc, &s->client, err))) goto fail;
  int64_t budget = s->max_retry_ms >= 0 && s->max_retry_ms < OPEN_RETRY_MS ? s->max_retry_ms
                                                                            : OPEN_RETRY_MS;
  if ((rc = with_retries(s, c, check_bucket, budget, err)) ||
      (rc = with_retries(s, c, list_prefix, budget, err)))
    goto fail;
  if (s->last_named && !(s->last_uploaded = strdup(s->last_named))) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  if (s->spool && (rc = take_over_spool(s, err))) goto fail;

  s->last_upload_ms = policy_ms(s);
  s->stats.last_write_ms = wall_ms(s);
  if (!c->no_timer) {
    if (pthread_create(&s->thread, NULL, uploader_main, s) != 0) {
      rc = s3sink_seterr(err, S3SINK_ENOMEM, "cannot start the sink's thread");
      goto fail;
    }
    s->has_thread = true;
  }
  *out = s;
  return S3SINK_OK;
fail:
  s3sink_free(s);
  return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Host calls                                                                           */

static int append_row(s3sink *s, const char *bytes, size_t len, s3sink_err *err) {
  if (s->spool && s->buf.len + len > SPOOL_CHUNK && s->buf.len) {
    int rc = spool_append(s->spool, s->buf.data, s->buf.len, err);
    if (rc) return stop_uploads(s, err);
    s->buf.len = 0;
  }
  if (!bytebuf_append(&s->buf, bytes, len)) /* fits() made room: only malloc can fail */
    return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory buffering a row");
  return S3SINK_OK;
}

/* Internal functions take a non-NULL error: the public ones give them one. */
#define ENSURE_ERR(err) \
  s3sink_err local_err_; \
  if (!(err)) (err) = &local_err_

static void count_row(s3sink *s, int64_t time, size_t len) {
  if (!s->have_open_first) {
    s->open_first_time = time;
    s->have_open_first = true;
  }
  s->open_last_time = time;
  s->rows++;
  s->row_bytes += len;
}

/* Waits for room for the row in `scratch` (backpressure) and appends it. */
static int append_held(s3sink *s, s3sink_err *err) {
  size_t len = s->scratch.len;
  int rc;
  while (!fits(s, len)) {
    if (s->interrupted)
      return s3sink_seterr(err, S3SINK_ESTATE,
                           "the host interrupted the sink while this row waited for room in "
                           "the buffer; the row was not accepted");
    if (!s->has_thread || s->stopping)
      return s3sink_seterr(err, S3SINK_ENOMEM,
                           "the buffer is full (%s) and the sink has no thread to upload it: "
                           "flush(), or open the sink with its timer; nothing was lost",
                           s->spool ? "spool_max_bytes" : "max_buffer_bytes");
    if ((rc = make_room(s, len, err))) return rc;
    if (!fits(s, len)) pthread_cond_wait(&s->cv, &s->mu);
  }
  if ((rc = append_row(s, s->scratch.data, len, err))) return rc;
  count_row(s, s->held_time, len);
  return S3SINK_OK;
}

/* Formats a row and appends it if it fits; else keeps it in `scratch` (copied out of the
 * Lua state, which naming an object uses meanwhile) and returns S3SINK_EAGAIN. */
static int format_row(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                      int diff, s3sink_err *err) {
  if (s->closed) return s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed");
  if (s->failed) return failure_error(s, err);
  if (s->held)
    return s3sink_seterr(err, S3SINK_ESTATE, "a row is held: call s3sink_write_held first");
  const char *bytes;
  size_t len;
  int rc = s3sink_formatter_row(s->fmt, values, nvalues, time, diff, &bytes, &len, err);
  if (rc) return rc;
  if (fits(s, len)) {
    if ((rc = append_row(s, bytes, len, err))) return rc;
    count_row(s, time, len);
    return S3SINK_OK;
  }
  s->scratch.len = 0;
  if (!bytebuf_append(&s->scratch, bytes, len))
    return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory buffering a row");
  s->held_time = time;
  return S3SINK_EAGAIN;
}

int s3sink_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                 int diff, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = format_row(s, values, nvalues, time, diff, err);
  if (rc == S3SINK_EAGAIN) rc = append_held(s, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_try_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                     int diff, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = format_row(s, values, nvalues, time, diff, err);
  if (rc == S3SINK_EAGAIN) {
    s->held = true;
    s3sink_seterr(err, S3SINK_EAGAIN, "the row waits for room: call s3sink_write_held");
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_write_held(s3sink *s, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc;
  if (!s->held) rc = s3sink_seterr(err, S3SINK_ESTATE, "no row is held");
  else if (s->failed) rc = failure_error(s, err);
  else rc = append_held(s, err);
  s->held = false;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_time_end(s3sink *s, int64_t time, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) rc = s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed");
  else if (s->failed) rc = failure_error(s, err);
  else rc = complete_rows_locked(s, time, err);
  if (rc == S3SINK_OK && s->spool && complete_size(s) >= s->spool_object_max)
    rc = seal(s, false, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_flush(s3sink *s, bool forced, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = s->closed ? s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed")
                     : flush_locked(s, forced, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

void s3sink_interrupt(s3sink *s) {
  pthread_mutex_lock(&s->mu);
  s->interrupted = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void stop_thread(s3sink *s) {
  if (!s->has_thread) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->has_thread = false;
}

void s3sink_free(s3sink *s) {
  if (!s) return;
  stop_thread(s);
  while (s->head) {
    pending *p = s->head;
    s->head = p->next;
    pending_free(p);
  }
  naming_free(s->naming);
  s3sink_formatter_free(s->fmt);
  luahost_free(s->lua);
  s3client_free(s->client);
  spool_close(s->spool); /* committed segments stay for the next sink on the folder */
  bytebuf_free(&s->buf);
  bytebuf_free(&s->scratch);
  free(s->last_named);
  free(s->last_uploaded);
  free(s->prefix);
  free(s->bucket);
  free(s->writer_id);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int s3sink_finish(s3sink *s, unsigned flags, s3sink_err *err) {
  ENSURE_ERR(err);
  stop_thread(s);
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) goto out;
  if (flags & S3SINK_DROP_UNFINISHED)
    drop_open_locked(s);
  else if (has_open(s))
    rc = complete_rows_locked(s, s->open_last_time, err);
  if (rc == S3SINK_OK && !(s->spool && (flags & S3SINK_LEAVE_SPOOLED)))
    rc = flush_locked(s, true, err);
  s->closed = rc >= 0;
out:
  pthread_mutex_unlock(&s->mu);
  return rc < 0 ? rc : S3SINK_OK;
}

int s3sink_close(s3sink *s, s3sink_err *err) {
  int rc = s3sink_finish(s, 0, err);
  if (rc == S3SINK_OK) s3sink_free(s);
  return rc;
}

void s3sink_get_stats(s3sink *s, s3sink_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->stats;
  out->buffered_rows = s->rows;
  out->buffered_bytes = s->row_bytes;
  for (const pending *p = s->head; p; p = p->next) {
    out->buffered_rows += p->rows;
    out->buffered_bytes += p->row_bytes;
  }
  out->pending_objects = s->npending;
  out->spool_bytes = s->spool ? spool_bytes(s->spool) : 0;
  pthread_mutex_unlock(&s->mu);
}

void s3sink_last_key(s3sink *s, char *buf, size_t cap) {
  pthread_mutex_lock(&s->mu);
  snprintf(buf, cap, "%s", s->last_uploaded ? s->last_uploaded : "");
  pthread_mutex_unlock(&s->mu);
}

int s3sink_last_error(s3sink *s, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = s->last_err.code;
  if (err) *err = s->last_err;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_failure(s3sink *s, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = s->failed ? failure_error(s, err) : S3SINK_OK;
  pthread_mutex_unlock(&s->mu);
  return rc;
}
