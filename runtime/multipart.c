/* multipart.c - objects of multipart_threshold_bytes or more (as stored) go up as S3
 * multipart uploads (see sink_internal.h for the files).
 *
 * The guarantees are those of a PutObject (upload.c): the object's identity, the SHA-256
 * of its whole body, is its s3sink-sha256 metadata (given at creation, so computed
 * first, in the pass that also hashes each part for signing); the key is checked before
 * the upload is created (HeadObject: our own object from an earlier attempt counts as
 * stored, someone else's makes the object take the next key) and CompleteMultipartUpload
 * carries If-None-Match, so nothing is overwritten; a Complete whose answer was lost is
 * recognised by the identity. The upload lives across attempts: a failed part is retried
 * alone, with the usual backoff, and each request that succeeds starts the retry budget
 * afresh. An upload is created only when the object has none, and one that is given up
 * (its key was taken, uploads stopped) is aborted before anything else: never two live
 * uploads for one key. With a spool, the journal records each upload before and after it
 * is created, so a sink recovering the segment aborts it (sink_open.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ascii.h"
#include "error.h"
#include "sink_internal.h"

void sink_multipart_free(multipart *m) {
  if (!m) return;
  for (uint32_t i = 0; m->etags && i < m->etags_cap; i++) free(m->etags[i]);
  free(m->etags);
  free(m->sha);
  free(m->upload_id);
  free(m->upload_key);
  free(m);
}

/* The upload is over (completed, aborted or gone): a next one starts from part 1. */
static void forget_upload(multipart *m) {
  free(m->upload_id);
  free(m->upload_key);
  m->upload_id = m->upload_key = NULL;
  for (uint32_t i = 0; i < m->done; i++) {
    free(m->etags[i]);
    m->etags[i] = NULL;
  }
  m->done = 0;
  m->drop = false;
  if (m->early) { /* its plan skipped the parts sent early: a new upload needs a whole one */
    m->early = false;
    m->planned = false;
  }
}

/* A request went through: the next failure gets a fresh retry budget. */
static void progressed(pending *p) {
  p->failing = false;
  p->attempts = 0;
}

/* Runs with the lock released: the head stays in place (`uploading`). */
#define UNLOCKED(s, stmt)          \
  do {                             \
    pthread_mutex_unlock(&(s)->mu); \
    stmt;                          \
    pthread_mutex_lock(&(s)->mu);   \
  } while (0)

/* AbortMultipartUpload of m's live upload, the lock released meanwhile (`uploading` set,
 * so nothing else touches the upload). */
static int abort_upload(s3sink *s, const multipart *m, s3sink_err *err) {
  bool was_uploading = s->uploading;
  s->uploading = true;
  int rc;
  UNLOCKED(s, rc = s3client_abort_multipart(s->client, m->upload_key, m->upload_id, err));
  s->uploading = was_uploading;
  if (!was_uploading) pthread_cond_broadcast(&s->cv);
  return rc;
}

int sink_multipart_abort(s3sink *s, s3sink_err *err) {
  multipart *m = s->head ? s->head->mp : NULL;
  if (!m || !m->upload_id) return S3SINK_OK;
  int rc = abort_upload(s, m, err);
  if (rc == S3SINK_OK) forget_upload(m);
  else m->drop = true; /* aborted before anything else is tried */
  return rc;
}

/* The part size and count for len bytes, the parts' digests and the identity: one pass
 * over the body, with the lock released. */
