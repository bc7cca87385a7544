/* sink.c - buffering, sealing and the host's calls (see sink_internal.h for the files).
 *
 * Rows are formatted into the open object of their partition (in memory, or with a spool
 * into the partition's current spool segment); a sink without partitions has one.
 * s3sink_time_end marks them complete. Sealing names a partition's complete minibatches
 * as one object and puts it on the queue of pending objects, which are uploaded oldest
 * first, so keys land in increasing order (in each partition); a failed upload keeps its
 * object (same key, same bytes) at the head of the queue and retries it.
 *
 * Failures: a transient one (reset, timeout, 5xx, throttling) is retried with
 * exponential backoff and full jitter for up to max_retry_ms; a permanent one, or a
 * transient one past that, or a naming script that fails, stops uploads: the sink keeps
 * its rows and every host call returns the error, until a forced flush (or close) asks
 * to try again. Nothing spins and nothing waits without end. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "sink_internal.h"

/* Bytes a partition's complete part would have as an object. */
static uint64_t complete_size(const s3sink *s, const sink_part *part) {
  return s->header_len + part->complete_bytes;
}

static bool part_has_open(const sink_part *part) { return part->rows > part->complete_rows; }

/* Widens the range (has, lo, hi) by [alo, ahi] when `add`. */
static void widen(bool *has, int64_t *lo, int64_t *hi, bool add, int64_t alo, int64_t ahi) {
  if (!add) return;
  if (!*has || alo < *lo) *lo = alo;
  if (!*has || ahi > *hi) *hi = ahi;
  *has = true;
}

/* The rows of a partition written since the last time_end form complete minibatches up to
 * `time`. */
static int complete_part(s3sink *s, sink_part *part, int64_t time, s3sink_err *err) {
  if (!part_has_open(part)) return S3SINK_OK;
  uint64_t rows = part->rows - part->complete_rows;
  if (s->spool) {
    int rc = spool_append(s->spool, part->stream, part->buf.data, part->buf.len, err);
    if (rc == S3SINK_OK)
      rc = spool_commit(s->spool, part->stream, rows, part->open_first_time, time,
                        part->open_has_event, part->open_min_event, part->open_max_event, err);
    if (rc) return sink_stop_uploads(s, err);
    s->spool_mem -= part->buf.len;
    part->buf.len = 0;
  } else {
    part->complete_len = part->buf.len;
  }
  if (part->complete_rows == 0) part->complete_first_time = part->open_first_time;
  part->complete_last_time = time;
  widen(&part->complete_has_event, &part->complete_min_event, &part->complete_max_event,
        part->open_has_event, part->open_min_event, part->open_max_event);
  s->complete_rows += rows;
  s->complete_bytes += part->row_bytes - part->complete_bytes;
  part->complete_rows = part->rows;
  part->complete_bytes = part->row_bytes;
  part->have_open_first = false;
  part->open_has_event = false;
  return S3SINK_OK;
}

/* Every partition's rows written since the last time_end form complete minibatches, up to
 * `time`, or (own_last) up to the time of each one's last row. */
static int complete_rows_locked(s3sink *s, int64_t time, bool own_last, s3sink_err *err) {
  if (!sink_has_open(s)) return S3SINK_OK;
  for (sink_part *part = s->first_part; part; part = part->next) {
    int rc = complete_part(s, part, own_last ? part->open_last_time : time, err);
    if (rc) return rc;
  }
  return S3SINK_OK;
}

/* Drops the rows written since the last time_end. */
static void drop_open_locked(s3sink *s) {
  for (sink_part *part = s->first_part; part; part = part->next) {
    if (s->spool) {
      s->spool_mem -= part->buf.len;
      part->buf.len = 0;
      spool_drop_uncommitted(s->spool, part->stream, NULL);
    } else {
      part->buf.len = part->complete_len;
    }
    s->rows -= part->rows - part->complete_rows;
    s->row_bytes -= part->row_bytes - part->complete_bytes;
    part->rows = part->complete_rows;
    part->row_bytes = part->complete_bytes;
    part->have_open_first = false;
    part->open_has_event = false;
  }
}

/* Memory a partition's buffer may take (without a spool): the budget less what the queued
 * objects and the other partitions' buffers take. */
