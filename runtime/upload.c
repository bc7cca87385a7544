/* upload.c - the queue of named objects and its uploads: attempts with exponential
 * backoff and full jitter, stopping uploads on what retries cannot fix, the flush policy
 * and the sink's own thread (see sink_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "sink_internal.h"

int64_t sink_clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Real monotonic time: backoff and retry budgets. */
int64_t sink_real_ms(void) { return sink_clock_ms(CLOCK_MONOTONIC); }

/* The flush policy's clock: the host's, or monotonic (a step of the wall clock must not
 * stall or hurry uploads). */
int64_t sink_policy_ms(s3sink *s) { return s->opt.clock ? s->opt.clock(s->opt.clock_ud) : sink_real_ms(); }

/* Wall-clock time for object names. */
int64_t sink_wall_ms(s3sink *s) { return s->opt.clock ? s->opt.clock(s->opt.clock_ud) : sink_clock_ms(CLOCK_REALTIME); }

static uint64_t next_random(s3sink *s) { /* xorshift64* */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return s->rng * 0x2545F4914F6CDD1DULL;
}

/* "Full jitter": uniform in [0, min(cap, base * 2^attempts)]. */
int64_t sink_backoff_ms(s3sink *s, int attempts) {
  int64_t ceiling = BACKOFF_BASE_MS << (attempts < 16 ? attempts : 16);
  if (ceiling > BACKOFF_CAP_MS) ceiling = BACKOFF_CAP_MS;
  return (int64_t)(next_random(s) % (uint64_t)(ceiling + 1));
}

