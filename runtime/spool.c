/* spool.c - the crash-safe spool (see spool.h and docs/spool.md): segment files, their
 * journals, fsync before acknowledging, recovery after a crash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ascii.h"
#include "bytebuf.h"
#include "error.h"
#include "spool.h"

#define JOURNAL_MAGIC "s3sink-spool 1"
#define MAX_JOURNAL_BYTES ((size_t)1 << 20)

struct spool {
  char *dir;
  int dir_fd, lock_fd;
  char *bucket, *prefix, *header, *extension, *content_type, *codec;
  int level;
  size_t header_len;
  uint64_t next_id;
  uint64_t bytes;              /* all segment files */
  spool_segment *recovered;
  size_t nrecovered;
};

struct spool_stream {
  char *partition, *time_field; /* NULL: an unpartitioned sink's */
  /* the segment being written */
  bool has_current;
  uint64_t cur_id;
  uint64_t cur_len, cur_committed, cur_rows;
  int64_t cur_first_time;
  bool cur_has_event;
  int64_t cur_min_event, cur_max_event;
};

static int io_error(s3sink_err *err, const spool *sp, const char *what, const char *name) {
  int e = errno;
  return err_set(err, S3SINK_EIO, "spool_dir '%s': cannot %s %s: %s", sp->dir, what,
                 name ? name : "", strerror(e));
}

static void file_name(char *buf, size_t cap, uint64_t id, const char *ext) {
  snprintf(buf, cap, "%020" PRIu64 ".%s", id, ext);
}

static bool write_all(int fd, const void *p, size_t n) {
  const char *q = p;
  while (n) {
    ssize_t w = write(fd, q, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    q += w;
    n -= (size_t)w;
  }
  return true;
}

/* Journal fields are written "=<percent-encoded bytes>", so any string (even empty, or
 * with blanks) is one word. */
static bool append_field(bytebuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  if (!bytebuf_append(b, " =", 2)) return false;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c > ' ' && c < 0x7f && c != '%') {
      if (!bytebuf_append(b, s, 1)) return false;
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      if (!bytebuf_append(b, e, 3)) return false;
    }
  }
  return true;
}

/* Decodes a "=<percent-encoded>" word; NULL if malformed. */
static char *decode_field(const char *w) {
  if (*w != '=') return NULL;
  w++;
  size_t n = strlen(w);
  char *out = malloc(n + 1), *o = out;
  if (!out) return NULL;
  for (; *w; w++) {
    if (*w != '%') {
      *o++ = *w;
      continue;
    }
    int hi = ascii_hexval((unsigned char)w[1]);
    int lo = hi < 0 ? -1 : ascii_hexval((unsigned char)w[2]);
    if (lo < 0) {
      free(out);
      return NULL;
    }
    *o++ = (char)(hi * 16 + lo);
    w += 2;
  }
  *o = '\0';
  if (strlen(out) != (size_t)(o - out)) { /* an encoded NUL */
    free(out);
    return NULL;
  }
  return out;
}

static int append_journal(spool *sp, int fd, const char *line, size_t len, s3sink_err *err) {
  if (!write_all(fd, line, len) || fdatasync(fd) != 0)
    return io_error(err, sp, "write", "a journal");
  return S3SINK_OK;
}