static size_t part_allowed(const s3sink *s, const sink_part *part) {
  size_t others = s->pending_mem + (s->open_mem - part->buf.cap);
  return s->max_buffer > others ? s->max_buffer - others : 0;
}

/* Grows a partition's buffer within its allowance by `extra` bytes; the capacity it takes
 * is counted in open_mem. */
static bool grow(s3sink *s, sink_part *part, size_t extra) {
  size_t before = part->buf.cap;
  part->buf.max = part_allowed(s, part);
  bool ok = part->buf.len <= part->buf.max && bytebuf_reserve(&part->buf, extra);
  s->open_mem += part->buf.cap - before;
  return ok;
}

/* The header that starts a partition's object in memory, before its first row. */
static bool start_object(s3sink *s, sink_part *part) {
  if (s->spool || part->buf.len) return true;
  if (!grow(s, part, s->header_len)) return false;
  bytebuf_append(&part->buf, s->header, s->header_len);
  part->complete_len = s->header_len;
  return true;
}

int sink_seal_part(s3sink *s, sink_part *part, bool split, s3sink_err *err) {
  int rc;
  if (split && (rc = complete_part(s, part, part->open_last_time, err))) return rc;
  if (part->complete_rows == 0) return S3SINK_OK;
  pending *p = s->spool ? NULL : sink_early_take(s, part->complete_len); /* named already */
  if (!p && !(p = calloc(1, sizeof *p)))
    return sink_stop_uploads(s, sink_err_oom(err, "sealing an object"));
  if (!p->part) {
    bytebuf_init(&p->body, SIZE_MAX);
    p->part = partition_key_ref(part->key);
  }
  p->rows = part->complete_rows;
  p->row_bytes = part->complete_bytes;
  p->len = complete_size(s, part);
  p->codec = s->codec;
  p->level = s->level;
  p->first_time = part->complete_first_time;
  p->last_time = part->complete_last_time;
  p->has_event = part->complete_has_event;
  p->min_event = part->complete_min_event;
  p->max_event = part->complete_max_event;
  if (!p->key && (rc = sink_name_object(s, p, s->extension, &p->key, err))) {
    sink_pending_free(p);
    return sink_stop_uploads(s, err);
  }
  if (s->spool) {
    if ((rc = spool_seal(s->spool, part->stream, p->key, &p->segment, &p->len, err))) {
      sink_pending_free(p);
      return sink_stop_uploads(s, err);
    }
  } else {
    /* the body keeps the buffer; the rows of the unfinished minibatch start a new one */
    size_t tail = part->buf.len - part->complete_len;
    bytebuf rest; /* exactly as large as needed: the sealed body still takes its memory */
    bytebuf_init(&rest, SIZE_MAX);
    rest.map_large = true;
    if (tail && !bytebuf_reserve(&rest, s->header_len + tail)) {
      sink_pending_free(p);
      return sink_stop_uploads(s, sink_err_oom(err, "sealing an object"));
    }
    if (tail) {
      bytebuf_append(&rest, s->header, s->header_len);
      bytebuf_append(&rest, part->buf.data + part->complete_len, tail);
    }
    s->open_mem -= part->buf.cap;
    p->body = part->buf;
    p->body.len = part->complete_len;
    bytebuf_shrink(&p->body);
    p->len = p->body.len;
    part->buf = rest;
    part->complete_len = tail ? s->header_len : 0;
    s->open_mem += part->buf.cap;
  }
  s->rows -= part->complete_rows;
  s->row_bytes -= part->complete_bytes;
  s->complete_rows -= part->complete_rows;
  s->complete_bytes -= part->complete_bytes;
  part->rows -= part->complete_rows;
  part->row_bytes -= part->complete_bytes;
  part->complete_rows = 0;
  part->complete_bytes = 0;
  part->complete_has_event = false;
  sink_enqueue(s, p);
  return S3SINK_OK;
}

int sink_seal(s3sink *s, bool split, s3sink_err *err) {
  for (sink_part *part = s->first_part; part; part = part->next) {
    int rc = sink_seal_part(s, part, split, err);
    if (rc) return rc;
  }
  return S3SINK_OK;
}

/* Whether some partition has bytes in its spool segment that are not committed. */
static bool spool_uncommitted(const s3sink *s) {
  for (const sink_part *part = s->first_part; s->spool && part; part = part->next)
    if (part->stream && spool_has_uncommitted(part->stream)) return true;
  return false;
}

