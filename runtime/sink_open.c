/* sink_open.c - s3sink_open: completes and checks the configuration, loads the scripts
 * and the key template, checks the bucket, lists the prefix so that keys continue after an
 * earlier run's (unless keys are named per partition), and takes over what a crashed run
 * left in the spool (see sink_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "awsconfig.h"
#include "error.h"
#include "objhead.h"
#include "options.h"
#include "sink_internal.h"

/* Retries a request of the opening while its failure is transient, for up to `budget`
 * milliseconds. */
typedef int (*open_step)(s3sink *s, const s3sink_config *c, s3sink_err *err);

static int with_retries(s3sink *s, const s3sink_config *c, open_step step, int64_t budget,
                        s3sink_err *err) {
  int64_t start = sink_real_ms();
  for (int attempts = 1;; attempts++) {
    s3sink_err e = {0};
    int rc = step(s, c, &e);
    int64_t spent = sink_real_ms() - start;
    if (rc == S3SINK_OK || !e.transient || spent >= budget) {
      if (rc && e.transient)
        err_prefix(&e, "after %d attempts over %" PRId64 " s: ", attempts, spent / 1000);
      if (rc && err) *err = e;
      return rc;
    }
    int64_t delay = sink_backoff_ms(s, attempts);
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
  if (rc == S3SINK_OK && owns) sink_take_key(&l->s->last_named, key);
  return rc;
}

static int list_prefix(s3sink *s, const s3sink_config *c, s3sink_err *err) {
  (void)c;
  char *start = NULL;
  int rc = naming_start_after(s->naming, s->prefix, s->writer_id, sink_wall_ms(s), &start, err);
  if (rc) return rc;
  listing l = {s, err};
  rc = s3client_list(s->client, s->prefix, start, note_key, &l, err);
  free(start);
  return rc;
}

typedef struct orphans {
  s3sink *s;
  const char *key;
  s3sink_err *err;
} orphans;

static int abort_listed(void *ud, const char *key, const char *upload_id) {
  orphans *o = ud;
  if (strcmp(key, o->key) != 0) return S3SINK_OK; /* a longer key under this one as prefix */
  return s3client_abort_multipart(o->s->client, key, upload_id, o->err);
}

/* Aborts the multipart uploads that the run which left the spool had started for its
 * objects: none of them may be completed now (the objects go up again from their first
 * byte), and their parts would take space until a lifecycle rule removed them. An upload
 * whose id the journal recorded is aborted by id (gone already is fine); one it was
 * creating when it stopped, by listing the uploads of that key, which is this writer's. */
static int abort_orphans(s3sink *s, const s3sink_config *c, s3sink_err *err) {
  (void)c;
  size_t n = spool_recovered_count(s->spool);
  for (size_t i = 0; i < n; i++) {
    const spool_segment *g = spool_recovered(s->spool, i);
    for (size_t j = 0; j < g->nuploads; j++) {
      const spool_upload *u = &g->uploads[j];
      orphans o = {s, u->key, err};
      int rc = u->upload_id ? s3client_abort_multipart(s->client, u->key, u->upload_id, err)
                            : s3client_list_multipart(s->client, u->key, 0, abort_listed, &o, err);
      if (rc) {
        err_prefix(err, "aborting the multipart upload of '%s' that an earlier run left "
                   "(spool_dir '%s'): ", u->key, spool_dir(s->spool));
        return rc;
      }
    }
  }
  return S3SINK_OK;
}

/* The partition of a recovered segment, as its journal recorded it; a segment already
 * named needs it only if its key is taken, so a mismatch leaves it without (NULL). */
static int recovered_part(s3sink *s, const spool_segment *g, partkey **out, s3sink_err *err) {
  *out = NULL;
  int rc;
  if (g->partition) {
    rc = partition_key_recover(s->partitioner, g->partition, g->time_field, out, err);
  } else if (partition_routes(s->partitioner)) {
    rc = err_set(err, S3SINK_EINVAL,
                 "its rows were not partitioned, and this sink partitions (partition_by, "
                 "or time_column with key_template): open a sink without them once to "
                 "upload them, or move the folder away");
  } else {
    rc = (*out = partition_key_new(s->partitioner, "", 0, false, 0)) ? S3SINK_OK
                                                                     : err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  if (rc == S3SINK_EINVAL && g->key) rc = S3SINK_OK;
  else if (rc == S3SINK_EINVAL)
    err_prefix(err, "spool_dir '%s' holds rows not named yet (segment %" PRIu64 "): ",
               spool_dir(s->spool), g->id);
  return rc;
}

/* Queues what an earlier run left in the spool, under the keys it was given (or new
 * ones, for segments it never named), before anything this sink writes. */
static int take_over_spool(s3sink *s, s3sink_err *err) {
  size_t n = spool_recovered_count(s->spool);
  for (size_t i = 0; i < n; i++) {
    const spool_segment *g = spool_recovered(s->spool, i);
    if (g->key) sink_take_key(&s->last_named, g->key);
  }
  for (size_t i = 0; i < n; i++) {
    const spool_segment *g = spool_recovered(s->spool, i);
    pending *p = calloc(1, sizeof *p);
    if (!p) return err_set(err, S3SINK_ENOMEM, "out of memory");
    bytebuf_init(&p->body, SIZE_MAX);
    p->segment = g->id;
    p->rows = g->rows;
    p->len = g->len;
    p->row_bytes = g->len > s->header_len ? g->len - s->header_len : 0;
    p->first_time = g->first_time;
    p->last_time = g->last_time;
    p->extension = strdup(g->extension);
    p->content_type = strdup(g->content_type);
    p->has_event = g->has_event;
    p->min_event = g->min_event;
    p->max_event = g->max_event;
    p->packed = g->packed;
    p->packed_len = g->packed_len;
    p->level = g->level;
    int codec = g->codec ? compress_find(g->codec) : COMPRESS_NONE;
    if (codec < 0) {
      sink_pending_free(p);
      return err_set(err, S3SINK_EINVAL,
                     "spool_dir '%s' holds a segment compressed with '%s', which this build "
                     "does not know: open it with a build that does", spool_dir(s->spool),
                     g->codec);
    }
    p->codec = (compress_codec)codec;
    int rc = recovered_part(s, g, &p->part, err);
    if (rc == S3SINK_OK && g->key) p->key = strdup(g->key);
    else if (rc == S3SINK_OK && (rc = sink_name_object(s, p, g->extension, &p->key, err)) == S3SINK_OK)
      rc = spool_rename(s->spool, g->id, p->key, err);
    if (rc == S3SINK_OK && (!p->key || !p->extension || !p->content_type))
      rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    if (rc) {
      sink_pending_free(p);
      return rc;
    }
    sink_enqueue(s, p);
  }
  return S3SINK_OK;
}

/* The configuration with the endpoint and region the AWS environment and shared files
 * give when the host gave none; their strings are borrowed from *aws (or the
 * environment), `by` says where they came from. */
static int complete_target(const s3sink_config *given, s3sink_config *out, awsconfig *aws,
                           char *endpoint_by, char *region_by, size_t cap, s3sink_err *err) {
  if (!given) return err_set(err, S3SINK_EINVAL, "no configuration given");
  *out = *given;
  endpoint_by[0] = region_by[0] = '\0';
  if (given->endpoint && given->region) return S3SINK_OK;
  int rc = awsconfig_load(aws, given->profile, err);
  if (rc) return rc;
  if (!out->endpoint) out->endpoint = awsconfig_endpoint(aws, endpoint_by, cap);
  if (!out->region) out->region = awsconfig_region(aws, region_by, cap);
  return S3SINK_OK;
}

/* Which key template names objects, if any: key_template, or the partitions' default when
 * partition_by is given without a naming script. Checks the options that go together. */
static int template_text(const s3sink_config *c, const char **text, s3sink_err *err) {
  bool script = strcmp(c->naming, options_default_string("naming")) != 0;
  *text = NULL;
  if (c->key_template && script)
    return err_set(err, S3SINK_EINVAL,
                   "key_template and naming '%s' both name objects: give one of them",
                   c->naming);
  if (c->key_template) *text = c->key_template;
  else if (c->time_column && !script)
    return err_set(err, S3SINK_EINVAL,
                   "time_column '%s' gives the event time to key_template's {date}, {hour}, "
                   "... or to a naming script: set key_template too, e.g. "
                   "'{prefix}dt={date}/hour={hour}/{stamp}-{seq}.{ext}'", c->time_column);
  else if (c->partition_by && !script) *text = keytemplate_default(c->writer_id != NULL);
  return S3SINK_OK;
}

int s3sink_open(const s3sink_config *given, s3sink **out, s3sink_err *err) {
  *out = NULL;
  s3sink_config completed, resolved;
  awsconfig aws = {0};
  char endpoint_by[700], region_by[700];
  int rc = complete_target(given, &completed, &aws, endpoint_by, region_by, sizeof endpoint_by, err);
  if (rc == S3SINK_OK) rc = options_resolve(&completed, &resolved, err);
  if (rc) {
    awsconfig_free(&aws);
    return rc;
  }
  const s3sink_config *c = &resolved;
  s3sink *s = calloc(1, sizeof *s);
  if (!s) {
    awsconfig_free(&aws);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->events_mu, NULL);
  s->events_tail = &s->events;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  s->opt = resolved;
  options_forget_borrowed(&s->opt);
  s->max_buffer = (size_t)c->max_buffer_bytes;
  s->spool_max = (uint64_t)c->spool_max_bytes;
  s->spool_object_max = s->spool_max / 4 < SPOOL_OBJECT_MAX ? s->spool_max / 4 : SPOOL_OBJECT_MAX;
  s->background = c->background_uploads && !c->no_timer;
  s->rng = (uint64_t)(uintptr_t)s ^ ((uint64_t)sink_clock_ms(CLOCK_REALTIME) << 20) ^ 0x9E3779B97F4A7C15ULL;
  bytebuf_init(&s->scratch, SIZE_MAX);
  s->prefix = strdup(c->prefix);
  s->bucket = strdup(c->bucket);
  s->writer_id = c->writer_id ? strdup(c->writer_id) : NULL;
  s->codec = (compress_codec)compress_find(c->compression); /* checked by options_resolve */
  s->level = (int)c->compression_level;
  if (!s->prefix || !s->bucket || (c->writer_id && !s->writer_id)) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }

  const char *tmpl;
  if ((rc = template_text(c, &tmpl, err))) goto fail;
  if (tmpl && (rc = keytemplate_parse(tmpl, c->partition_by, c->time_column != NULL,
                                      c->writer_id != NULL, &s->tmpl, err)))
    goto fail;
  if ((rc = partition_new(c->columns, c->ncolumns, c->partition_by, c->time_column,
                          s->tmpl ? keytemplate_unit(s->tmpl) : PART_UNIT_NONE, &s->partitioner, err)) ||
      (rc = sink_parts_init(s, (size_t)c->max_open_partitions, err)))
    goto fail;
  s->routes_by_values = partition_ncolumns(s->partitioner) > 0 || partition_has_time(s->partitioner);
  /* early uploads name the object before its last row: only where a name cannot depend
   * on its rows (the bundled naming reads the time and sequence; a key template without
   * time_column the flush time) */
  s->early_ok = s->background && !c->spool_dir && s->codec == COMPRESS_NONE && !s->routes_by_values &&
                (s->tmpl || strcmp(c->naming, options_default_string("naming")) == 0);
  s->early_wake = s->early_ok ? (uint64_t)c->multipart_part_bytes : UINT64_MAX;

  if ((rc = luahost_new(&s->lua, err))) goto fail;
  if ((rc = formatter_open_on(s->lua, c->format, c->columns, c->ncolumns, &s->fmt, err)))
    goto fail;
  if (!s->tmpl && (rc = naming_open(s->lua, c->naming, &s->naming, err))) goto fail;

  /* the objects' extension and content type: compression's type, after the format's
   * extension its own ("csv.gz") */
  const compress_codec_info *ci = compress_info(s->codec);
  const char *fext = s3sink_formatter_extension(s->fmt);
  size_t elen = strlen(fext) + (ci->extension ? strlen(ci->extension) + 1 : 0) + 1;
  s->extension = malloc(elen);
  s->content_type = strdup(ci->content_type ? ci->content_type : s3sink_formatter_content_type(s->fmt));
  if (!s->extension || !s->content_type) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  snprintf(s->extension, elen, "%s%s%s", fext, ci->extension ? "." : "", ci->extension ? ci->extension : "");

  const char *header;
  s3sink_formatter_header(s->fmt, &header, &s->header_len, NULL);
  if (s->header_len >= s->max_buffer) {
    rc = err_set(err, S3SINK_ENOMEM, "the format's header is larger than max_buffer_bytes");
    goto fail;
  }
  if (!(s->header = malloc(s->header_len + 1))) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  memcpy(s->header, header, s->header_len);
  if (c->spool_dir && (rc = spool_open(c->spool_dir, s->bucket, s->prefix, header, s->header_len,
                                       s->extension, s->content_type,
                                       s->codec ? ci->name : NULL, s->level, &s->spool, err)))
    goto fail;

  if ((rc = credcache_for_config(c, &s->creds, err))) goto fail;
  objhead settings;
  if ((rc = objhead_build(c, &settings, err))) {
    objhead_free(&settings);
    goto fail;
  }
  s3client_config cc = {
      .endpoint = c->endpoint, .region = c->region, .bucket = c->bucket,
      .virtual_hosted = c->virtual_hosted, .creds = s->creds,
      .connect_timeout_ms = (long)c->connect_timeout_ms,
      .request_timeout_ms = (long)c->request_timeout_ms,
      .insecure_tls = c->insecure_tls, .ca_file = c->ca_file,
      .put_headers = settings.v, .nput_headers = settings.n,
  };
  rc = s3client_new(&cc, &s->client, err);
  if (rc == S3SINK_OK) rc = s3client_new(&cc, &s->part_client, err);
  objhead_free(&settings);
  if (rc) {
    if (endpoint_by[0] || region_by[0])
      err_prefix(err, "(endpoint from %s, region from %s) ", endpoint_by[0] ? endpoint_by : "the options",
                 region_by[0] ? region_by : "the options");
    goto fail;
  }
  int64_t budget = s->opt.max_retry_ms >= 0 && s->opt.max_retry_ms < OPEN_RETRY_MS ? s->opt.max_retry_ms
                                                                            : OPEN_RETRY_MS;
  if ((rc = with_retries(s, c, check_bucket, budget, err)) ||
      (!sink_names_per_partition(s) && (rc = with_retries(s, c, list_prefix, budget, err))))
    goto fail;
  if (s->last_named && !(s->last_uploaded = strdup(s->last_named))) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  if (s->spool && ((rc = with_retries(s, c, abort_orphans, budget, err)) ||
                   (rc = take_over_spool(s, err))))
    goto fail;

  s->last_upload_ms = sink_policy_ms(s);
  s->stats.last_write_ms = sink_wall_ms(s);
  if (!c->no_timer) {
    if (pthread_create(&s->thread, NULL, sink_uploader_main, s) != 0) {
      rc = err_set(err, S3SINK_ENOMEM, "cannot start the sink's thread");
      goto fail;
    }
    s->has_thread = true;
  }
  awsconfig_free(&aws);
  *out = s;
  return S3SINK_OK;
fail:
  awsconfig_free(&aws);
  s3sink_free(s);
  return rc;
}