/* Appends a line to the journal of segment id, synced. */
static int append_journal_of(spool *sp, uint64_t id, const char *line, size_t len, s3sink_err *err) {
  char jou[40];
  file_name(jou, sizeof jou, id, "journal");
  int fd = openat(sp->dir_fd, jou, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return io_error(err, sp, "open", jou);
  int rc = append_journal(sp, fd, line, len, err);
  close(fd);
  return rc;
}

/* Opens segment id for writing; the caller closes the descriptor. */
static int open_segment(spool *sp, uint64_t id, int *fd, s3sink_err *err) {
  char seg[40];
  file_name(seg, sizeof seg, id, "seg");
  *fd = openat(sp->dir_fd, seg, O_WRONLY | O_CLOEXEC);
  return *fd < 0 ? io_error(err, sp, "open", seg) : S3SINK_OK;
}

int spool_stream_new(const char *partition, const char *time_field, spool_stream **out,
                     s3sink_err *err) {
  *out = NULL;
  spool_stream *st = calloc(1, sizeof *st);
  if (!st) return err_set(err, S3SINK_ENOMEM, "out of memory");
  if (partition && (!(st->partition = strdup(partition)) ||
                    !(st->time_field = strdup(time_field ? time_field : "")))) {
    spool_stream_free(NULL, st);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  *out = st;
  return S3SINK_OK;
}

void spool_stream_free(spool *sp, spool_stream *st) {
  if (!st) return;
  if (sp && st->has_current && st->cur_rows == 0) spool_remove(sp, st->cur_id);
  free(st->partition);
  free(st->time_field);
  free(st);
}

/* ------------------------------------------------------------------------------------ */
/* The current segment                                                                  */

static int start_segment(spool *sp, spool_stream *st, s3sink_err *err) {
  char seg[40], jou[40];
  uint64_t id = sp->next_id;
  file_name(seg, sizeof seg, id, "seg");
  file_name(jou, sizeof jou, id, "journal");
  int fd = openat(sp->dir_fd, seg, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return io_error(err, sp, "create", seg);
  int jfd = openat(sp->dir_fd, jou, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
  if (jfd < 0) {
    int rc = io_error(err, sp, "create", jou);
    close(fd);
    unlinkat(sp->dir_fd, seg, 0);
    return rc;
  }
  bytebuf line;
  bytebuf_init(&line, SIZE_MAX);
  char level[24];
  snprintf(level, sizeof level, " %d", sp->level);
  bool ok = bytebuf_append(&line, JOURNAL_MAGIC, strlen(JOURNAL_MAGIC)) &&
            append_field(&line, sp->bucket) && append_field(&line, sp->prefix) &&
            append_field(&line, sp->extension) && append_field(&line, sp->content_type) &&
            (!sp->codec || (append_field(&line, sp->codec) && bytebuf_append_str(&line, level))) &&
            (!st->partition ||
             (append_field(&line, st->partition) && append_field(&line, st->time_field))) &&
            bytebuf_append(&line, "\n", 1);
  int rc = S3SINK_OK;
  if (!ok) rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  else if (!write_all(fd, sp->header, sp->header_len)) rc = io_error(err, sp, "write", seg);
  else if ((rc = append_journal(sp, jfd, line.data, line.len, err)) == S3SINK_OK && fsync(sp->dir_fd) != 0)
    rc = io_error(err, sp, "sync", "the folder");
  bytebuf_free(&line);
  close(fd);
  close(jfd);
  if (rc) {
    unlinkat(sp->dir_fd, jou, 0);
    unlinkat(sp->dir_fd, seg, 0);
    return rc;
  }
  sp->next_id++;
  st->has_current = true;
  st->cur_id = id;
  st->cur_len = st->cur_committed = sp->header_len;
  st->cur_rows = 0;
  st->cur_has_event = false;
  sp->bytes += sp->header_len;
  return S3SINK_OK;
}

int spool_append(spool *sp, spool_stream *st, const void *bytes, size_t n, s3sink_err *err) {
  int rc, fd;
  if (!st->has_current && (rc = start_segment(sp, st, err))) return rc;
  if (n == 0) return S3SINK_OK;
  if ((rc = open_segment(sp, st->cur_id, &fd, err))) return rc;
  ssize_t w = pwrite(fd, bytes, n, (off_t)st->cur_len);
  if (w != (ssize_t)n) {
    /* a short write leaves junk after cur_len: later writes overwrite it, and recovery
     * cuts it off */
    if (w >= 0 || errno == 0) errno = ENOSPC;
    rc = io_error(err, sp, "write", "a segment");
    close(fd);
    return rc;
  }
  close(fd);
  st->cur_len += n;
  sp->bytes += n;
  return S3SINK_OK;
}

int spool_commit(spool *sp, spool_stream *st, uint64_t rows, int64_t first_time,
                 int64_t last_time, bool has_event, int64_t min_event, int64_t max_event,
                 s3sink_err *err) {
  int rc, fd;
  if (!st->has_current && (rc = start_segment(sp, st, err))) return rc;
  if ((rc = open_segment(sp, st->cur_id, &fd, err))) return rc;
  bool synced = fdatasync(fd) == 0;
  close(fd);
  if (!synced) return io_error(err, sp, "sync", "a segment");
  if (st->cur_rows == 0) st->cur_first_time = first_time;
  bool ev = st->cur_has_event || has_event;
  int64_t lo = st->cur_min_event, hi = st->cur_max_event;
  if (has_event && (!st->cur_has_event || min_event < lo)) lo = min_event;
  if (has_event && (!st->cur_has_event || max_event > hi)) hi = max_event;
  char text[200];
  int n = snprintf(text, sizeof text, "commit %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64,
                   st->cur_len, st->cur_rows + rows, st->cur_first_time, last_time);
  if (ev) n += snprintf(text + n, sizeof text - (size_t)n, " %" PRId64 " %" PRId64, lo, hi);
  text[n++] = '\n';
  if ((rc = append_journal_of(sp, st->cur_id, text, (size_t)n, err))) return rc;
  st->cur_committed = st->cur_len;
  st->cur_rows += rows;
  st->cur_has_event = ev;
  st->cur_min_event = lo;
  st->cur_max_event = hi;
  return S3SINK_OK;
}

int spool_drop_uncommitted(spool *sp, spool_stream *st, s3sink_err *err) {
  if (!st->has_current || st->cur_len == st->cur_committed) return S3SINK_OK;
  int fd, rc = open_segment(sp, st->cur_id, &fd, err);
  if (rc) return rc;
  bool cut = ftruncate(fd, (off_t)st->cur_committed) == 0;
  close(fd);
  if (!cut) return io_error(err, sp, "truncate", "a segment");
  sp->bytes -= st->cur_len - st->cur_committed;
  st->cur_len = st->cur_committed;
  return S3SINK_OK;
}

bool spool_has_committed(const spool_stream *st) { return st->has_current && st->cur_rows > 0; }

bool spool_has_uncommitted(const spool_stream *st) {
  return st->has_current && st->cur_len > st->cur_committed;
}

static int key_line(const char *key, bytebuf *line) {
  bytebuf_init(line, SIZE_MAX);
  return bytebuf_append(line, "key", 3) && append_field(line, key) &&
         bytebuf_append(line, "\n", 1);
}

int spool_seal(spool *sp, spool_stream *st, const char *key, uint64_t *id, uint64_t *len,
               s3sink_err *err) {
  if (!spool_has_committed(st))
    return err_set(err, S3SINK_ESTATE, "spool: no committed rows to seal");
  bytebuf line;
  if (!key_line(key, &line)) {
    bytebuf_free(&line);
    return err_set(err, S3SINK_ENOMEM, "out of memory");
  }
  int rc = append_journal_of(sp, st->cur_id, line.data, line.len, err);
  bytebuf_free(&line);
  if (rc) return rc;
  *id = st->cur_id;
  *len = st->cur_committed;
  /* bytes of an unfinished minibatch move to a new current segment */
  uint64_t tail = st->cur_len - st->cur_committed, from = st->cur_committed;
  uint64_t old_id = st->cur_id;
  st->has_current = false;
  if (tail) {
    char seg[40];
    file_name(seg, sizeof seg, old_id, "seg");
    int old_fd = openat(sp->dir_fd, seg, O_RDWR | O_CLOEXEC);
    if (old_fd < 0) return io_error(err, sp, "open", seg);
    if ((rc = start_segment(sp, st, err)) == S3SINK_OK) {
      char chunk[64 * 1024];
      for (uint64_t done = 0; rc == S3SINK_OK && done < tail;) {
        size_t n = tail - done < sizeof chunk ? (size_t)(tail - done) : sizeof chunk;
        if (pread(old_fd, chunk, n, (off_t)(from + done)) != (ssize_t)n)
          rc = io_error(err, sp, "read", "a segment");
        else
          rc = spool_append(sp, st, chunk, n, err);
        done += n;
      }
    }
    if (rc == S3SINK_OK && ftruncate(old_fd, (off_t)from) != 0)
      rc = io_error(err, sp, "truncate", "a segment");
    if (rc == S3SINK_OK) sp->bytes -= tail;
    close(old_fd);
  }
  return rc;
}

int spool_rename(spool *sp, uint64_t id, const char *key, s3sink_err *err) {
  bytebuf line;
  int rc = key_line(key, &line) ? append_journal_of(sp, id, line.data, line.len, err)
                                : err_set(err, S3SINK_ENOMEM, "out of memory");
  bytebuf_free(&line);
  return rc;
}

int spool_note_upload(spool *sp, uint64_t id, const char *key, const char *upload_id,
                      s3sink_err *err) {
  char jou[40];
  file_name(jou, sizeof jou, id, "journal");
  bytebuf line;
  bytebuf_init(&line, SIZE_MAX);
  bool ok = upload_id ? bytebuf_append_str(&line, "upload") && append_field(&line, key) &&
                            append_field(&line, upload_id)
                      : bytebuf_append_str(&line, "multipart") && append_field(&line, key);
  int rc = S3SINK_OK;
  if (!ok || !bytebuf_append(&line, "\n", 1)) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  } else {
    int fd = openat(sp->dir_fd, jou, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) rc = io_error(err, sp, "open", jou);
    else rc = append_journal(sp, fd, line.data, line.len, err);
    if (fd >= 0) close(fd);
  }
  bytebuf_free(&line);
  return rc;
}

int spool_open_body(spool *sp, uint64_t id, bool packed, int *fd, s3sink_err *err) {
  char name[40];
  file_name(name, sizeof name, id, packed ? "packed" : "seg");
  *fd = openat(sp->dir_fd, name, O_RDONLY | O_CLOEXEC);
  return *fd < 0 ? io_error(err, sp, "open", name) : S3SINK_OK;
}

int spool_pack_begin(spool *sp, uint64_t id, int *seg_fd, int *packed_fd, s3sink_err *err) {
  char packed[40];
  file_name(packed, sizeof packed, id, "packed");
  *packed_fd = -1;
  int rc = spool_open_body(sp, id, false, seg_fd, err);
  if (rc) return rc;
  *packed_fd = openat(sp->dir_fd, packed, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (*packed_fd < 0) {
    rc = io_error(err, sp, "create", packed);
    close(*seg_fd);
    *seg_fd = -1;
  }
  return rc;
}

/* Bytes of a file of the folder, 0 if it is not there. */
static uint64_t file_size(spool *sp, const char *name) {
  struct stat st;
  return fstatat(sp->dir_fd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

static void forget_bytes(spool *sp, uint64_t n) { sp->bytes -= n <= sp->bytes ? n : sp->bytes; }

int spool_pack_end(spool *sp, uint64_t id, uint64_t len, s3sink_err *err) {
  char seg[40], jou[40], text[64];
  file_name(seg, sizeof seg, id, "seg");
  file_name(jou, sizeof jou, id, "journal");
  /* the new file's name is durable before the journal counts on it */
  if (fsync(sp->dir_fd) != 0) return io_error(err, sp, "sync", "the folder");
  int fd = openat(sp->dir_fd, jou, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return io_error(err, sp, "open", jou);
  int n = snprintf(text, sizeof text, "packed %" PRIu64 "\n", len);
  int rc = append_journal(sp, fd, text, (size_t)n, err);
  close(fd);
  if (rc) return rc;
  forget_bytes(sp, file_size(sp, seg));
  unlinkat(sp->dir_fd, seg, 0);
  sp->bytes += len;
  return S3SINK_OK;
}

void spool_pack_abandon(spool *sp, uint64_t id) {
  char packed[40];
  file_name(packed, sizeof packed, id, "packed");
  unlinkat(sp->dir_fd, packed, 0);
}

void spool_remove(spool *sp, uint64_t id) {
  char seg[40], jou[40], packed[40];
  file_name(seg, sizeof seg, id, "seg");
  file_name(jou, sizeof jou, id, "journal");
  file_name(packed, sizeof packed, id, "packed");
  forget_bytes(sp, file_size(sp, seg) + file_size(sp, packed));
  /* the journal first: a segment without one is never uploaded again */
  unlinkat(sp->dir_fd, jou, 0);
  unlinkat(sp->dir_fd, seg, 0);
  unlinkat(sp->dir_fd, packed, 0);
}

uint64_t spool_bytes(const spool *sp) { return sp->bytes; }
const char *spool_dir(const spool *sp) { return sp->dir; }
size_t spool_recovered_count(const spool *sp) { return sp->nrecovered; }
const spool_segment *spool_recovered(const spool *sp, size_t i) { return &sp->recovered[i]; }

/* ------------------------------------------------------------------------------------ */
/* Recovery                                                                             */

static void segment_free(spool_segment *g) {
  for (size_t i = 0; i < g->nuploads; i++) {
    free(g->uploads[i].key);
    free(g->uploads[i].upload_id);
  }
  free(g->uploads);
  free(g->key);
  free(g->extension);
  free(g->content_type);
  free(g->partition);
  free(g->time_field);
  free(g->codec);
}

static char *read_journal(spool *sp, const char *name, s3sink_err *err) {
  int fd = openat(sp->dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    io_error(err, sp, "open", name);
    return NULL;
  }
  bytebuf b;
  bytebuf_init(&b, MAX_JOURNAL_BYTES);
  char chunk[4096];
  ssize_t n;
  bool ok = true;
  while (ok && (n = read(fd, chunk, sizeof chunk)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0 && bytebuf_append(&b, chunk, (size_t)n);
  }
  close(fd);
  if (!ok || !bytebuf_append(&b, "", 1)) {
    bytebuf_free(&b);
    err_set(err, S3SINK_EIO, "spool_dir '%s': cannot read journal %s", sp->dir, name);
    return NULL;
  }
  return b.data;
}

/* A "multipart" line adds an upload without an id; the "upload" line that follows it
 * gives that upload its id. Takes key and id (either may be NULL after a failed decode). */
static bool note_recovered_upload(spool_segment *g, char *key, char *upload_id) {
  spool_upload *last = g->nuploads ? &g->uploads[g->nuploads - 1] : NULL;
  if (key && last && !last->upload_id && strcmp(last->key, key) == 0) {
    free(key); /* its id, or the same key again (a creation that failed, tried again) */
    last->upload_id = upload_id;
    return true;
  }
  spool_upload *v = key ? realloc(g->uploads, (g->nuploads + 1) * sizeof *v) : NULL;
  if (!v) {
    free(key);
    free(upload_id);
    return false;
  }
  g->uploads = v;
  g->uploads[g->nuploads++] = (spool_upload){key, upload_id};
  return true;
}

/* Parses a journal into g; *committed is false if it holds no commit. Lines are
 * complete only with their '\n': a line cut by a crash is ignored. */
static int parse_journal(spool *sp, const char *name, char *text, spool_segment *g,
                         bool *committed, s3sink_err *err) {
  *committed = false;
  char *bucket = NULL, *prefix = NULL;
  int rc = S3SINK_OK;
  int lineno = 0;
  for (char *line = text, *nl; rc == S3SINK_OK && (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    lineno++;
    char *words[12];
    int nw = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " ", &save); w && nw < 12; w = strtok_r(NULL, " ", &save))
      words[nw++] = w;
    bool ok;
    if (lineno == 1) { /* then optional: codec and level (compression), partition and
                          time field (partition_by); a level is the one word without '=' */
      int i = 6;
      ok = nw >= 6 && strcmp(words[0], "s3sink-spool") == 0 &&
           strcmp(words[1], "1") == 0 && (bucket = decode_field(words[2])) &&
           (prefix = decode_field(words[3])) && (g->extension = decode_field(words[4])) &&
           (g->content_type = decode_field(words[5]));
      if (ok && nw >= i + 2 && words[i + 1][0] != '=') {
        ok = (g->codec = decode_field(words[i])) && sscanf(words[i + 1], "%d", &g->level) == 1;
        i += 2;
      }
      if (ok && nw == i + 2) {
        ok = (g->partition = decode_field(words[i])) && (g->time_field = decode_field(words[i + 1]));
        i += 2;
      }
      ok = ok && nw == i;
    } else if (nw == 2 && strcmp(words[0], "packed") == 0) {
      ok = sscanf(words[1], "%" SCNu64, &g->packed_len) == 1;
      g->packed = ok;
    } else if ((nw == 5 || nw == 7) && strcmp(words[0], "commit") == 0) {
      ok = sscanf(words[1], "%" SCNu64, &g->len) == 1 && sscanf(words[2], "%" SCNu64, &g->rows) == 1 &&
           sscanf(words[3], "%" SCNd64, &g->first_time) == 1 &&
           sscanf(words[4], "%" SCNd64, &g->last_time) == 1 &&
           (nw == 5 || (sscanf(words[5], "%" SCNd64, &g->min_event) == 1 &&
                        sscanf(words[6], "%" SCNd64, &g->max_event) == 1));
      g->has_event = ok && nw == 7;
      *committed = ok;
    } else if (nw == 2 && strcmp(words[0], "multipart") == 0) {
      ok = note_recovered_upload(g, decode_field(words[1]), NULL);
    } else if (nw == 3 && strcmp(words[0], "upload") == 0) {
      char *id = decode_field(words[2]);
      ok = id && note_recovered_upload(g, decode_field(words[1]), id);
    } else if (nw == 2 && strcmp(words[0], "key") == 0) {
      free(g->key);
      ok = (g->key = decode_field(words[1])) != NULL;
    } else {
      ok = false;
    }
    if (!ok)
      rc = err_set(err, S3SINK_EIO, "spool_dir '%s': journal %s is damaged at line %d; "
                   "move the folder away to start afresh", sp->dir, name, lineno);
  }
  if (rc == S3SINK_OK && lineno > 0 && (strcmp(bucket, sp->bucket) != 0 || strcmp(prefix, sp->prefix) != 0))
    rc = err_set(err, S3SINK_EINVAL,
                 "spool_dir '%s' holds rows not uploaded yet for bucket '%s', prefix '%s' "
                 "(journal %s): open the sink with that bucket and prefix to upload them, "
                 "or give this sink another spool_dir", sp->dir, bucket, prefix, name);
  free(bucket);
  free(prefix);
  return rc;
}

static int cmp_ids(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Ids of the files named "<20 digits>.<ext>" in the folder, sorted. */
static int list_ids(spool *sp, const char *ext, uint64_t **ids, size_t *n, s3sink_err *err) {
  *ids = NULL;
  *n = 0;
  int fd = dup(sp->dir_fd);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) {
    if (fd >= 0) close(fd);
    return io_error(err, sp, "list", "the folder");
  }
  rewinddir(d);
  size_t cap = 0;
  int rc = S3SINK_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *dot = strchr(e->d_name, '.');
    if (!dot || dot - e->d_name != 20 || strcmp(dot + 1, ext) != 0 ||
        strspn(e->d_name, "0123456789") != 20)
      continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      uint64_t *p = realloc(*ids, cap * sizeof *p);
      if (!p) {
        rc = err_set(err, S3SINK_ENOMEM, "out of memory");
        break;
      }
      *ids = p;
    }
    (*ids)[(*n)++] = strtoull(e->d_name, NULL, 10);
  }
  closedir(d);
  if (*n) qsort(*ids, *n, sizeof **ids, cmp_ids);
  return rc;
}

static bool has_id(const uint64_t *ids, size_t n, uint64_t id) {
  return n && bsearch(&id, ids, n, sizeof id, cmp_ids) != NULL;
}

/* Cuts the file `name` to len bytes (and syncs it); it must have at least that many. */
static int cut_to(spool *sp, const char *name, uint64_t len, s3sink_err *err) {
  struct stat st;
  if (fstatat(sp->dir_fd, name, &st, 0) != 0 || (uint64_t)st.st_size < len)
    return err_set(err, S3SINK_EIO,
                   "spool_dir '%s': %s is missing or shorter than its journal says; move the "
                   "folder away to start afresh", sp->dir, name);
  if ((uint64_t)st.st_size == len) return S3SINK_OK;
  int fd = openat(sp->dir_fd, name, O_WRONLY | O_CLOEXEC);
  int rc = S3SINK_OK;
  if (fd < 0 || ftruncate(fd, (off_t)len) != 0 || fdatasync(fd) != 0)
    rc = io_error(err, sp, "truncate", name);
  if (fd >= 0) close(fd);
  return rc;
}

static int recover(spool *sp, s3sink_err *err) {
  uint64_t *segs = NULL, *jous = NULL, *packs = NULL;
  size_t nsegs = 0, njous = 0, npacks = 0;
  int rc = list_ids(sp, "seg", &segs, &nsegs, err);
  if (rc == S3SINK_OK) rc = list_ids(sp, "journal", &jous, &njous, err);
  if (rc == S3SINK_OK) rc = list_ids(sp, "packed", &packs, &npacks, err);
  for (size_t i = 0; rc == S3SINK_OK && i < npacks; i++) {
    if (packs[i] >= sp->next_id) sp->next_id = packs[i] + 1;
    if (!has_id(jous, njous, packs[i])) { /* uploaded and half removed */
      char packed[40];
      file_name(packed, sizeof packed, packs[i], "packed");
      unlinkat(sp->dir_fd, packed, 0);
    }
  }
  if (rc == S3SINK_OK && njous && !(sp->recovered = calloc(njous, sizeof *sp->recovered)))
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
  for (size_t i = 0; rc == S3SINK_OK && i < nsegs; i++) {
    if (segs[i] >= sp->next_id) sp->next_id = segs[i] + 1;
    if (!has_id(jous, njous, segs[i])) { /* uploaded and half removed, or never started */
      char seg[40];
      file_name(seg, sizeof seg, segs[i], "seg");
      unlinkat(sp->dir_fd, seg, 0);
    }
  }
  for (size_t i = 0; rc == S3SINK_OK && i < njous; i++) {
    uint64_t id = jous[i];
    if (id >= sp->next_id) sp->next_id = id + 1;
    char seg[40], jou[40], packed[40];
    file_name(seg, sizeof seg, id, "seg");
    file_name(jou, sizeof jou, id, "journal");
    file_name(packed, sizeof packed, id, "packed");
    spool_segment g = {.id = id};
    bool committed = false;
    char *text = read_journal(sp, jou, err);
    if (!text) {
      rc = err ? err->code : S3SINK_EIO;
      break;
    }
    rc = parse_journal(sp, jou, text, &g, &committed, err);
    free(text);
    if (rc == S3SINK_OK && !committed) { /* nothing acknowledged in it */
      unlinkat(sp->dir_fd, jou, 0);
      unlinkat(sp->dir_fd, seg, 0);
      unlinkat(sp->dir_fd, packed, 0);
      segment_free(&g);
      continue;
    }
    if (rc == S3SINK_OK && g.packed) {
      /* its body is the compressed file (bytes after packed_len never counted); the
       * segment it was made from may not be removed yet */
      if ((rc = cut_to(sp, packed, g.packed_len, err)) == S3SINK_OK) unlinkat(sp->dir_fd, seg, 0);
    } else if (rc == S3SINK_OK) {
      /* compressing it had not finished: done again before its upload */
      if (has_id(packs, npacks, id)) unlinkat(sp->dir_fd, packed, 0);
      rc = cut_to(sp, seg, g.len, err); /* cut what was not committed */
    }
    if (rc) {
      segment_free(&g);
      break;
    }
    sp->bytes += g.packed ? g.packed_len : g.len;
    sp->recovered[sp->nrecovered++] = g;
  }
  free(segs);
  free(jous);
  free(packs);
  return rc;
}

/* ------------------------------------------------------------------------------------ */

/* mkdir -p: creates the folder and any missing parents (another process may be creating
 * them at the same time). path is modified in place and restored. */
static bool make_folders(char *path) {
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    bool ok = mkdir(path, 0700) == 0 || errno == EEXIST;
    *p = c;
    if (!ok) return false;
    if (c == '\0') return true;
  }
}

int spool_open(const char *dir, const char *bucket, const char *prefix, const char *header,
               size_t header_len, const char *extension, const char *content_type,
               const char *codec, int level, spool **out, s3sink_err *err) {
  *out = NULL;
  spool *sp = calloc(1, sizeof *sp);
  if (!sp) return err_set(err, S3SINK_ENOMEM, "out of memory");
  sp->dir_fd = sp->lock_fd = -1;
  sp->next_id = 1;
  sp->dir = strdup(dir);
  sp->bucket = strdup(bucket);
  sp->prefix = strdup(prefix);
  sp->extension = strdup(extension);
  sp->content_type = strdup(content_type);
  sp->codec = codec ? strdup(codec) : NULL;
  sp->level = level;
  sp->header = malloc(header_len + 1);
  int rc = S3SINK_OK;
  if (!sp->dir || !sp->bucket || !sp->prefix || !sp->extension || !sp->content_type ||
      (codec && !sp->codec) || !sp->header) {
    rc = err_set(err, S3SINK_ENOMEM, "out of memory");
    goto fail;
  }
  memcpy(sp->header, header, header_len);
  sp->header_len = header_len;
  if (!make_folders(sp->dir)) {
    rc = err_set(err, S3SINK_EINVAL, "cannot create spool_dir '%s': %s", dir,
                 strerror(errno));
    goto fail;
  }
  sp->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sp->dir_fd < 0) {
    rc = err_set(err, S3SINK_EINVAL, "cannot open spool_dir '%s': %s", dir, strerror(errno));
    goto fail;
  }
  sp->lock_fd = openat(sp->dir_fd, "lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (sp->lock_fd < 0) {
    rc = err_set(err, S3SINK_EINVAL, "cannot write in spool_dir '%s': %s", dir, strerror(errno));
    goto fail;
  }
  if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rc = err_set(err, S3SINK_EINVAL,
                 "spool_dir '%s' is in use by another sink: give every writer its own "
                 "spool_dir", dir);
    goto fail;
  }
  if ((rc = recover(sp, err))) goto fail;
  *out = sp;
  return S3SINK_OK;
fail:
  spool_close(sp);
  return rc;
}

void spool_close(spool *sp) {
  if (!sp) return;
  for (size_t i = 0; i < sp->nrecovered; i++) segment_free(&sp->recovered[i]);
  free(sp->recovered);
  if (sp->lock_fd >= 0) close(sp->lock_fd); /* releases the lock */
  if (sp->dir_fd >= 0) close(sp->dir_fd);
  free(sp->dir);
  free(sp->bucket);
  free(sp->prefix);
  free(sp->header);
  free(sp->extension);
  free(sp->content_type);
  free(sp->codec);
  free(sp);
}
