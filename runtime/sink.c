/* sink.c - buffering, sealing and the host's calls (see sink_internal.h for the files).
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
 * to try again. Nothing spins and nothing waits without end. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "sink_internal.h"

/* Bytes the open object's complete part would have as an object. */
static uint64_t complete_size(const s3sink *s) { return s->header_len + s->complete_bytes; }

/* The rows written since the last time_end form complete minibatches up to `time`. */
static int complete_rows_locked(s3sink *s, int64_t time, s3sink_err *err) {
  if (!sink_has_open(s)) return S3SINK_OK;
  if (s->spool) {
    int rc = spool_append(s->spool, s->buf.data, s->buf.len, err);
    if (rc == S3SINK_OK)
      rc = spool_commit(s->spool, s->rows - s->complete_rows, s->open_first_time, time, err);
    if (rc) return sink_stop_uploads(s, err);
    s->buf.len = 0;
  } else {
    s->complete_len = s->buf.len;
  }
  if (!sink_has_complete(s)) s->complete_first_time = s->open_first_time;
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

/* Memory the open object's buffer may take (without a spool). */
static size_t budget_left(const s3sink *s) {
  return s->max_buffer > s->pending_mem ? s->max_buffer - s->pending_mem : 0;
}

/* Names the complete minibatches and queues them as one object. With `split`, the rows
 * of the unfinished minibatch go too (it does not fit the budget: it spans objects). A
 * failure stops uploads: nothing is retried in a loop. */
int sink_seal(s3sink *s, bool split, s3sink_err *err) {
  int rc;
  if (split && (rc = complete_rows_locked(s, s->open_last_time, err))) return rc;
  pending *p = calloc(1, sizeof *p);
  if (!p) return sink_stop_uploads(s, sink_err_oom(err, "sealing an object"));
  bytebuf_init(&p->body, SIZE_MAX);
  rc = sink_name_object(s, s->complete_rows, complete_size(s), s->complete_first_time,
                        s->complete_last_time, s->extension, &p->key, err);
  if (rc) {
    free(p);
    return sink_stop_uploads(s, err);
  }
  p->rows = s->complete_rows;
  p->row_bytes = s->complete_bytes;
  p->codec = s->codec;
  p->level = s->level;
  p->first_time = s->complete_first_time;
  p->last_time = s->complete_last_time;
  if (s->spool) {
    if ((rc = spool_seal(s->spool, p->key, &p->segment, &p->len, err))) {
      sink_pending_free(p);
      return sink_stop_uploads(s, err);
    }
  } else {
    /* the body keeps the buffer; the rows of the unfinished minibatch start a new one */
    size_t tail = s->buf.len - s->complete_len;
    bytebuf rest; /* exactly as large as needed: the sealed body still takes its memory */
    bytebuf_init(&rest, s->header_len + tail);
    if (!bytebuf_reserve(&rest, s->header_len + tail)) {
      sink_pending_free(p);
      return sink_stop_uploads(s, sink_err_oom(err, "sealing an object"));
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
  sink_enqueue(s, p);
  return S3SINK_OK;
}

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
  if (s->failed) return sink_failure_error(s, err);
  if (s->head) return S3SINK_OK;                      /* uploads are under way */
  if (sink_has_complete(s)) return sink_seal(s, false, err);    /* earlier than the interval */
  if (sink_has_open(s) || (s->spool && spool_has_uncommitted(s->spool)))
    return sink_seal(s, true, err);                        /* a minibatch over the budget */
  return err_set(err, S3SINK_ENOMEM,
                 "a row of %zu bytes does not fit %s: raise it", n,
                 s->spool ? "spool_max_bytes" : "max_buffer_bytes");
}

static int append_row(s3sink *s, const char *bytes, size_t len, s3sink_err *err) {
  if (s->spool && s->buf.len + len > SPOOL_CHUNK && s->buf.len) {
    int rc = spool_append(s->spool, s->buf.data, s->buf.len, err);
    if (rc) return sink_stop_uploads(s, err);
    s->buf.len = 0;
  }
  if (!bytebuf_append(&s->buf, bytes, len)) /* fits() made room: only malloc can fail */
    return err_set(err, S3SINK_ENOMEM, "out of memory buffering a row");
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
      return err_set(err, S3SINK_ESTATE,
                     "the host interrupted the sink while this row waited for room in "
                     "the buffer; the row was not accepted");
    if (!s->has_thread || s->stopping)
      return err_set(err, S3SINK_ENOMEM,
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

/* Formats a row and appends it if it fits; else keeps it in `scratch` and returns
 * S3SINK_EAGAIN. A native encoder writes straight into the open object when the budget
 * has room (rolled back if not); a Lua row() (called once) and a spooled sink go through
 * `scratch`, which also keeps the row out of the Lua state that naming uses meanwhile. */
static int format_row(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                      int diff, s3sink_err *err) {
  if (s->closed) return err_set(err, S3SINK_ESTATE, "the sink is closed");
  if (s->failed) return sink_failure_error(s, err);
  if (s->held)
    return err_set(err, S3SINK_ESTATE, "a row is held: call s3sink_write_held first");
  int rc;
  if (!s->spool && formatter_is_native(s->fmt) && budget_left(s) >= s->buf.len) {
    size_t start = s->buf.len;
    s->buf.max = budget_left(s); /* as fits() does: capacity stays within the budget */
    rc = formatter_append_row(s->fmt, values, nvalues, time, diff, &s->buf, err);
    if (rc == S3SINK_OK) {
      count_row(s, time, s->buf.len - start);
      return S3SINK_OK;
    }
    if (rc != S3SINK_EAGAIN) return rc;
  }
  s->scratch.len = 0;
  rc = formatter_append_row(s->fmt, values, nvalues, time, diff, &s->scratch, err);
  if (rc == S3SINK_EAGAIN) return err_set(err, S3SINK_ENOMEM, "out of memory formatting a row");
  if (rc) return rc;
  size_t len = s->scratch.len;
  if (fits(s, len)) {
    if ((rc = append_row(s, s->scratch.data, len, err))) return rc;
    count_row(s, time, len);
    return S3SINK_OK;
  }
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
    err_set(err, S3SINK_EAGAIN, "the row waits for room: call s3sink_write_held");
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_write_held(s3sink *s, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc;
  if (!s->held) rc = err_set(err, S3SINK_ESTATE, "no row is held");
  else if (s->failed) rc = sink_failure_error(s, err);
  else rc = append_held(s, err);
  s->held = false;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Whether the complete minibatches are as large an object as they may become: a spooled
 * object at its cap, or one at the user's max_object_rows / max_object_bytes. */
static bool object_full(const s3sink *s) {
  uint64_t size = complete_size(s);
  return (s->spool && size >= s->spool_object_max) ||
         ((uint64_t)s->opt.max_object_rows && s->complete_rows >= (uint64_t)s->opt.max_object_rows) ||
         ((uint64_t)s->opt.max_object_bytes && size >= (uint64_t)s->opt.max_object_bytes);
}

int s3sink_time_end(s3sink *s, int64_t time, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) rc = err_set(err, S3SINK_ESTATE, "the sink is closed");
  else if (s->failed) rc = sink_failure_error(s, err);
  else rc = complete_rows_locked(s, time, err);
  if (rc == S3SINK_OK && object_full(s)) rc = sink_seal(s, false, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_flush(s3sink *s, bool forced, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = s->closed ? err_set(err, S3SINK_ESTATE, "the sink is closed")
                     : sink_flush_locked(s, forced, err);
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
  if (!s->spool && s->head && s->head->mp && s->head->mp->upload_id) {
    /* its rows are dropped: so are its parts (one try; with a spool, the journal keeps
     * the upload for the next sink to abort) */
    s3sink_err e;
    pthread_mutex_lock(&s->mu);
    sink_multipart_abort(s, &e);
    pthread_mutex_unlock(&s->mu);
  }
  while (s->head) {
    pending *p = s->head;
    s->head = p->next;
    sink_pending_free(p);
  }
  naming_free(s->naming);
  s3sink_formatter_free(s->fmt);
  luahost_free(s->lua);
  s3client_free(s->client);
  credcache_free(s->creds); /* after the client, which borrows it */
  spool_close(s->spool); /* committed segments stay for the next sink on the folder */
  bytebuf_free(&s->buf);
  bytebuf_free(&s->scratch);
  free(s->last_named);
  free(s->last_uploaded);
  free(s->prefix);
  free(s->bucket);
  free(s->writer_id);
  free(s->extension);
  free(s->content_type);
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
  else if (sink_has_open(s))
    rc = complete_rows_locked(s, s->open_last_time, err);
  if (rc == S3SINK_OK && !(s->spool && (flags & S3SINK_LEAVE_SPOOLED)))
    rc = sink_flush_locked(s, true, err);
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

int s3sink_refresh_credentials(s3sink *s, s3sink_err *err) {
  return credcache_refresh(s->creds, err); /* its own locks: never waits for an upload */
}

bool s3sink_credentials_source(s3sink *s, char *buf, size_t cap) {
  credcache_source(s->creds, buf, cap);
  return credcache_anonymous(s->creds);
}

int s3sink_failure(s3sink *s, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = s->failed ? sink_failure_error(s, err) : S3SINK_OK;
  pthread_mutex_unlock(&s->mu);
  return rc;
}
