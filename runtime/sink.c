/* sink.c - buffering and the flush policy: rows are formatted into a buffer that starts
 * with the format's header; complete minibatches are sealed into one object, named by the
 * naming policy and uploaded. A failed upload keeps its object (same key, same bytes) and
 * is retried before anything newer, so keys land in increasing order and no row is lost.
 *
 * Locking: one mutex guards everything but the network call itself; the thread that
 * uploads (the host's, or the timer's) sets `uploading` and drops the lock meanwhile, so
 * the host can keep writing while the timer thread uploads. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "bytebuf.h"
#include "formatter.h"
#include "lua_host.h"
#include "s3client.h"

#define DEFAULT_INTERVAL_MS 60000
#define DEFAULT_MAX_BUFFER ((size_t)1 << 30)
#define MAX_KEY_LEN 1024
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000

struct s3sink {
  pthread_mutex_t mu;
  pthread_cond_t cv;          /* upload finished, or stop requested */
  pthread_t timer;
  bool has_timer, stopping, closed;

  luahost *lua;
  s3sink_formatter *fmt;
  int naming_ref;
  const char *naming_label;
  s3client *client;

  char *prefix, *writer_id, *bucket;
  int64_t interval_ms;
  size_t max_buffer;          /* memory budget: buffered + in-flight bytes */
  bool background;            /* flush() hands uploads to the timer thread */
  s3sink_clock_fn clock;
  void *clock_ud;

  /* header + rows; [0, complete_len) holds the header and complete minibatches */
  bytebuf buf;
  size_t header_len, complete_len;
  uint64_t rows, complete_rows;
  int64_t complete_first_time, complete_last_time, open_first_time, open_last_time;
  bool have_open_first;

  /* the sealed object being uploaded or waiting to be retried */
  bytebuf inflight;
  char *inflight_key;
  uint64_t inflight_rows;
  int inflight_attempts;
  bool has_inflight, uploading, renamed;
  int64_t next_retry_ms, backoff_ms;

  int64_t last_write_ms;
  uint64_t sequence;
  char *last_key;
  s3sink_stats stats;
  s3sink_err timer_err;
};