/* Whether n more row bytes of a partition fit the budget, growing its buffer if need be. */
static bool fits(s3sink *s, sink_part *part, size_t n) {
  if (s->spool) return spool_bytes(s->spool) + s->spool_mem + n <= s->spool_max;
  size_t need = n + (part->buf.len ? 0 : s->header_len);
  /* rows stay within the budget even where the buffer has capacity left from before
   * objects were queued */
  if (part->buf.len + need > part_allowed(s, part)) return false;
  if (part->buf.len + need <= part->buf.cap) return true;
  return grow(s, part, need);
}

/* Something that frees room once uploads catch up: names what can be named. Returns
 * S3SINK_OK when waiting for an upload will help, 1 when room was freed now, or an
 * error. */
static int make_room(s3sink *s, size_t n, s3sink_err *err) {
  if (s->failed) return sink_failure_error(s, err);
  if (s->head) return S3SINK_OK;                      /* uploads are under way */
  if (sink_has_complete(s)) return sink_seal(s, false, err);    /* earlier than the interval */
  if (sink_has_open(s) || spool_uncommitted(s))
    return sink_seal(s, true, err);                        /* a minibatch over the budget */
  if (sink_parts_release_idle(s)) return 1; /* buffers of partitions without rows */
  return err_set(err, S3SINK_ENOMEM,
                 "a row of %zu bytes does not fit %s: raise it", n,
                 s->spool ? "spool_max_bytes" : "max_buffer_bytes");
}

/* With a spool, the partitions' buffers reach their segments once they hold a chunk in
 * all; a buffer that grew large is freed then, so memory stays about one chunk. */
static int spill(s3sink *s, s3sink_err *err) {
  for (sink_part *part = s->first_part; part; part = part->next) {
    if (!part->buf.len) continue;
    int rc = spool_append(s->spool, part->stream, part->buf.data, part->buf.len, err);
    if (rc) return sink_stop_uploads(s, err);
    s->spool_mem -= part->buf.len;
    part->buf.len = 0;
    if (part->buf.cap > SPOOL_CHUNK / 16) bytebuf_free(&part->buf);
  }
  return S3SINK_OK;
}

static int append_row(s3sink *s, sink_part *part, const char *bytes, size_t len, s3sink_err *err) {
  if (s->spool && s->spool_mem + len > SPOOL_CHUNK && s->spool_mem) {
    int rc = spill(s, err);
    if (rc) return rc;
  }
  /* fits() made room: only malloc can fail */
  if (!start_object(s, part) || !bytebuf_append(&part->buf, bytes, len))
    return err_set(err, S3SINK_ENOMEM, "out of memory buffering a row");
  if (s->spool) s->spool_mem += len;
  if (part->buf.len >= s->early_wake) { /* a part of the open object is ready to go early */
    s->early_wake = UINT64_MAX;
    pthread_cond_broadcast(&s->cv);
  }
  return S3SINK_OK;
}

/* Internal functions take a non-NULL error: the public ones give them one. */
#define ENSURE_ERR(err) \
  s3sink_err local_err_; \
  if (!(err)) (err) = &local_err_

static void count_row(s3sink *s, sink_part *part, int64_t time, size_t len, bool has_event,
                      int64_t event) {
  if (!part->have_open_first) {
    part->open_first_time = time;
    part->have_open_first = true;
  }
  part->open_last_time = time;
  widen(&part->open_has_event, &part->open_min_event, &part->open_max_event, has_event, event, event);
  part->rows++;
  part->row_bytes += len;
  s->rows++;
  s->row_bytes += len;
}

/* Waits for room for the row in `scratch` (backpressure) and appends it to its partition. */
static int append_held(s3sink *s, s3sink_err *err) {
  size_t len = s->scratch.len;
  int rc;
  while (!fits(s, s->held_part, len)) {
    if (s->interrupted)
      return err_set(err, S3SINK_ESTATE,
                     "the host interrupted the sink while this row waited for room in "
                     "the buffer; the row was not accepted");
    if (!s->has_thread || s->stopping)
      return err_set(err, S3SINK_ENOMEM,
                     "the buffer is full (%s) and the sink has no thread to upload it: "
                     "flush(), or open the sink with its timer; nothing was lost",
                     s->spool ? "spool_max_bytes" : "max_buffer_bytes");
    if ((rc = make_room(s, len, err)) < 0) return rc;
    if (rc == 0 && !fits(s, s->held_part, len)) pthread_cond_wait(&s->cv, &s->mu);
  }
  if ((rc = append_row(s, s->held_part, s->scratch.data, len, err))) return rc;
  count_row(s, s->held_part, s->held_time, len, s->held_has_event, s->held_event);
  return S3SINK_OK;
}