static int plan(s3sink *s, multipart *m, const s3body *body, s3sink_err *err) {
  uint64_t len = body->len, part = (uint64_t)s->opt.multipart_part_bytes;
  /* a compressed object can be a little larger than the budget that options_resolve
   * checked: its parts grow just enough to stay within 10000 */
  if ((len + part - 1) / part > S3CLIENT_MAX_PARTS) part = (len + S3CLIENT_MAX_PARTS - 1) / S3CLIENT_MAX_PARTS;
  if (part > S3CLIENT_MAX_PART_BYTES)
    return err_set(err, S3SINK_EINVAL, "an object of %" PRIu64 " bytes does not fit 10000 "
                   "parts of at most 5 GiB", len);
  uint32_t n = (uint32_t)((len + part - 1) / part);
  if (m->early && (part != m->part_bytes || (uint64_t)m->done * part > len)) {
    /* cannot happen while budgets fit 10000 parts; if it did, the upload is made anew */
    m->early = false;
    m->drop = true;
    return err_set(err, S3SINK_EINVAL, "the object's early upload does not match its body: "
                   "it is uploaded again");
  }
  /* kept when hashing failed: the same object has the same plan */
  if (!m->sha) m->sha = calloc(n ? n : 1, sizeof *m->sha);
  if (!m->etags) {
    m->etags = calloc(n ? n : 1, sizeof *m->etags);
    m->etags_cap = m->etags ? (n ? n : 1) : 0;
  }
  if (!m->sha || !m->etags)
    return err_set(err, S3SINK_ENOMEM, "out of memory planning a multipart upload");
  m->part_bytes = part;
  m->nparts = n;
  int rc;
  if (m->early && body->data) {
    /* it keeps the identity it was created with, and its parts sent early need no hash */
    uint64_t off = (uint64_t)m->done * part;
    s3body rest = {.data = body->data + off, .fd = -1, .len = (size_t)(len - off)};
    char whole[65];
    UNLOCKED(s, rc = s3client_hash_parts(s->client, &rest, part, m->sha + m->done, whole, err));
  } else {
    UNLOCKED(s, rc = s3client_hash_parts(s->client, body, part, m->sha, m->identity, err));
  }
  if (rc == S3SINK_OK) m->planned = true;
  return rc;
}

/* Before creating an upload: the key may hold our own object already (an earlier attempt,
 * or the crashed run whose spool this is, completed it) or someone else's. */
static int check_key(s3sink *s, pending *p, multipart *m, s3client_put_outcome *outcome,
                     bool *free_key, s3sink_err *err) {
  char found[72];
  s3sink_err he;
  int rc;
  UNLOCKED(s, rc = s3client_head_object(s->client, p->key, NULL, 0, found, sizeof found, &he));
  *free_key = false;
  if (rc == S3SINK_OK) {
    *outcome = strcmp(found, m->identity) == 0 ? S3CLIENT_ALREADY_THERE : S3CLIENT_TAKEN;
    return S3SINK_OK;
  }
  if (rc == S3SINK_ES3 && strcmp(he.s3_code, "NoSuchKey") == 0) {
    *free_key = true;
    return S3SINK_OK;
  }
  *err = he;
  return rc;
}

static int create(s3sink *s, pending *p, multipart *m, s3sink_err *err) {
  int rc;
  if (s->spool && (rc = spool_note_upload(s->spool, p->segment, p->key, NULL, err))) return rc;
  char *key = strdup(p->key), *id = NULL;
  if (!key) return err_set(err, S3SINK_ENOMEM, "out of memory");
  const char *ctype = p->content_type ? p->content_type : s->content_type;
  UNLOCKED(s, rc = s3client_create_multipart(s->client, key, ctype, m->identity, &id, err));
  if (rc) {
    free(key);
    return rc;
  }
  m->upload_id = id;
  m->upload_key = key;
  m->done = 0;
  m->drop = false;
  if (s->spool && (rc = spool_note_upload(s->spool, p->segment, key, id, err))) return rc;
  return S3SINK_OK;
}

/* One UploadPart, on its own connection; set up under the lock, run without it. */
typedef struct part_job {
  s3client *client;
  const char *key, *upload_id;
  int number;
  s3body part;
  char sha_hex[65], etag[128];
  int rc;
  s3sink_err err;
} part_job;