static void wait_until(s3sink *s, int64_t real_deadline_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ms = real_deadline_ms - sink_real_ms();
  if (ms < 1) ms = 1;
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void where_rows_are(const s3sink *s, char *buf, size_t cap) {
  if (s->spool) snprintf(buf, cap, "in spool_dir '%s'", spool_dir(s->spool));
  else snprintf(buf, cap, "in memory");
}

/* Stops uploads on e (whose message already names the object): the host's next call
 * returns it, and so does the caller, with the same message. */
int sink_stop_uploads(s3sink *s, s3sink_err *e) {
  s->failed = true;
  s->failure = *e;
  char where[400];
  where_rows_are(s, where, sizeof where);
  err_prefix(&s->failure, "uploads stopped: ");
  size_t n = strlen(s->failure.msg);
  if (e->s3_code[0] && !strstr(s->failure.msg, e->s3_code))
    n += (size_t)snprintf(s->failure.msg + n, sizeof s->failure.msg - n, " [S3 error %s, HTTP %ld]",
                          e->s3_code, e->http_status);
  if (n < sizeof s->failure.msg)
    snprintf(s->failure.msg + n, sizeof s->failure.msg - n,
             ". Every row is kept %s; a forced flush or close() tries again", where);
  *e = s->failure;
  sink_note_event(s, &(s3sink_event){.kind = S3SINK_EVENT_STOPPED, .code = e->code, .message = e->msg,
                                      .s3_code = e->s3_code[0] ? e->s3_code : NULL});
  pthread_cond_broadcast(&s->cv);
  return e->code;
}

s3sink_err *sink_err_oom(s3sink_err *err, const char *doing) {
  err_set(err, S3SINK_ENOMEM, "out of memory %s", doing);
  return err;
}

int sink_failure_error(const s3sink *s, s3sink_err *err) {
  if (err) *err = s->failure;
  return s->failure.code;
}

void sink_take_key(char **slot, const char *key) {
  if (*slot && strcmp(key, *slot) <= 0) return;
  char *k = strdup(key);
  if (!k) return; /* keeps the older key: names are checked against it, never wrongly */
  free(*slot);
  *slot = k;
}

bool sink_names_per_partition(const s3sink *s) {
  return s->tmpl || partition_routes(s->partitioner);
}

int sink_name_object(s3sink *s, const pending *p, const char *extension, char **key,
                     s3sink_err *err) {
  /* the flush time never goes back within a run: keys increase even if the clock does */
  int64_t now = sink_wall_ms(s);
  if (now < s->last_stamp_ms) now = s->last_stamp_ms;
  bool per_part = sink_names_per_partition(s);
  partkey *part = p->part;
  if (per_part && !part)
    return err_set(err, S3SINK_EINVAL,
                   "the key '%s' of rows an earlier run spooled was taken by another object, "
                   "and they cannot be named again: they were partitioned otherwise than "
                   "this sink partitions; open a sink with the settings that wrote them",
                   p->key ? p->key : "");
  if (per_part && p->key) sink_take_key(&part->last_key, p->key); /* renamed: after it */
  const char *last = per_part ? part->last_key : s->last_named;
  int rc;
  if (s->tmpl) {
    keytemplate_ctx c = {.prefix = s->prefix, .writer_id = s->writer_id, .extension = extension,
                         .part = part, .flush_ms = now, .sequence = s->sequence};
    rc = keytemplate_render(s->tmpl, &c, key, err);
    if (rc == S3SINK_OK && last && strcmp(*key, last) <= 0) {
      rc = err_set(err, S3SINK_EINVAL,
                   "key_template gave key '%s', which does not sort after the partition's "
                   "previous key '%s': keys must increase so readers see every object", *key, last);
      free(*key);
      *key = NULL;
    }
  } else {
    naming_ctx ctx = {
        .prefix = s->prefix, .extension = extension, .writer_id = s->writer_id,
        .last_key = last, .sequence = s->sequence, .rows = p->rows, .bytes = p->len,
        .flush_time_ms = now, .first_time = p->first_time, .last_time = p->last_time,
        .has_event = p->has_event, .min_event = p->min_event, .max_event = p->max_event};
    if (part && partition_ncolumns(s->partitioner)) {
      ctx.partition_path = part->path;
      ctx.npartition = part->nvalues;
      ctx.partition_values = (const char *const *)part->values;
      ctx.partitioner = s->partitioner;
    }
    rc = naming_name(s->naming, &ctx, key, err);
  }
  if (rc == S3SINK_OK) {
    sink_take_key(&s->last_named, *key);
    if (per_part) sink_take_key(&part->last_key, *key);
    s->sequence++;
    s->last_stamp_ms = now;
  }
  return rc;
}

void sink_enqueue(s3sink *s, pending *p) {
  p->next = NULL;
  if (s->tail) s->tail->next = p;
  else s->head = p;
  s->tail = p;
  s->npending++;
  s->pending_mem += p->body.cap;
  pthread_cond_broadcast(&s->cv);
}

void sink_pending_free(pending *p) {
  sink_multipart_free(p->mp);
  bytebuf_free(&p->body);
  partition_key_unref(p->part);
  free(p->key);
  free(p->extension);
  free(p->content_type);
  free(p);
}

static void pop_head(s3sink *s) {
  pending *p = s->head;
  s->head = p->next;
  if (!s->head) s->tail = NULL;
  s->npending--;
  s->pending_mem -= p->body.cap;
  if (s->spool) spool_remove(s->spool, p->segment);
  sink_pending_free(p);
}

/* The head's key was taken by someone else's object: name it anew, after that key. */
static int rename_head(s3sink *s, s3sink_err *err) {
  pending *p = s->head;
  sink_take_key(&s->last_named, p->key);
  char *key = NULL;
  int rc = sink_name_object(s, p, p->extension ? p->extension : s->extension, &key, err);
  if (rc == S3SINK_OK && s->spool) rc = spool_rename(s->spool, p->segment, key, err);
  if (rc) {
    free(key);
    return sink_stop_uploads(s, err);
  }
  free(p->key);
  p->key = key;
  p->next_try_ms = 0;
  return S3SINK_OK;
}

void sink_upload_abandoned(void *arg) {
  s3sink *s = arg;
  pthread_mutex_lock(&s->mu);
  s->uploading = false;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static int put_unlocked(s3sink *s, const char *key, const s3body *body, const char *ctype,
                        s3client_put_outcome *outcome, s3sink_err *err) {
  volatile int rc;
  pthread_cleanup_push(sink_upload_abandoned, s);
  rc = s3client_put_new_object(s->client, key, body, ctype, outcome, err);
  pthread_cleanup_pop(0);
  return rc;
}

/* Compresses the head of the queue, once, with the lock released meanwhile (`uploading`
 * keeps the head in place): in memory, its body is replaced by the compressed bytes,
 * which frees room; in the spool, the compressed file is synced and recorded before any
 * upload, so what an attempt sends is what any later attempt, or a sink recovering the
 * spool, sends. A failure stops uploads (a forced flush tries again). */
static int pack_head(s3sink *s, s3sink_err *err) {
  pending *p = s->head;
  s3body in = {.data = p->body.data, .fd = -1, .len = p->len};
  bytebuf packed;
  bytebuf_init(&packed, SIZE_MAX);
  compress_out out = {.buf = s->spool ? NULL : &packed, .fd = -1};
  int rc = S3SINK_OK;
  if (s->spool && (rc = spool_pack_begin(s->spool, p->segment, &in.fd, &out.fd, err)))
    goto failed;
  s->uploading = true;
  pthread_mutex_unlock(&s->mu);
  rc = compress_body(p->codec, p->level, &in, &out, err);
  if (rc == S3SINK_OK && out.fd >= 0 && fdatasync(out.fd) != 0)
    rc = err_set(err, S3SINK_EIO, "spool_dir '%s': cannot sync a compressed segment: %s",
                 spool_dir(s->spool), strerror(errno));
  pthread_mutex_lock(&s->mu);
  s->uploading = false;
  if (in.fd >= 0) close(in.fd);
  if (out.fd >= 0) close(out.fd);
  if (s->spool) {
    if (rc == S3SINK_OK) rc = spool_pack_end(s->spool, p->segment, out.len, err);
    if (rc) spool_pack_abandon(s->spool, p->segment);
  } else if (rc == S3SINK_OK) {
    char *shrunk = realloc(packed.data, packed.len ? packed.len : 1);
    if (shrunk) {
      packed.data = shrunk;
      packed.cap = packed.len;
    }
    s->pending_mem -= p->body.cap;
    bytebuf_free(&p->body);
    p->body = packed;
    s->pending_mem += p->body.cap;
  } else {
    bytebuf_free(&packed);
  }
  pthread_cond_broadcast(&s->cv); /* room was freed, or the upload thread may go on */
  if (rc == S3SINK_OK) {
    p->packed = true;
    p->packed_len = out.len;
    return S3SINK_OK;
  }
failed:
  err_prefix(err, "compressing '%s' (%" PRIu64 " rows) with %s failed: ", p->key, p->rows,
             compress_info(p->codec)->name);
  s->last_err = *err;
  return sink_stop_uploads(s, err);
}

/* Stops uploads on err after a failed attempt of the head; a multipart upload it had
 * is aborted first (if that fails too, the next attempt aborts it before anything
 * else). */
static int give_up(s3sink *s, s3sink_err *err) {
  pending *p = s->head;
  if (p->mp && p->mp->upload_id) {
    s3sink_err ae;
    if (sink_multipart_abort(s, &ae) != S3SINK_OK) {
      size_t n = strlen(err->msg);
      snprintf(err->msg + n, sizeof err->msg - n, " (aborting its multipart upload failed "
               "too, and is tried again first: %s)", ae.msg);
    }
  }
  s->last_err = *err;
  return sink_stop_uploads(s, err);
}

/* One upload attempt of the head of the queue, with the lock released during each
 * request: one PutObject, or, from multipart_threshold_bytes (as stored) on, a multipart
 * upload, resumed where the last attempt left it. Returns 1 if the object is stored, 0
 * if it was renamed (its key was taken: try again) or the sink's own thread
 * (`interruptible`) stopped between its parts, or a negative code: retried later if
 * transient, else uploads stop. */
static int attempt(s3sink *s, bool interruptible, s3sink_err *caller_err) {
  s3sink_err local, *err = caller_err ? caller_err : &local;
  int rc = S3SINK_OK;
  if (s->head->codec != COMPRESS_NONE && !s->head->packed && (rc = pack_head(s, err))) return rc;
  pending *p = s->head;
  s3body body = {.data = p->body.data, .fd = -1, .len = p->packed ? p->packed_len : p->len};
  if (s->spool && (rc = spool_open_body(s->spool, p->segment, p->packed, &body.fd, err)))
    return sink_stop_uploads(s, err);
  const char *ctype = p->content_type ? p->content_type : s->content_type;
  s3client_put_outcome outcome;
  bool unfinished = false;
  int64_t started = sink_real_ms();
  if (p->mp || (uint64_t)body.len >= (uint64_t)s->opt.multipart_threshold_bytes) {
    rc = sink_multipart_attempt(s, &body, interruptible, &outcome, &unfinished, err);
    if (body.fd >= 0) close(body.fd);
  } else {
    s->uploading = true;
    pthread_mutex_unlock(&s->mu);
    rc = put_unlocked(s, p->key, &body, ctype, &outcome, err);
    if (body.fd >= 0) close(body.fd);
    pthread_mutex_lock(&s->mu);
    s->uploading = false;
    pthread_cond_broadcast(&s->cv);
  }

  if (rc == S3SINK_OK && unfinished) return 0;
  if (rc == S3SINK_OK && outcome == S3CLIENT_TAKEN) {
    s->stats.failed_uploads++;
    err_set(&s->last_err, S3SINK_ES3, "key '%s' was taken by another object: the object "
            "takes the next key", p->key);
    sink_note_object_event(s, S3SINK_EVENT_RETRY, p, 0, &s->last_err);
    rc = rename_head(s, err);
    return rc ? rc : 0;
  }
  if (rc == S3SINK_OK) {
    int64_t now = sink_real_ms();
    if (p->failing) sink_note_object_event(s, S3SINK_EVENT_RECOVERED, p, now - p->first_failure_ms, NULL);
    sink_note_object_event(s, S3SINK_EVENT_UPLOADED, p, now - started, NULL);
    s->stats.upload_ms += (uint64_t)(now - started);
    s->stats.objects++;
    s->stats.rows += p->rows;
    s->stats.bytes += body.len;
    s->stats.last_write_ms = sink_wall_ms(s);
    s->last_upload_ms = sink_policy_ms(s);
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
  int64_t now = sink_real_ms();
  if (!p->failing) {
    p->failing = true;
    p->first_failure_ms = now;
  }
  p->attempts++;
  int64_t spent = now - p->first_failure_ms;
  bool retry = err->transient && (s->opt.max_retry_ms < 0 || spent < s->opt.max_retry_ms);
  if (retry) {
    int64_t delay = sink_backoff_ms(s, p->attempts);
    p->next_try_ms = now + delay;
    err_prefix(err, "upload of '%s' (%" PRIu64 " rows) failed (attempt %d, retried in "
               "%" PRId64 " ms; the rows are kept): ", p->key, p->rows, p->attempts, delay);
    s->last_err = *err;
    sink_note_object_event(s, S3SINK_EVENT_RETRY, p, 0, err);
    return rc;
  }
  if (err->transient)
    err_prefix(err, "upload of '%s' (%" PRIu64 " rows) to bucket '%s' still failed after "
               "%d attempts over %" PRId64 " s (max_retry_ms): ", p->key, p->rows,
               s->bucket, p->attempts, spent / 1000);
  else
    err_prefix(err, "upload of '%s' (%" PRIu64 " rows) to bucket '%s' failed: ", p->key,
               p->rows, s->bucket);
  return give_up(s, err);
}

/* The open object's early upload holds rows of the unfinished minibatch: it is sealed
 * once that one is complete (its time_end), rather than uploaded again. */
static bool early_ahead(const s3sink *s) {
  return s->early && s->nparts == 1 && sink_early_beyond(s, s->first_part->complete_len);
}

static bool interval_passed(s3sink *s) {
  return sink_policy_ms(s) - s->last_upload_ms >= s->opt.write_interval_ms;
}

/* The flush policy, with the lock held (see s3sink_flush). */
int sink_flush_locked(s3sink *s, bool forced, s3sink_err *err) {
  if (!forced) {
    if (s->failed) return sink_failure_error(s, err);
    if (s->background || s->uploading) {
      /* the sink's thread uploads: this only names what is due */
      if (s->background && !s->head && sink_has_complete(s) && interval_passed(s) && !early_ahead(s)) {
        int rc = sink_seal(s, false, err);
        return rc ? rc : 1;
      }
      return 0;
    }
    if (!s->head) {
      if (!sink_has_complete(s) || !interval_passed(s)) return 0;
      int rc = sink_seal(s, false, err);
      if (rc) return rc;
    } else if (s->head->next_try_ms > sink_real_ms()) {
      return 0; /* retried when its backoff has passed */
    }
    for (int renames = 0;; renames++) {
      int rc = attempt(s, false, err);
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
    if (s->failed) return sink_failure_error(s, err); /* the sink's thread gave up meanwhile */
    if (!s->head) {
      if (!sink_has_complete(s)) return uploaded;
      int rc = sink_seal(s, false, err);
      if (rc) return rc;
      continue;
    }
    if (s->head->next_try_ms > sink_real_ms()) {
      wait_until(s, s->head->next_try_ms);
      continue;
    }
    int rc = attempt(s, false, err);
    if (rc > 0) uploaded = 1;
    if (rc < 0 && s->failed) return rc;
  }
}

/* The sink's thread hands its events to the host's callback, without the lock. */
static void deliver_events(s3sink *s) {
  if (!s->events || s->opt.events_on_host_calls) return;
  pthread_mutex_unlock(&s->mu);
  sink_deliver_events(s, false);
  pthread_mutex_lock(&s->mu);
}

void *sink_uploader_main(void *arg) {
  s3sink *s = arg;
  int64_t period = s->opt.write_interval_ms / 10;
  if (period < 10) period = 10;
  if (period > 250) period = 250;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    int64_t now = sink_real_ms(), wake = now + period;
    if (!s->failed && !s->uploading) {
      s3sink_err e;
      if (s->head && s->head->next_try_ms <= now) {
        attempt(s, true, &e);
        deliver_events(s);
        continue;
      }
      if (!s->head && sink_has_complete(s) && interval_passed(s) && !early_ahead(s)) {
        sink_seal(s, false, &e);
        deliver_events(s);
        continue;
      }
      if (sink_early_due(s)) {
        sink_early_step(s);
        continue;
      }
      if (s->head && s->head->next_try_ms < wake) wake = s->head->next_try_ms;
    }
    wait_until(s, wake);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}