/* Formats a row and appends it to its partition's open object if it fits; else keeps it
 * in `scratch` (and its partition in held_part) and returns S3SINK_EAGAIN. A native
 * encoder writes straight into the open object when the budget has room (rolled back if
 * not); a Lua row() (called once) and a spooled sink go through `scratch`, which also
 * keeps the row out of the Lua state that naming uses meanwhile. */
static int format_row(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                      int diff, s3sink_err *err) {
  if (s->closed) return err_set(err, S3SINK_ESTATE, "the sink is closed");
  if (s->failed) return sink_failure_error(s, err);
  if (s->held)
    return err_set(err, S3SINK_ESTATE, "a row is held: call s3sink_write_held first");
  int rc;
  /* without partition_by or time_column every row goes to the one open object */
  sink_part *part = s->recent;
  bool has_event = false;
  int64_t event = 0;
  if (s->routes_by_values || !part) {
    /* the values route the row before the formatter checks them */
    if (s->routes_by_values && (rc = formatter_check_values(s->fmt, values, nvalues, err)))
      return rc;
    if ((rc = sink_part_route(s, values, &part, err))) return rc;
    has_event = s->row_has_event;
    event = s->row_event;
  }
  size_t allowed;
  if (!s->spool && formatter_is_native(s->fmt) && start_object(s, part) &&
      (allowed = part_allowed(s, part)) >= part->buf.len) {
    size_t start = part->buf.len, before = part->buf.cap;
    part->buf.max = allowed; /* as fits() does: within the budget */
    rc = formatter_append_row(s->fmt, values, nvalues, time, diff, &part->buf, err);
    s->open_mem += part->buf.cap - before;
    if (rc == S3SINK_OK) {
      count_row(s, part, time, part->buf.len - start, has_event, event);
      return S3SINK_OK;
    }
    if (rc != S3SINK_EAGAIN) return rc;
  }
  s->scratch.len = 0;
  rc = formatter_append_row(s->fmt, values, nvalues, time, diff, &s->scratch, err);
  if (rc == S3SINK_EAGAIN) return err_set(err, S3SINK_ENOMEM, "out of memory formatting a row");
  if (rc) return rc;
  size_t len = s->scratch.len;
  if (fits(s, part, len)) {
    if ((rc = append_row(s, part, s->scratch.data, len, err))) return rc;
    count_row(s, part, time, len, has_event, event);
    return S3SINK_OK;
  }
  s->held_time = time;
  s->held_part = part;
  s->held_has_event = has_event;
  s->held_event = event;
  return S3SINK_EAGAIN;
}

/* Ends a host's call: releases the lock, then hands the events noted meanwhile (by this
 * call, or by the sink's thread) to the host's callback. Returns rc. */
static int unlock_delivering(s3sink *s, int rc) {
  bool noted = s->events != NULL;
  pthread_mutex_unlock(&s->mu);
  if (noted) sink_deliver_events(s, true);
  return rc;
}

int s3sink_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                 int diff, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = format_row(s, values, nvalues, time, diff, err);
  if (rc == S3SINK_EAGAIN) {
    rc = append_held(s, err);
    s->held_part = NULL;
  }
  return unlock_delivering(s, rc);
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
  if (!s->opt.events_on_host_calls) { /* its caller may hold a lock the callback takes */
    pthread_mutex_unlock(&s->mu);
    return rc;
  }
  return unlock_delivering(s, rc);
}

int s3sink_write_held(s3sink *s, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc;
  if (!s->held) rc = err_set(err, S3SINK_ESTATE, "no row is held");
  else if (s->failed) rc = sink_failure_error(s, err);
  else rc = append_held(s, err);
  s->held = false;
  s->held_part = NULL;
  return unlock_delivering(s, rc);
}