static void part_job_init(part_job *j, s3client *client, const multipart *m, const s3body *body,
                          uint32_t i) {
  uint64_t off = (uint64_t)i * m->part_bytes;
  *j = (part_job){.client = client, .key = m->upload_key, .upload_id = m->upload_id,
                  .number = (int)i + 1,
                  .part = {.data = body->data ? body->data + off : NULL, .fd = body->fd,
                           .len = (size_t)(body->len - off < m->part_bytes ? body->len - off
                                                                           : m->part_bytes),
                           .offset = body->data ? 0 : off}};
  ascii_hex(m->sha[i], 32, j->sha_hex);
  /* what a job ended before it finished reports (a thread ended at interpreter exit) */
  j->rc = err_set(&j->err, S3SINK_ESTATE, "the upload of part %d did not finish", j->number);
  j->err.transient = true;
}

static void *run_part_job(void *arg) {
  part_job *j = arg;
  j->rc = s3client_upload_part(j->client, j->key, j->upload_id, j->number, &j->part, j->sha_hex,
                               j->etag, sizeof j->etag, &j->err);
  return NULL;
}

static void join_part_thread(void *arg) { pthread_join(*(pthread_t *)arg, NULL); }

/* Sends the next part, and the one after it at the same time on the second connection
 * (a part is a request's round trip and the server's work: two overlap them). Parts count
 * as done in order: if the first fails, the second is sent again with it next time. */
static int send_parts(s3sink *s, multipart *m, const s3body *body, s3sink_err *err) {
  const uint32_t i = m->done;
  part_job first, second;
  part_job_init(&first, s->client, m, body, i);
  if (i + 1 < m->nparts) part_job_init(&second, s->part_client, m, body, i + 1);
  pthread_mutex_unlock(&s->mu);
  pthread_t helper;
  /* volatile: read after the cleanup handler's setjmp */
  volatile bool started = i + 1 < m->nparts && pthread_create(&helper, NULL, run_part_job, &second) == 0;
  if (started) {
    pthread_cleanup_push(join_part_thread, &helper); /* never leave it using this stack */
    run_part_job(&first);
    pthread_cleanup_pop(1);
  } else {
    run_part_job(&first);
  }
  pthread_mutex_lock(&s->mu);
  part_job *jobs[2] = {&first, started ? &second : NULL};
  for (int k = 0; k < 2 && jobs[k]; k++) {
    if (jobs[k]->rc) {
      *err = jobs[k]->err;
      return jobs[k]->rc;
    }
    if (!(m->etags[i + (uint32_t)k] = strdup(jobs[k]->etag))) return err_set(err, S3SINK_ENOMEM, "out of memory");
    m->done++;
  }
  return S3SINK_OK;
}

static int complete(s3sink *s, multipart *m, s3client_put_outcome *outcome, s3sink_err *err) {
  s3client_part *parts = calloc(m->nparts, sizeof *parts);
  if (!parts) return err_set(err, S3SINK_ENOMEM, "out of memory");
  for (uint32_t i = 0; i < m->nparts; i++) parts[i] = (s3client_part){(int)i + 1, m->etags[i]};
  int rc;
  UNLOCKED(s, rc = s3client_complete_new_object(s->client, m->upload_key, m->upload_id, parts,
                                                m->nparts, m->identity, outcome, err));
  free(parts);
  return rc;
}

/* Whether a failure says the upload is not there any more. */
static bool upload_gone(int rc, const s3sink_err *err) {
  return rc == S3SINK_ES3 && strcmp(err->s3_code, "NoSuchUpload") == 0;
}

