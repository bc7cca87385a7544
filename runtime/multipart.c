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

#include "ascii.h"
#include "error.h"
#include "sink_internal.h"

void sink_multipart_free(multipart *m) {
  if (!m) return;
  for (uint32_t i = 0; m->etags && i < m->nparts; i++) free(m->etags[i]);
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

int sink_multipart_abort(s3sink *s, s3sink_err *err) {
  multipart *m = s->head ? s->head->mp : NULL;
  if (!m || !m->upload_id) return S3SINK_OK;
  bool was_uploading = s->uploading;
  s->uploading = true;
  int rc;
  UNLOCKED(s, rc = s3client_abort_multipart(s->client, m->upload_key, m->upload_id, err));
  s->uploading = was_uploading;
  if (!was_uploading) pthread_cond_broadcast(&s->cv);
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
  if (!m->sha) { /* kept when hashing failed: the same object has the same plan */
    m->sha = calloc(n ? n : 1, sizeof *m->sha);
    m->etags = calloc(n ? n : 1, sizeof *m->etags);
    if (!m->sha || !m->etags) {
      free(m->sha);
      free(m->etags);
      m->sha = NULL;
      m->etags = NULL;
      return err_set(err, S3SINK_ENOMEM, "out of memory planning a multipart upload");
    }
  }
  m->part_bytes = part;
  m->nparts = n;
  int rc;
  UNLOCKED(s, rc = s3client_hash_parts(s->client, body, part, m->sha, m->identity, err));
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

static int send_part(s3sink *s, multipart *m, const s3body *body, s3sink_err *err) {
  uint32_t i = m->done;
  uint64_t off = (uint64_t)i * m->part_bytes;
  s3body part = {.data = body->data ? body->data + off : NULL, .fd = body->fd,
                 .len = (size_t)(body->len - off < m->part_bytes ? body->len - off : m->part_bytes),
                 .offset = body->data ? 0 : off};
  char sha_hex[65], etag[128];
  ascii_hex(m->sha[i], 32, sha_hex);
  int rc;
  UNLOCKED(s, rc = s3client_upload_part(s->client, m->upload_key, m->upload_id, (int)i + 1,
                                        &part, sha_hex, etag, sizeof etag, err));
  if (rc) return rc;
  if (!(m->etags[i] = strdup(etag))) return err_set(err, S3SINK_ENOMEM, "out of memory");
  m->done++;
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
    if ((rc = send_part(s, m, body, err))) {
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
