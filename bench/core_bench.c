/* core_bench.c - throughput of the core's per-row path, without the network.
 *
 * For narrow rows (int, float, str, bool) and wide rows (32 mixed columns), in csv and json:
 *   copy       memcpy of the same bytes into a growing buffer (the floor to compare with)
 *   formatter  s3sink_formatter_row
 *   sink       s3sink_write into a sink that never uploads (no timer, a long interval, a
 *              large budget), time_end every 1000 rows; freed without uploading
 * Values: see make_value (the narrow float column holds two-decimal values).
 * The sink needs an S3 endpoint to open (it checks the bucket and lists the prefix):
 * S3SINK_TEST_ENDPOINT / _ACCESS_KEY / _SECRET_KEY, as tools/with-minio sets them; without
 * it the sink runs are skipped. Prints one line per run: rows/s and MB/s (best of 3).
 *
 *   make core-bench && tools/with-minio build/core_bench [MB-per-run [shape [format]]]
 * (MB of output per run, default 64; shape narrow|wide and format csv|json select runs;
 * a format script's path as the format measures that script)
 * S3SINK_BENCH_PARTITION_BY=<columns> routes the sink's rows by them (partition_by; the
 * narrow "flag" column alternates between two partitions from row to row).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3sink.h"

#define NROWS 1024     /* distinct rows, cycled */
#define WIDE 32
#define MAXCOLS WIDE

typedef struct shape {
  const char *name;
  size_t ncols;
  s3sink_column cols[MAXCOLS];
  s3sink_value rows[NROWS][MAXCOLS];
} shape;

static char strpool[NROWS][32];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *wide_types[8] = {"int", "float", "str", "bool",
                                    "datetime_utc", "duration", "pointer", "json"};
static char colnames[WIDE][16];

static s3sink_value make_value(const char *type, int r, int c) {
  s3sink_value v = {0};
  if (strcmp(type, "int") == 0) {
    v.kind = S3SINK_V_INT;
    v.u.i = (int64_t)r * 7919 - 3000 + c;
  } else if (strcmp(type, "float") == 0) {
    /* narrow rows: readings with two decimals; wide rows add 17-digit values */
    v.kind = S3SINK_V_FLOAT;
    v.u.f = (c == 1 || r % 3 == 0) ? (r - 500) / 100.0 : r / 7.0 + c;
  } else if (strcmp(type, "str") == 0) {
    v.kind = S3SINK_V_STR;
    v.u.s.ptr = strpool[r];
    v.u.s.len = strlen(strpool[r]);
  } else if (strcmp(type, "bool") == 0) {
    v.kind = S3SINK_V_BOOL;
    v.u.b = (r + c) & 1;
  } else if (strcmp(type, "datetime_utc") == 0) {
    v.kind = S3SINK_V_DATETIME_UTC;
    v.u.i = INT64_C(1700000000000000000) + (int64_t)r * 1234567;
  } else if (strcmp(type, "duration") == 0) {
    v.kind = S3SINK_V_DURATION;
    v.u.i = (int64_t)r * 1000000;
  } else if (strcmp(type, "pointer") == 0) {
    v.kind = S3SINK_V_POINTER;
    v.u.s.ptr = "^X1MXHYYG4YM0DB";
    v.u.s.len = 15;
  } else {
    v.kind = S3SINK_V_JSON;
    v.u.s.ptr = "{\"a\":[1,2,3]}";
    v.u.s.len = 13;
  }
  return v;
}

static void build_shapes(shape *narrow, shape *wide) {
  for (int r = 0; r < NROWS; r++)
    snprintf(strpool[r], sizeof strpool[r], r % 5 ? "name-%d" : "say \"hi\" %d", r);
  static const char *ntypes[4] = {"int", "float", "str", "bool"};
  static const char *nnames[4] = {"id", "value", "name", "flag"};
  narrow->name = "narrow";
  narrow->ncols = 4;
  for (int c = 0; c < 4; c++) narrow->cols[c] = (s3sink_column){nnames[c], ntypes[c], false};
  wide->name = "wide";
  wide->ncols = WIDE;
  for (int c = 0; c < WIDE; c++) {
    snprintf(colnames[c], sizeof colnames[c], "col_%02d", c);
    wide->cols[c] = (s3sink_column){colnames[c], wide_types[c % 8], false};
  }
  for (int r = 0; r < NROWS; r++) {
    for (int c = 0; c < 4; c++) narrow->rows[r][c] = make_value(ntypes[c], r, c);
    for (int c = 0; c < WIDE; c++) wide->rows[r][c] = make_value(wide_types[c % 8], r, c);
  }
}

static void report(const char *shape_name, const char *format, const char *path, double rows,
                   double bytes, double secs) {
  printf("%-7s %-5s %-10s %12.0f rows/s %9.1f MB/s\n", shape_name, format, path, rows / secs,
         bytes / secs / 1e6);
  fflush(stdout);
}

/* Rows per timed run: about `target` bytes of output. */
static long rows_for(size_t row_bytes, double target) {
  long n = (long)(target / (double)(row_bytes ? row_bytes : 1));
  return n < 10000 ? 10000 : n;
}