static int attempt_steps(s3sink *s, pending *p, multipart *m, const s3body *body,
                         bool interruptible, s3client_put_outcome *outcome, bool *unfinished,
                         s3sink_err *err) {
  int rc;
  if (m->upload_id && m->drop) {
    if ((rc = sink_multipart_abort(s, err))) return rc;
    progressed(p);
  }
  if (!m->planned && (rc = plan(s, m, body, err))) return rc;
  if (!m->upload_id) {
    bool free_key;
    if ((rc = check_key(s, p, m, outcome, &free_key, err))) return rc;
    progressed(p);
    if (!free_key) return S3SINK_OK; /* ours already, or taken: the caller renames */
    if ((rc = create(s, p, m, err))) return rc;
    progressed(p);
  }
  while (m->done < m->nparts) {
    if (interruptible && s->stopping) {
      *unfinished = true; /* the upload stays, for finish() or the next sink on the spool */
      return S3SINK_OK;
    }
    if ((rc = send_parts(s, m, body, err))) {
      if (upload_gone(rc, err)) forget_upload(m); /* the next attempt starts afresh */
      return rc;
    }
    progressed(p);
  }
  rc = complete(s, m, outcome, err);
  if (rc) {
    if (upload_gone(rc, err)) {
      forget_upload(m);
    } else if (rc == S3SINK_ES3 && strcmp(err->s3_code, "ConditionalRequestConflict") == 0) {
      /* S3: another write to the key raced ours; the upload must be made anew */
      m->drop = true;
    }
    return rc;
  }
  if (*outcome == S3CLIENT_CREATED) {
    forget_upload(m);
    return S3SINK_OK;
  }
  /* The key holds an object: our own (an earlier Complete whose answer was lost) or
   * someone else's; either way this upload was not completed now: abort it (if that
   * fails, the next attempt on the object, under its next key, aborts it first). */
  s3sink_err ae;
  sink_multipart_abort(s, &ae);
  return S3SINK_OK;
}

