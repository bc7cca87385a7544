/* objhead.c - the headers of the object settings (see objhead.h). */
#include <stdlib.h>
#include <string.h>

#include "bytebuf.h"
#include "objhead.h"
#include "uri.h"

static char *dup_text(const char *a, const char *b) {
  size_t la = strlen(a), lb = b ? strlen(b) : 0;
  char *s = malloc(la + lb + 1);
  if (s) {
    memcpy(s, a, la);
    if (lb) memcpy(s + la, b, lb);
    s[la + lb] = '\0';
  }
  return s;
}

/* Appends name (prefixed) and value; false when out of memory. */
static bool add(objhead *h, const char *prefix, const char *name, const char *value) {
  s3sink_header *v = realloc(h->v, (h->n + 1) * sizeof *v);
  if (!v) return false;
  h->v = v;
  char *n = dup_text(prefix, name), *val = dup_text(value, NULL);
  if (!n || !val) {
    free(n);
    free(val);
    return false;
  }
  h->v[h->n++] = (s3sink_header){n, val};
  return true;
}

/* The tags as S3 takes them in x-amz-tagging: an encoded query, key=value&... */
static char *tagging(const s3sink_map *tags) {
  bytebuf b;
  bytebuf_init(&b, SIZE_MAX);
  bool ok = true;
  for (size_t i = 0; ok && i < tags->n; i++) {
    const s3sink_pair *t = &tags->pairs[i];
    ok = (!i || bytebuf_append(&b, "&", 1)) && uri_encode(&b, t->key, strlen(t->key), false) &&
         bytebuf_append(&b, "=", 1) && uri_encode(&b, t->value, strlen(t->value), false);
  }
  if (!ok || !bytebuf_terminate(&b)) {
    bytebuf_free(&b);
    return NULL;
  }
  return b.data;
}

int objhead_build(const s3sink_config *c, objhead *out, s3sink_err *err) {
  *out = (objhead){NULL, 0};
  bool ok = (!c->storage_class || add(out, "x-amz-storage-class", NULL, c->storage_class)) &&
            (!c->sse || add(out, "x-amz-server-side-encryption", NULL, c->sse)) &&
            (!c->sse_kms_key_id ||
             add(out, "x-amz-server-side-encryption-aws-kms-key-id", NULL, c->sse_kms_key_id));
  if (ok && c->tags.n) {
    char *t = tagging(&c->tags);
    ok = t && add(out, "x-amz-tagging", NULL, t);
    free(t);
  }
  for (size_t i = 0; ok && i < c->metadata.n; i++)
    ok = add(out, "x-amz-meta-", c->metadata.pairs[i].key, c->metadata.pairs[i].value);
  return ok ? S3SINK_OK : err_set(err, S3SINK_ENOMEM, "out of memory");
}

void objhead_free(objhead *h) {
  for (size_t i = 0; i < h->n; i++) {
    free((char *)h->v[i].name);
    free((char *)h->v[i].value);
  }
  free(h->v);
  *h = (objhead){NULL, 0};
}