static int bench_formatter(const shape *sh, const char *format, double target, size_t *avg) {
  s3sink_formatter *f;
  s3sink_err err;
  if (s3sink_formatter_open(format, sh->cols, sh->ncols, &f, &err)) {
    fprintf(stderr, "formatter: %s\n", err.msg);
    return 1;
  }
  /* the rows' sizes, and the copy baseline on the same bytes */
  size_t total = 0;
  char **text = malloc(NROWS * sizeof *text);
  size_t *lens = malloc(NROWS * sizeof *lens);
  for (int r = 0; r < NROWS; r++) {
    const char *b;
    size_t n;
    if (s3sink_formatter_row(f, sh->rows[r], sh->ncols, 1700000000000, 1, &b, &n, &err)) {
      fprintf(stderr, "row: %s\n", err.msg);
      return 1;
    }
    text[r] = malloc(n);
    memcpy(text[r], b, n);
    lens[r] = n;
    total += n;
  }
  *avg = total / NROWS;
  long nrows = rows_for(*avg, target);
  double best = 1e9, bytes = 0;
  for (int rep = 0; rep < 3; rep++) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    double t0 = now_s();
    for (long i = 0; i < nrows; i++) {
      size_t n = lens[i % NROWS];
      if (len + n > cap) {
        while (len + n > cap) cap *= 2;
        buf = realloc(buf, cap);
      }
      memcpy(buf + len, text[i % NROWS], n);
      len += n;
    }
    double t = now_s() - t0;
    if (t < best) best = t;
    bytes = (double)len;
    free(buf);
  }
  report(sh->name, format, "copy", (double)nrows, bytes, best);

  best = 1e9;
  for (int rep = 0; rep < 3; rep++) {
    double sum = 0;
    double t0 = now_s();
    for (long i = 0; i < nrows; i++) {
      const char *b;
      size_t n;
      if (s3sink_formatter_row(f, sh->rows[i % NROWS], sh->ncols, 1700000000000 + i / 1000,
                               1, &b, &n, &err)) {
        fprintf(stderr, "row: %s\n", err.msg);
        return 1;
      }
      sum += (double)n + (unsigned char)b[0] * 0.0;
    }
    double t = now_s() - t0;
    if (t < best) best = t;
    bytes = sum;
  }
  report(sh->name, format, "formatter", (double)nrows, bytes, best);
  for (int r = 0; r < NROWS; r++) free(text[r]);
  free(text);
  free(lens);
  s3sink_formatter_free(f);
  return 0;
}

static int bench_sink(const shape *sh, const char *format, double target, size_t avg) {
  const char *endpoint = getenv("S3SINK_TEST_ENDPOINT");
  if (!endpoint) {
    printf("%-7s %-5s %-10s skipped: no S3SINK_TEST_ENDPOINT (run under tools/with-minio)\n",
           sh->name, format, "sink");
    return 0;
  }
  long nrows = rows_for(avg, target);
  double best = 1e9, bytes = 0;
  for (int rep = 0; rep < 3; rep++) {
    s3sink_config cfg = {
        .endpoint = endpoint, .bucket = "core-bench", .create_bucket = true,
        .access_key = getenv("S3SINK_TEST_ACCESS_KEY"),
        .secret_key = getenv("S3SINK_TEST_SECRET_KEY"), .prefix = "bench/",
        .format = format, .write_interval_ms = INT64_C(1) << 40, .no_timer = true,
        .max_buffer_bytes = INT64_C(16) << 30, .columns = sh->cols, .ncolumns = sh->ncols,
        .partition_by = getenv("S3SINK_BENCH_PARTITION_BY"),
    };
    s3sink *s;
    s3sink_err err;
    if (s3sink_open(&cfg, &s, &err)) {
      fprintf(stderr, "open: %s\n", err.msg);
      return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < nrows; i++) {
      int64_t time = 1700000000000 + i / 1000;
      if (s3sink_write(s, sh->rows[i % NROWS], sh->ncols, time, 1, &err)) {
        fprintf(stderr, "write: %s\n", err.msg);
        return 1;
      }
      if (i % 1000 == 999) s3sink_time_end(s, time, &err);
    }
    double t = now_s() - t0;
    s3sink_stats st;
    s3sink_get_stats(s, &st);
    bytes = (double)st.buffered_bytes;
    if (t < best) best = t;
    s3sink_free(s); /* drops the rows: nothing is uploaded */
  }
  report(sh->name, format, "sink", (double)nrows, bytes, best);
  return 0;
}

int main(int argc, char **argv) {
  double target = argc > 1 ? atof(argv[1]) * 1e6 : 64e6; /* bytes of output per run */
  static shape narrow, wide;
  build_shapes(&narrow, &wide);
  const shape *shapes[2] = {&narrow, &wide};
  const char *only_shape = argc > 2 ? argv[2] : NULL, *only_format = argc > 3 ? argv[3] : NULL;
  /* a format script's path measures that script (e.g. bench/lua_csv.lua: a Lua row()) */
  const char *formats[2] = {"csv", "json"};
  int nformats = 2;
  if (only_format && strcmp(only_format, "csv") != 0 && strcmp(only_format, "json") != 0) {
    formats[0] = only_format;
    nformats = 1;
  }
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < nformats; k++) {
      if ((only_shape && strcmp(only_shape, shapes[s]->name) != 0) ||
          (only_format && strcmp(only_format, formats[k]) != 0))
        continue;
      size_t avg;
      if (bench_formatter(shapes[s], formats[k], target, &avg) ||
          bench_sink(shapes[s], formats[k], target, avg))
        return 1;
    }
  return 0;
}