int sink_multipart_attempt(s3sink *s, const s3body *body, bool interruptible,
                           s3client_put_outcome *outcome, bool *unfinished, s3sink_err *err) {
  pending *p = s->head;
  *outcome = S3CLIENT_CREATED;
  *unfinished = false;
  if (!p->mp && !(p->mp = calloc(1, sizeof *p->mp)))
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  s->uploading = true;
  volatile int rc;
  pthread_cleanup_push(sink_upload_abandoned, s); /* the steps run with the lock released */
  rc = attempt_steps(s, p, p->mp, body, interruptible, outcome, unfinished, err);
  pthread_cleanup_pop(0);
  s->uploading = false;
  pthread_cond_broadcast(&s->cv);
  return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Early uploads (see sink_internal.h)                                                   */

/* Bytes of the open object that went (or are going) up early. */
static uint64_t early_covered(const s3sink *s) {
  const multipart *m = s->early ? s->early->mp : NULL;
  return m && m->upload_id ? ((uint64_t)m->done + m->sending) * m->part_bytes : 0;
}

bool sink_early_due(const s3sink *s) {
  if (!s->early_ok || s->early_off || s->failed || s->uploading || s->head || s->nparts != 1)
    return false;
  const sink_part *part = s->first_part;
  uint64_t part_bytes = (uint64_t)s->opt.multipart_part_bytes;
  const multipart *m = s->early ? s->early->mp : NULL;
  if (m && m->done + 1 >= S3CLIENT_MAX_PARTS) return false; /* the rest goes at the seal */
  return part->buf.len >= early_covered(s) + part_bytes;
}

/* A random identity for an upload created before its body is known: the Complete's
 * If-None-Match still refuses to overwrite, and a retried Complete finds its own object
 * by it. */
static bool random_identity(char out[65]) {
  unsigned char bytes[32];
  if (getentropy(bytes, sizeof bytes) != 0) return false;
  ascii_hex(bytes, sizeof bytes, out);
  return true;
}

/* Names the open object and gives it an early multipart state. */
static pending *early_start(s3sink *s, sink_part *part, s3sink_err *err) {
  pending *p = calloc(1, sizeof *p);
  multipart *m = calloc(1, sizeof *m);
  char **etags = calloc(S3CLIENT_MAX_PARTS, sizeof *etags);
  if (!s->early_copy) s->early_copy = malloc((size_t)s->opt.multipart_part_bytes);
  if (!p || !m || !etags || !s->early_copy) {
    free(p);
    free(m);
    free(etags);
    err_set(err, S3SINK_ENOMEM, "out of memory");
    return NULL;
  }
  bytebuf_init(&p->body, SIZE_MAX);
  p->mp = m;
  m->etags = etags;
  m->etags_cap = S3CLIENT_MAX_PARTS;
  m->early = true;
  m->part_bytes = (uint64_t)s->opt.multipart_part_bytes;
  p->part = partition_key_ref(part->key);
  p->codec = s->codec;
  p->level = s->level;
  p->rows = part->rows;
  p->len = part->buf.len;
  p->first_time = part->complete_rows ? part->complete_first_time : part->open_first_time;
  p->last_time = part->open_last_time;
  if (!random_identity(m->identity) ||
      sink_name_object(s, p, s->extension, &p->key, err) != S3SINK_OK) {
    if (!err->code) err_set(err, S3SINK_EIO, "no random bytes for an upload's identity");
    sink_pending_free(p);
    return NULL;
  }
  return p;
}

/* Aborts the early object's upload (one try: a failure leaves it to the bucket's
 * lifecycle rule) and forgets it. */
static void early_abort(s3sink *s, pending *p) {
  multipart *m = p->mp;
  s3sink_err e;
  if (m && m->upload_id) abort_upload(s, m, &e);
  sink_multipart_free(m);
  p->mp = NULL;
}

void sink_early_step(s3sink *s) {
  s3sink_err err = {0};
  sink_part *part = s->first_part;
  if (!s->early && !(s->early = early_start(s, part, &err))) {
    s->early_off = true; /* naming fails the same way at the seal, where it is reported */
    s->early_wake = UINT64_MAX;
    return;
  }
  pending *p = s->early;
  multipart *m = p->mp;
  int rc = S3SINK_OK;
  s->uploading = true;
  if (!m->upload_id) {
    s3client_put_outcome outcome;
    bool free_key;
    rc = check_key(s, p, m, &outcome, &free_key, &err);
    if (rc == S3SINK_OK && !free_key) rc = S3SINK_ES3; /* taken: renamed at the seal */
    if (rc == S3SINK_OK) rc = create(s, p, m, &err);
  }
  if (rc == S3SINK_OK && s->early == p) { /* not sealed meanwhile (else its attempt goes on) */
    part = s->first_part; /* the one open object: its buffer holds this part */
    uint32_t i = m->done;
    memcpy(s->early_copy, part->buf.data + (uint64_t)i * m->part_bytes, (size_t)m->part_bytes);
    s3body body = {.data = s->early_copy, .fd = -1, .len = (size_t)m->part_bytes};
    char etag[128];
    char *key = m->upload_key, *id = m->upload_id; /* kept: only this thread forgets them */
    m->sending = true;
    UNLOCKED(s, rc = s3client_upload_part(s->client, key, id, (int)i + 1, &body, NULL, etag,
                                          sizeof etag, &err));
    m->sending = false;
    if (rc == S3SINK_OK && !(m->etags[i] = strdup(etag))) rc = S3SINK_ENOMEM;
    if (rc == S3SINK_OK) {
      m->done++;
      s->stats.early_bytes += m->part_bytes;
    }
  }
  s->uploading = false;
  pthread_cond_broadcast(&s->cv);
  if (s->early == p) s->early_wake = early_covered(s) + m->part_bytes;
  if (rc == S3SINK_OK) return;
  /* the object goes up whole once sealed (under its key, or renamed if taken) */
  s->early_off = true;
  s->early_wake = UINT64_MAX;
  if (s->early == p) early_abort(s, p);
  else m->drop = true; /* sealed meanwhile: its attempt aborts the upload first */
}

bool sink_early_beyond(const s3sink *s, uint64_t len) { return early_covered(s) > len; }

pending *sink_early_take(s3sink *s, uint64_t len) {
  pending *p = s->early;
  s->early_wake = s->early_ok ? (uint64_t)s->opt.multipart_part_bytes : UINT64_MAX;
  if (!p) return NULL;
  multipart *m = p->mp;
  if (m && early_covered(s) > len) {
    m->early = false; /* made anew: created with the body's own identity */
    m->drop = true;
  }
  s->early = NULL;
  s->early_off = false;
  return p;
}

void sink_early_cancel(s3sink *s, uint64_t keep) {
  pending *p = s->early;
  if (!p || !p->mp || !p->mp->upload_id || (keep && early_covered(s) <= keep)) return;
  while (s->uploading) pthread_cond_wait(&s->cv, &s->mu); /* a part on its way */
  if (s->early == p) early_abort(s, p);
}
