/* sink_parts.c - the partitions' open objects (see sink_internal.h and
 * docs/partitions.md): a row goes to the open object of its partition, found by the
 * partition's identity (computed in C from the row's values) in a hash table. A sink
 * without partitions has one. A partition whose rows are all sealed stays, without a
 * buffer, so it keeps its last key, until its place is needed: at most
 * max_open_partitions are kept, and the least recently written one without rows gives
 * its place to a new one; when every one holds rows, they are sealed first. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sink_internal.h"

int sink_parts_init(s3sink *s, size_t max_parts, s3sink_err *err) {
  size_t n = 16;
  while (n < max_parts && n < ((size_t)1 << 20)) n <<= 1;
  if (!(s->buckets = calloc(n, sizeof *s->buckets))) return err_set(err, S3SINK_ENOMEM, "out of memory");
  s->nbuckets = n;
  s->max_parts = max_parts;
  bytebuf_init(&s->ident, SIZE_MAX);
  return S3SINK_OK;
}

static void free_part(s3sink *s, sink_part *part) {
  if (s->spool) s->spool_mem -= part->buf.len;
  else s->open_mem -= part->buf.cap;
  bytebuf_free(&part->buf);
  spool_stream_free(s->spool, part->stream);
  partition_key_unref(part->key);
  free(part);
}

void sink_parts_free(s3sink *s) {
  for (sink_part *p = s->first_part, *next; p; p = next) {
    next = p->next;
    free_part(s, p);
  }
  s->first_part = s->last_part = s->recent = NULL;
  s->nparts = 0;
  free(s->buckets);
  s->buckets = NULL;
  bytebuf_free(&s->ident);
}

static sink_part **bucket_of(s3sink *s, uint64_t hash) { return &s->buckets[hash & (s->nbuckets - 1)]; }

static void list_remove(s3sink *s, sink_part *p) {
  if (p->prev) p->prev->next = p->next;
  else s->first_part = p->next;
  if (p->next) p->next->prev = p->prev;
  else s->last_part = p->prev;
  p->prev = p->next = NULL;
}

static void list_append(s3sink *s, sink_part *p) {
  p->prev = s->last_part;
  p->next = NULL;
  if (s->last_part) s->last_part->next = p;
  else s->first_part = p;
  s->last_part = p;
}

static void remove_part(s3sink *s, sink_part *part) {
  for (sink_part **at = bucket_of(s, part->key->hash); *at; at = &(*at)->chain)
    if (*at == part) {
      *at = part->chain;
      break;
    }
  list_remove(s, part);
  if (s->recent == part) s->recent = NULL;
  s->nparts--;
  free_part(s, part);
}

static bool idle(const s3sink *s, const sink_part *p) { return p->rows == 0 && p != s->held_part; }

bool sink_parts_release_idle(s3sink *s) {
  bool freed = false;
  for (sink_part *p = s->first_part; p; p = p->next)
    if (idle(s, p) && p->buf.cap && !s->spool) {
      s->open_mem -= p->buf.cap;
      bytebuf_free(&p->buf);
      p->complete_len = 0;
      freed = true;
    }
  return freed;
}

/* Makes a place for one more partition: the least recently written one without rows
 * goes; if every one holds rows, the complete minibatches are sealed, then, if need be,
 * the unfinished one too (it spans more partitions than max_open_partitions). */
static int make_place(s3sink *s, s3sink_err *err) {
  for (int round = 0; round < 3; round++) {
    for (sink_part *p = s->first_part; p; p = p->next)
      if (idle(s, p)) {
        remove_part(s, p);
        return S3SINK_OK;
      }
    if (round == 2) break;
    int rc = sink_seal(s, round == 1, err);
    if (rc) return rc;
  }
  return err_set(err, S3SINK_ESTATE,
                 "every one of the max_open_partitions (%zu) partitions holds a row waiting "
                 "for room: raise max_open_partitions", s->max_parts);
}

static sink_part *lookup(s3sink *s, const char *id, size_t len, uint64_t hash) {
  for (sink_part *p = *bucket_of(s, hash); p; p = p->chain)
    if (p->key->hash == hash && p->key->id_len == len && (len == 0 || memcmp(p->key->id, id, len) == 0))
      return p;
  return NULL;
}

static int add_part(s3sink *s, partkey *k, sink_part **out, s3sink_err *err) {
  sink_part *part = calloc(1, sizeof *part);
  if (!part) {
    partition_key_unref(k);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  part->key = k;
  bytebuf_init(&part->buf, SIZE_MAX);
  part->buf.map_large = true; /* an object's body: see bytebuf.h */
  if (s->spool) {
    char time_field[32];
    partition_key_time_field(k, time_field, sizeof time_field);
    int rc = spool_stream_new(partition_routes(s->partitioner) ? k->path : NULL, time_field,
                              &part->stream, err);
    if (rc) {
      free_part(s, part);
      return rc;
    }
  }
  sink_part **b = bucket_of(s, k->hash);
  part->chain = *b;
  *b = part;
  list_append(s, part);
  s->nparts++;
  *out = part;
  return S3SINK_OK;
}

int sink_part_route(s3sink *s, const s3sink_value *values, sink_part **out, s3sink_err *err) {
  *out = NULL;
  if (!partition_of_row(s->partitioner, values, &s->ident, &s->row_has_event, &s->row_event))
    return err_set(err, S3SINK_ENOMEM, "out of memory routing a row to its partition");
  sink_part *part = s->recent;
  if (part && part->key->id_len == s->ident.len &&
      (s->ident.len == 0 || memcmp(part->key->id, s->ident.data, s->ident.len) == 0)) {
    *out = part;
    return S3SINK_OK;
  }
  uint64_t hash = partition_hash(s->ident.data, s->ident.len);
  part = lookup(s, s->ident.data, s->ident.len, hash);
  if (!part) {
    int rc;
    if (s->nparts >= s->max_parts && (rc = make_place(s, err))) return rc;
    partkey *k = partition_key_new(s->partitioner, s->ident.data, s->ident.len,
                                   s->row_has_event, s->row_event);
    if (!k) return err_set(err, S3SINK_ENOMEM, "out of memory routing a row to its partition");
    if ((rc = add_part(s, k, &part, err))) return rc;
  } else if (part != s->last_part) {
    list_remove(s, part);
    list_append(s, part);
  }
  s->recent = part;
  *out = part;
  return S3SINK_OK;
}