static int64_t system_clock(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(s3sink *s) { return s->clock(s->clock_ud); }

/* ------------------------------------------------------------------------------------ */
/* Naming                                                                               */

static void set_int_field(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* Calls the naming policy; on success *key is malloc'ed and owned by the caller. */
static int name_object(s3sink *s, int64_t flush_ms, char **key, s3sink_err *err) {
  lua_State *L = luahost_state(s->lua);
  lua_settop(L, 0);
  int handler = luahost_push_handler(s->lua);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->naming_ref);
  lua_getfield(L, -1, "name");
  lua_remove(L, -2);
  lua_createtable(L, 0, 10);
  lua_pushstring(L, s->prefix);
  lua_setfield(L, -2, "prefix");
  lua_pushstring(L, s3sink_formatter_extension(s->fmt));
  lua_setfield(L, -2, "extension");
  set_int_field(L, "sequence", (int64_t)s->sequence);
  set_int_field(L, "flush_time_ms", flush_ms);
  set_int_field(L, "first_time", s->complete_first_time);
  set_int_field(L, "last_time", s->complete_last_time);
  set_int_field(L, "rows", (int64_t)s->complete_rows);
  set_int_field(L, "bytes", (int64_t)s->complete_len);
  if (s->writer_id) {
    lua_pushstring(L, s->writer_id);
    lua_setfield(L, -2, "writer_id");
  }
  if (s->last_key) {
    lua_pushstring(L, s->last_key);
    lua_setfield(L, -2, "last_key");
  }
  char ctx[300];
  snprintf(ctx, sizeof ctx, "naming script %s: name() failed", s->naming_label);
  int rc = luahost_pcall(s->lua, 1, 1, handler, ctx, err);
  if (rc) return rc;
  size_t n;
  const char *k = lua_tolstring(L, -1, &n);
  if (lua_type(L, -1) != LUA_TSTRING)
    rc = s3sink_seterr(err, S3SINK_ESCRIPT, "naming script %s: name() must return a string, not a %s",
                       s->naming_label, luaL_typename(L, -1));
  else if (n == 0 || n > MAX_KEY_LEN || strlen(k) != n)
    rc = s3sink_seterr(err, S3SINK_ESCRIPT,
                       "naming script %s returned an invalid key (empty, over %d bytes, or "
                       "containing NUL)", s->naming_label, MAX_KEY_LEN);
  else if (strncmp(k, s->prefix, strlen(s->prefix)) != 0)
    rc = s3sink_seterr(err, S3SINK_ESCRIPT,
                       "naming script %s returned key '%s', which is not under the prefix '%s'",
                       s->naming_label, k, s->prefix);
  else if (s->last_key && strcmp(k, s->last_key) <= 0)
    rc = s3sink_seterr(err, S3SINK_ESCRIPT,
                       "naming script %s returned key '%s', which does not sort after the "
                       "previous key '%s': keys must increase so readers see every object "
                       "(use a new prefix, or a policy whose keys increase)",
                       s->naming_label, k, s->last_key);
  else if (!(*key = strdup(k)))
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
  lua_settop(L, 0);
  return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Sealing and uploading                                                                */

/* Moves the complete minibatches into the in-flight object. Rows stay in the buffer if
 * anything fails. */
static int seal(s3sink *s, int64_t now, s3sink_err *err) {
  char *key = NULL;
  int rc = name_object(s, now, &key, err);
  if (rc) return rc;
  bytebuf rest;
  bytebuf_init(&rest, SIZE_MAX);
  size_t tail = s->buf.len - s->complete_len;
  if (!bytebuf_reserve(&rest, s->header_len + tail + 4096)) {
    free(key);
    return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory sealing an object");
  }
  bytebuf_append(&rest, s->buf.data, s->header_len);
  bytebuf_append(&rest, s->buf.data + s->complete_len, tail);

  bytebuf_free(&s->inflight);
  s->inflight = s->buf;
  s->inflight.len = s->complete_len;
  s->buf = rest;
  s->inflight_key = key;
  s->inflight_rows = s->complete_rows;
  s->has_inflight = true;
  s->inflight_attempts = 0;
  s->next_retry_ms = 0;
  s->rows -= s->complete_rows;
  s->complete_rows = 0;
  s->complete_len = s->header_len;
  s->backoff_ms = 0;
  return S3SINK_OK;
}

/* Uploads the in-flight object with the lock released. A retry that finds its key taken
 * checks whether the object there is its own earlier attempt (which may have succeeded
 * after all); if the key holds something else, the object gets a new name. */
static int upload_inflight(s3sink *s, s3sink_err *caller_err) {
  s3sink_err local, *err = caller_err ? caller_err : &local; /* the S3 code is needed here */
  bool retry = s->inflight_attempts++ > 0;
  s->uploading = true;
  pthread_mutex_unlock(&s->mu);
  int rc = s3client_put_object(s->client, s->inflight_key, s->inflight.data, s->inflight.len,
                               s3sink_formatter_content_type(s->fmt), true, err);
  bool taken = rc == S3SINK_ES3 && strcmp(err->s3_code, "PreconditionFailed") == 0;
  if (taken && retry) {
    bool mine = false;
    s3sink_err e2;
    if (s3client_object_matches(s->client, s->inflight_key, s->inflight.data, s->inflight.len,
                                &mine, &e2) == S3SINK_OK && mine)
      rc = S3SINK_OK;
  }
  pthread_mutex_lock(&s->mu);
  s->uploading = false;
  pthread_cond_broadcast(&s->cv);
  if (rc != S3SINK_OK && taken) {
    /* someone else's object: rename ours (the naming policy sees this key as the last) */
    char *key = NULL;
    free(s->last_key);
    s->last_key = s->inflight_key;
    s->inflight_key = NULL;
    if (name_object(s, now_ms(s), &key, NULL) == S3SINK_OK) {
      s->inflight_key = key;
      s->inflight_attempts = 0;
      s->renamed = true; /* the flush tries the new key at once */
    } else {
      s->inflight_key = strdup(s->last_key); /* keep a key; the next attempt fails again */
    }
  }

  int64_t now = now_ms(s);
  if (rc == S3SINK_OK) {
    s->stats.objects++;
    s->stats.rows += s->inflight_rows;
    s->stats.bytes += s->inflight.len;
    s->last_write_ms = now;
    s->sequence++;
    free(s->last_key);
    s->last_key = s->inflight_key;
    s->inflight_key = NULL;
    s->has_inflight = false;
    s->inflight_rows = 0;
    s->inflight.len = 0;
    return 1;
  }
  s->stats.failed_uploads++;
  s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RETRY_MIN_MS;
  if (s->backoff_ms > RETRY_MAX_MS) s->backoff_ms = RETRY_MAX_MS;
  s->next_retry_ms = now + s->backoff_ms;
  s3sink_prefixerr(err, "upload of '%s' (%" PRIu64 " rows) failed; the rows are kept and retried: ",
                   s->inflight_key, s->inflight_rows);
  return rc;
}

static bool has_complete(const s3sink *s) { return s->complete_len > s->header_len; }

/* The flush policy; called with the lock held. Returns 1 if an object was uploaded (or,
 * for a background flush, sealed and handed to the timer thread), 0 if not, <0 on
 * failure. */
static int flush_locked(s3sink *s, bool forced, bool background, s3sink_err *err) {
  int uploaded = 0, renames = 0;
  for (;;) {
    if (s->uploading) {
      if (!forced) return uploaded;
      while (s->uploading) pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    int64_t now = now_ms(s);
    if (!s->has_inflight) {
      if (!has_complete(s)) return uploaded;
      if (!forced && (uploaded || now - s->last_write_ms < s->interval_ms)) return uploaded;
      int rc = seal(s, now, err);
      if (rc) return rc;
      if (background) {
        pthread_cond_broadcast(&s->cv); /* wakes the timer thread, which uploads it */
        return 1;
      }
    } else if (!forced && (background || now < s->next_retry_ms)) {
      return uploaded; /* the timer thread retries it when its backoff has passed */
    }
    s->renamed = false;
    int rc = upload_inflight(s, err);
    if (rc < 0 && s->renamed && ++renames <= 3) continue;
    if (rc < 0) return rc;
    uploaded = 1;
    /* a non-forced flush uploads one object; a retry that succeeded may be followed by
     * newer complete rows once the interval has passed again */
    if (!forced) return uploaded;
  }
}

static void *timer_main(void *arg) {
  s3sink *s = arg;
  int64_t period = s->interval_ms / 10;
  if (period < 10) period = 10;
  if (period > 250) period = 250;
  pthread_mutex_lock(&s->mu);
  while (!s->stopping) {
    int64_t now = now_ms(s);
    bool due = !s->uploading &&
               (s->has_inflight ? now >= s->next_retry_ms
                                : has_complete(s) && now - s->last_write_ms >= s->interval_ms);
    if (due) {
      s3sink_err e = {0};
      int rc = flush_locked(s, false, false, &e);
      if (rc < 0) s->timer_err = e;
      else if (rc > 0) memset(&s->timer_err, 0, sizeof s->timer_err);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(period % 1000) * 1000000L;
    ts.tv_sec += (time_t)(period / 1000) + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* Open                                                                                 */

static bool valid_writer_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 64) return false;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return false;
  return true;
}

static int check_config(const s3sink_config *c, s3sink_err *err) {
  if (!c) return s3sink_seterr(err, S3SINK_EINVAL, "no configuration given");
  if (!c->bucket || !*c->bucket)
    return s3sink_seterr(err, S3SINK_EINVAL, "no bucket given: set the bucket name");
  if (strchr(c->bucket, '/'))
    return s3sink_seterr(err, S3SINK_EINVAL,
                         "bucket '%s' contains '/': give the bucket name alone and put the "
                         "rest in the prefix", c->bucket);
  if (c->prefix && c->prefix[0] == '/')
    return s3sink_seterr(err, S3SINK_EINVAL,
                         "prefix '%s' starts with '/': S3 keys have no leading slash, drop it",
                         c->prefix);
  if (c->write_interval_ms < 0)
    return s3sink_seterr(err, S3SINK_EINVAL,
                         "write_interval_ms is %" PRId64 ": it must be 1 or more milliseconds",
                         c->write_interval_ms);
  if (c->writer_id && !valid_writer_id(c->writer_id))
    return s3sink_seterr(err, S3SINK_EINVAL,
                         "writer_id '%s' is not valid: use 1 to 64 characters from "
                         "A-Z a-z 0-9 . _ -", c->writer_id);
  if ((c->access_key && *c->access_key) != (c->secret_key && *c->secret_key))
    return s3sink_seterr(err, S3SINK_EINVAL,
                         "only one of access_key and secret_key is set: give both, or neither "
                         "for anonymous access");
  return S3SINK_OK;
}

static int note_key(void *ud, const char *key, int64_t size) {
  (void)size;
  s3sink *s = ud;
  if (!s->last_key || strcmp(key, s->last_key) > 0) {
    char *k = strdup(key);
    if (!k) return S3SINK_ENOMEM;
    free(s->last_key);
    s->last_key = k;
  }
  return 0;
}

static int connect_bucket(s3sink *s, const s3sink_config *c, s3sink_err *err) {
  s3client_config cc = {
      .endpoint = c->endpoint, .region = c->region, .bucket = c->bucket,
      .virtual_hosted = c->virtual_hosted, .access_key = c->access_key,
      .secret_key = c->secret_key, .session_token = c->session_token,
      .connect_timeout_ms = c->connect_timeout_ms, .request_timeout_ms = c->request_timeout_ms,
      .insecure_tls = c->insecure_tls, .ca_file = c->ca_file,
  };
  int rc = s3client_new(&cc, &s->client, err);
  if (rc) return rc;
  s3sink_err e = {0};
  rc = s3client_head_bucket(s->client, &e);
  if (rc == S3SINK_ES3 && c->create_bucket &&
      (strcmp(e.s3_code, "NoSuchBucket") == 0 || e.http_status == 404)) {
    rc = s3client_create_bucket(s->client, &e);
  }
  if (rc) {
    if (err) *err = e;
    return rc;
  }
  rc = s3client_list(s->client, s->prefix, note_key, s, err);
  if (rc == S3SINK_ENOMEM) return s3sink_seterr(err, rc, "out of memory listing the prefix");
  return rc;
}

int s3sink_open(const s3sink_config *c, s3sink **out, s3sink_err *err) {
  *out = NULL;
  int rc = check_config(c, err);
  if (rc) return rc;
  s3sink *s = calloc(1, sizeof *s);
  if (!s) return s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->naming_ref = LUA_NOREF;
  s->interval_ms = c->write_interval_ms ? c->write_interval_ms : DEFAULT_INTERVAL_MS;
  s->clock = c->clock ? c->clock : system_clock;
  s->clock_ud = c->clock_ud;
  s->max_buffer = c->max_buffer_bytes ? c->max_buffer_bytes : DEFAULT_MAX_BUFFER;
  s->background = c->background_uploads && !c->no_timer;
  bytebuf_init(&s->buf, SIZE_MAX);
  bytebuf_init(&s->inflight, SIZE_MAX);
  s->prefix = strdup(c->prefix ? c->prefix : "");
  s->bucket = strdup(c->bucket);
  s->writer_id = c->writer_id ? strdup(c->writer_id) : NULL;
  if (!s->prefix || !s->bucket || (c->writer_id && !s->writer_id)) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }

  if ((rc = luahost_new(&s->lua, err))) goto fail;
  if ((rc = formatter_open_on(s->lua, c->format, c->columns, c->ncolumns, &s->fmt, err)))
    goto fail;
  if ((rc = luahost_load_script(s->lua, "scripts/naming", c->naming ? c->naming : "default",
                                "naming", &s->naming_ref, &s->naming_label, err)))
    goto fail;
  lua_State *L = luahost_state(s->lua);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->naming_ref);
  lua_getfield(L, -1, "name");
  bool has_name = lua_isfunction(L, -1);
  lua_settop(L, 0);
  if (!has_name) {
    rc = s3sink_seterr(err, S3SINK_ESCRIPT,
                       "naming script %s must have a function 'name(ctx)' returning the key",
                       s->naming_label);
    goto fail;
  }

  const char *header;
  s3sink_formatter_header(s->fmt, &header, &s->header_len, NULL);
  if (s->header_len >= s->max_buffer || !bytebuf_append(&s->buf, header, s->header_len)) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "the format's header is larger than max_buffer_bytes");
    goto fail;
  }
  s->complete_len = s->header_len;

  if ((rc = connect_bucket(s, c, err))) goto fail;

  s->last_write_ms = now_ms(s);
  if (!c->no_timer) {
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
      rc = s3sink_seterr(err, S3SINK_ENOMEM, "cannot start the sink's timer thread");
      goto fail;
    }
    s->has_timer = true;
  }
  *out = s;
  return S3SINK_OK;