/* Whether a partition's complete minibatches are as large an object as they may become: a
 * spooled object at its cap, or one at the user's max_object_rows / max_object_bytes. */
static bool object_full(const s3sink *s, const sink_part *part) {
  uint64_t size = complete_size(s, part);
  return part->complete_rows > 0 &&
         ((s->spool && size >= s->spool_object_max) ||
          ((uint64_t)s->opt.max_object_rows && part->complete_rows >= (uint64_t)s->opt.max_object_rows) ||
          ((uint64_t)s->opt.max_object_bytes && size >= (uint64_t)s->opt.max_object_bytes));
}

int s3sink_time_end(s3sink *s, int64_t time, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) rc = err_set(err, S3SINK_ESTATE, "the sink is closed");
  else if (s->failed) rc = sink_failure_error(s, err);
  else rc = complete_rows_locked(s, time, false, err);
  for (sink_part *part = s->first_part; rc == S3SINK_OK && part; part = part->next)
    if (object_full(s, part)) rc = sink_seal_part(s, part, false, err);
  return unlock_delivering(s, rc);
}

int s3sink_flush(s3sink *s, bool forced, s3sink_err *err) {
  ENSURE_ERR(err);
  pthread_mutex_lock(&s->mu);
  int rc = s->closed ? err_set(err, S3SINK_ESTATE, "the sink is closed")
                     : sink_flush_locked(s, forced, err);
  return unlock_delivering(s, rc);
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
  if (s->early) {
    pthread_mutex_lock(&s->mu);
    sink_early_cancel(s, 0); /* its rows are dropped: so are its parts (one try) */
    pthread_mutex_unlock(&s->mu);
    sink_pending_free(s->early);
  }
  free(s->early_copy);
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
  sink_parts_free(s); /* before the spool: streams remove what they never committed */
  naming_free(s->naming);
  keytemplate_free(s->tmpl);
  partition_free(s->partitioner);
  s3sink_formatter_free(s->fmt);
  luahost_free(s->lua);
  s3client_free(s->client);
  s3client_free(s->part_client);
  credcache_free(s->creds); /* after the client, which borrows it */
  spool_close(s->spool); /* committed segments stay for the next sink on the folder */
  free(s->header);
  bytebuf_free(&s->scratch);
  free(s->last_named);
  free(s->last_uploaded);
  free(s->prefix);
  free(s->bucket);
  free(s->writer_id);
  free(s->extension);
  free(s->content_type);
  sink_events_free(s);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->events_mu);
  free(s);
}

int s3sink_finish(s3sink *s, unsigned flags, s3sink_err *err) {
  ENSURE_ERR(err);
  stop_thread(s);
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) goto out;
  if (flags & S3SINK_DROP_UNFINISHED) {
    drop_open_locked(s);
    if (s->early) sink_early_cancel(s, s->first_part ? s->first_part->complete_len : 0);
  } else if (sink_has_open(s))
    rc = complete_rows_locked(s, 0, true, err);
  if (rc == S3SINK_OK && !(s->spool && (flags & S3SINK_LEAVE_SPOOLED)))
    rc = sink_flush_locked(s, true, err);
  s->closed = rc >= 0;
out:
  rc = unlock_delivering(s, rc);
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

#define STAT(field, is_signed) {#field, offsetof(s3sink_stats, field), is_signed}
static const s3sink_stat_field stat_fields[] = {
    STAT(objects, false),        STAT(rows, false),           STAT(bytes, false),
    STAT(buffered_rows, false),  STAT(buffered_bytes, false), STAT(failed_uploads, false),
    STAT(last_write_ms, true),   STAT(pending_objects, false), STAT(spool_bytes, false),
    STAT(upload_ms, false),      STAT(early_bytes, false),
};
#undef STAT

const s3sink_stat_field *s3sink_stat_field_info(size_t i) {
  return i < sizeof stat_fields / sizeof stat_fields[0] ? &stat_fields[i] : NULL;
}

const char *s3sink_event_kind_name(s3sink_event_kind kind) {
  switch (kind) {
  case S3SINK_EVENT_UPLOADED: return "uploaded";
  case S3SINK_EVENT_RETRY: return "retry";
  case S3SINK_EVENT_RECOVERED: return "recovered";
  case S3SINK_EVENT_STOPPED: return "stopped";
  }
  return NULL;
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