fail:
  s3sink_discard(s);
  return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Host calls                                                                           */

int s3sink_write(s3sink *s, const s3sink_value *values, size_t nvalues, int64_t time,
                 int diff, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc;
  if (s->closed) {
    rc = s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed");
    goto out;
  }
  /* Over the memory budget: with a timer thread, wait for uploads to make room
   * (backpressure); without one nothing would, so fail and keep what was accepted. */
  while (s->buf.len + s->inflight.len >= s->max_buffer) {
    if (s->has_timer && !s->stopping && (s->has_inflight || has_complete(s))) {
      if (!s->has_inflight) {
        if ((rc = seal(s, now_ms(s), err))) goto out;
        pthread_cond_broadcast(&s->cv);
      }
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    rc = s3sink_seterr(err, S3SINK_ENOMEM,
                       "the buffer is full (%zu bytes, max_buffer_bytes): %s; nothing was lost",
                       s->buf.len + s->inflight.len,
                       has_complete(s) || s->has_inflight
                           ? "uploads are failing or too slow, retry after a successful flush"
                           : "call time_end() so complete minibatches can be uploaded");
    goto out;
  }
  const char *bytes;
  size_t len;
  if ((rc = s3sink_formatter_row(s->fmt, values, nvalues, time, diff, &bytes, &len, err)))
    goto out;
  /* the formatted bytes stay valid: nothing ran on the Lua state since */
  if (!bytebuf_append(&s->buf, bytes, len)) {
    rc = s3sink_seterr(err, S3SINK_ENOMEM, "out of memory buffering a row");
    goto out;
  }
  if (!s->have_open_first) {
    s->open_first_time = time;
    s->have_open_first = true;
  }
  s->open_last_time = time;
  s->rows++;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

bool s3sink_has_room(s3sink *s) {
  pthread_mutex_lock(&s->mu);
  bool room = s->buf.len + s->inflight.len < s->max_buffer;
  pthread_mutex_unlock(&s->mu);
  return room;
}

static void complete_locked(s3sink *s, int64_t time) {
  if (s->buf.len == s->complete_len) return;
  if (!has_complete(s)) s->complete_first_time = s->open_first_time;
  s->complete_last_time = time;
  s->complete_len = s->buf.len;
  s->complete_rows = s->rows;
  s->have_open_first = false;
}

int s3sink_time_end(s3sink *s, int64_t time, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = S3SINK_OK;
  if (s->closed) rc = s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed");
  else complete_locked(s, time);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int s3sink_flush(s3sink *s, bool forced, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = s->closed ? s3sink_seterr(err, S3SINK_ESTATE, "the sink is closed")
                     : flush_locked(s, forced, s->background && !forced, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static void stop_timer(s3sink *s) {
  if (!s->has_timer) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->timer, NULL);
  s->has_timer = false;
}

void s3sink_discard(s3sink *s) {
  if (!s) return;
  stop_timer(s);
  if (s->lua) {
    lua_State *L = luahost_state(s->lua);
    luaL_unref(L, LUA_REGISTRYINDEX, s->naming_ref);
  }
  s3sink_formatter_free(s->fmt);
  luahost_free(s->lua);
  s3client_free(s->client);
  bytebuf_free(&s->buf);
  bytebuf_free(&s->inflight);
  free(s->inflight_key);
  free(s->last_key);
  free(s->prefix);
  free(s->bucket);
  free(s->writer_id);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int s3sink_close(s3sink *s, s3sink_err *err) {
  stop_timer(s);
  pthread_mutex_lock(&s->mu);
  /* the host writes nothing more, so an unfinished minibatch is complete too */
  if (s->have_open_first || s->buf.len > s->complete_len) complete_locked(s, s->open_last_time);
  int rc = flush_locked(s, true, false, err);
  s->closed = rc >= 0;
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) return rc; /* nothing is freed: the caller may retry close() or discard */
  s3sink_discard(s);
  return S3SINK_OK;
}

void s3sink_get_stats(s3sink *s, s3sink_stats *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->stats;
  out->buffered_rows = s->rows + s->inflight_rows;
  out->buffered_bytes = (s->buf.len - s->header_len) +
                        (s->has_inflight ? s->inflight.len - s->header_len : 0);
  out->last_write_ms = s->last_write_ms;
  pthread_mutex_unlock(&s->mu);
}

void s3sink_last_key(s3sink *s, char *buf, size_t cap) {
  pthread_mutex_lock(&s->mu);
  snprintf(buf, cap, "%s", s->last_key ? s->last_key : "");
  pthread_mutex_unlock(&s->mu);
}

int s3sink_timer_error(s3sink *s, s3sink_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = s->timer_err.code;
  if (err) *err = s->timer_err;
  pthread_mutex_unlock(&s->mu);
  return rc;
}
