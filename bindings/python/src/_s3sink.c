/*
 * _s3sink.c - CPython binding of the s3sink runtime (runtime/include/s3sink.h).
 *
 * Types:
 *   Writer     wraps `s3sink *`: a Pathway ConnectorObserver-shaped object whose
 *              on_change(key, row, time, is_addition) converts the row in C and hands it
 *              to the runtime, which formats it (Lua) and buffers it.
 *   Formatter  wraps `s3sink_formatter *`: renders rows to bytes without uploading
 *              (tests, and hosts that want the exact bytes).
 *
 * Design rules (see style-and-sigv4.md section 3):
 *   - multi-phase init, module state, heap types; no mutable C globals;
 *   - on_change is METH_FASTCALL|METH_KEYWORDS, converts every value by the column's
 *     declared type, and keeps no Python reference after it returns;
 *   - every runtime call that may block on the network runs with the GIL released;
 *   - one function (set_sink_error) maps s3sink_err to the exception classes.
 *
 * Reference conventions in comments: "new" = the caller owns a new reference,
 * "borrowed" = it does not.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "s3sink.h"
#include "s3sink_text.h"

#define MAX_STACK_COLUMNS 32

/* ======================================================================================
 * Module state
 * ==================================================================================== */

typedef struct {
  PyTypeObject *WriterType;
  PyTypeObject *FormatterType;
  PyObject *SinkError, *ConfigError, *ScriptError, *UploadError;
  /* interned names */
  PyObject *s_key, *s_row, *s_time, *s_is_addition, *s_value, *s_tzinfo;
  /* stdlib types, imported at exec */
  PyObject *datetime_type, *timedelta_type;
  /* types of optional packages, looked up in sys.modules on first need (an object of
   * such a type cannot exist before its module is imported); NULL until found */
  PyObject *json_type, *pointer_type, *ndarray_type;
} modstate;

static struct PyModuleDef s3sink_module;

static inline modstate *get_state(PyObject *module) {
  return (modstate *)PyModule_GetState(module);
}

/* ======================================================================================
 * Errors
 * ==================================================================================== */

static const char *code_name(int code) {
  switch (code) {
  case S3SINK_EINVAL: return "EINVAL";
  case S3SINK_ESCRIPT: return "ESCRIPT";
  case S3SINK_ENOMEM: return "ENOMEM";
  case S3SINK_EHTTP: return "EHTTP";
  case S3SINK_ES3: return "ES3";
  case S3SINK_ESTATE: return "ESTATE";
  case S3SINK_EIO: return "EIO";
  case S3SINK_EAGAIN: return "EAGAIN";
  default: return "OK";
  }
}

/* Returns a new exception instance for err (NULL with an exception set on failure). The
 * one place where s3sink codes become Python classes. */
static PyObject *make_sink_error(modstate *st, const s3sink_err *err) {
  PyObject *cls;
  switch (err->code) {
  case S3SINK_EINVAL: cls = st->ConfigError; break;
  case S3SINK_ESCRIPT: cls = st->ScriptError; break;
  case S3SINK_EHTTP:
  case S3SINK_ES3: cls = st->UploadError; break;
  default: cls = st->SinkError; break; /* ENOMEM (buffer cap), ESTATE (closed) */
  }
  const char *msg = err->msg[0] ? err->msg : s3sink_strerror(err->code);
  PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strnlen(msg, sizeof err->msg), "replace");
  if (!text) return NULL;
  PyObject *exc = PyObject_CallOneArg(cls, text);
  Py_DECREF(text);
  if (!exc) return NULL;
  PyObject *status = NULL, *s3code = NULL, *reqid = NULL, *code = NULL;
  if (!(code = PyUnicode_FromString(code_name(err->code)))) goto fail;
  if (err->http_status) {
    if (!(status = PyLong_FromLong(err->http_status))) goto fail;
  } else {
    status = Py_NewRef(Py_None);
  }
  s3code = err->s3_code[0] ? PyUnicode_DecodeUTF8(err->s3_code, (Py_ssize_t)strnlen(err->s3_code, sizeof err->s3_code), "replace")
                           : Py_NewRef(Py_None);
  if (!s3code) goto fail;
  reqid = err->request_id[0] ? PyUnicode_DecodeUTF8(err->request_id, (Py_ssize_t)strnlen(err->request_id, sizeof err->request_id), "replace")
                             : Py_NewRef(Py_None);
  if (!reqid) goto fail;
  if (PyObject_SetAttrString(exc, "code", code) < 0 ||
      PyObject_SetAttrString(exc, "status", status) < 0 ||
      PyObject_SetAttrString(exc, "s3_code", s3code) < 0 ||
      PyObject_SetAttrString(exc, "request_id", reqid) < 0)
    goto fail;
  Py_DECREF(code);
  Py_DECREF(status);
  Py_DECREF(s3code);
  Py_DECREF(reqid);
  return exc;
fail:
  Py_XDECREF(code);
  Py_XDECREF(status);
  Py_XDECREF(s3code);
  Py_XDECREF(reqid);
  Py_DECREF(exc);
  return NULL;
}

/* Raises the exception for err; always returns NULL. */
static PyObject *set_sink_error(modstate *st, const s3sink_err *err) {
  PyObject *exc = make_sink_error(st, err);
  if (exc) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

static PyObject *raise_config(modstate *st, const char *fmt, ...) {
  s3sink_err e;
  memset(&e, 0, sizeof e);
  e.code = S3SINK_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  PyOS_vsnprintf(e.msg, sizeof e.msg, fmt, ap);
  va_end(ap);
  return set_sink_error(st, &e);
}

/* ======================================================================================
 * A per-call byte arena: JSON texts and copied strings of one row. Starts on the stack.
 * ==================================================================================== */

typedef struct {
  char *data;
  size_t len, cap;
  bool heap;
  char local[2048];
} arena;

static void ar_init(arena *a) {
  a->data = a->local;
  a->len = 0;
  a->cap = sizeof a->local;
  a->heap = false;
}

static void ar_free(arena *a) {
  if (a->heap) PyMem_Free(a->data);
  ar_init(a);
}

static int ar_grow(arena *a, size_t extra) {
  size_t need = a->len + extra;
  if (need < a->len) {
    PyErr_NoMemory();
    return -1;
  }
  size_t cap = a->cap * 2;
  if (cap < need) cap = need;
  char *p;
  if (a->heap) {
    p = PyMem_Realloc(a->data, cap);
  } else {
    p = PyMem_Malloc(cap);
    if (p) memcpy(p, a->data, a->len);
  }
  if (!p) {
    PyErr_NoMemory();
    return -1;
  }
  a->data = p;
  a->cap = cap;
  a->heap = true;
  return 0;
}

static inline int ar_put(arena *a, const void *p, size_t n) {
  if (a->cap - a->len < n && ar_grow(a, n) < 0) return -1;
  memcpy(a->data + a->len, p, n);
  a->len += n;
  return 0;
}

static inline int ar_putc(arena *a, char c) {
  if (a->cap == a->len && ar_grow(a, 1) < 0) return -1;
  a->data[a->len++] = c;
  return 0;
}

#define AR_LIT(a, s) ar_put((a), (s), sizeof(s) - 1)

/* JSON string as serde_json writes it (numfmt's escapes). */
static int put_json_string(arena *a, const char *s, size_t n) {
  if (ar_putc(a, '"') < 0) return -1;
  size_t start = 0;
  char esc[6];
  for (size_t i = 0; i < n; i++) {
    size_t elen = s3sink_text_json_escape((unsigned char)s[i], esc);
    if (!elen) continue;
    if (ar_put(a, s + start, i - start) < 0 || ar_put(a, esc, elen) < 0) return -1;
    start = i + 1;
  }
  if (ar_put(a, s + start, n - start) < 0) return -1;
  return ar_putc(a, '"');
}

/* Standard base64 with '=' padding (Rust base64 STANDARD). */
static int put_base64(arena *a, const unsigned char *s, size_t n) {
  size_t out = S3SINK_TEXT_BASE64_LEN(n);
  if (a->cap - a->len < out && ar_grow(a, out) < 0) return -1;
  a->len += s3sink_text_base64(s, n, a->data + a->len);
  return 0;
}

static int put_i64(arena *a, int64_t v) {
  char num[S3SINK_TEXT_NUMBUF];
  return ar_put(a, num, s3sink_text_int(num, v));
}

static int put_f64_json(arena *a, double v) {
  char num[S3SINK_TEXT_NUMBUF];
  return ar_put(a, num, s3sink_text_float_json(num, v));
}

/* ======================================================================================
 * Python values -> numbers
 * ==================================================================================== */

/* Borrowed type object of `attr` in module `modname` if that module is already imported,
 * cached in *slot; NULL (no exception) if it is not imported or has no such type. */
static PyObject *lazy_type(PyObject **slot, const char *modname, const char *attr) {
  if (*slot) return *slot;
  PyObject *name = PyUnicode_FromString(modname);
  if (!name) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *m = PyImport_GetModule(name); /* new or NULL, does not import */
  Py_DECREF(name);
  if (!m) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *t = PyObject_GetAttrString(m, attr);
  Py_DECREF(m);
  if (!t || !PyType_Check(t)) {
    Py_XDECREF(t);
    PyErr_Clear();
    return NULL;
  }
  *slot = t; /* the module state keeps this reference */
  return t;
}

/* Python int -> int64; raises OverflowError naming `what`. */
static int long_to_i64(PyObject *v, int64_t *out, const char *what) {
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (overflow) {
    PyErr_Format(PyExc_OverflowError, "%s: integer %R does not fit in 64 bits", what, v);
    return -1;
  }
  if (x == -1 && PyErr_Occurred()) return -1;
  *out = (int64_t)x;
  return 0;
}

/* Nanoseconds of a datetime.timedelta (pandas.Timedelta: its exact `.value`). */
static int timedelta_ns(modstate *st, PyObject *v, int64_t *ns) {
  PyObject *val = PyObject_GetAttr(v, st->s_value);
  if (val && PyLong_Check(val)) {
    int rc = long_to_i64(val, ns, "duration");
    Py_DECREF(val);
    return rc;
  }
  Py_XDECREF(val);
  PyErr_Clear();
  long long part[3];
  const char *names[3] = {"days", "seconds", "microseconds"};
  for (int i = 0; i < 3; i++) {
    PyObject *x = PyObject_GetAttrString(v, names[i]);
    if (!x) return -1;
    part[i] = PyLong_AsLongLong(x);
    Py_DECREF(x);
    if (part[i] == -1 && PyErr_Occurred()) return -1;
  }
  /* int64 nanoseconds span about +-106751 days */
  if (part[0] < -106751 || part[0] > 106751) {
    PyErr_SetString(PyExc_OverflowError, "duration does not fit in 64-bit nanoseconds");
    return -1;
  }
  int64_t secs = (int64_t)part[0] * 86400 + part[1];
  if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1) {
    PyErr_SetString(PyExc_OverflowError, "duration does not fit in 64-bit nanoseconds");
    return -1;
  }
  *ns = secs * INT64_C(1000000000) + part[2] * 1000;
  return 0;
}

/* Nanoseconds since the epoch of a datetime.datetime (pandas.Timestamp: its `.value`,
 * which is UTC for aware timestamps); *aware tells whether it has a tzinfo. */
static int datetime_ns(modstate *st, PyObject *v, int64_t *ns, bool *aware) {
  PyObject *tz = PyObject_GetAttr(v, st->s_tzinfo);
  if (!tz) return -1;
  *aware = tz != Py_None;
  Py_DECREF(tz);
  PyObject *val = PyObject_GetAttr(v, st->s_value);
  if (val && PyLong_Check(val)) {
    int rc = long_to_i64(val, ns, "datetime");
    Py_DECREF(val);
    return rc;
  }
  Py_XDECREF(val);
  PyErr_Clear();
  const char *names[7] = {"year", "month", "day", "hour", "minute", "second", "microsecond"};
  long f[7];
  for (int i = 0; i < 7; i++) {
    PyObject *x = PyObject_GetAttrString(v, names[i]);
    if (!x) return -1;
    f[i] = PyLong_AsLong(x);
    Py_DECREF(x);
    if (f[i] == -1 && PyErr_Occurred()) return -1;
  }
  /* int64 nanoseconds reach the years 1677..2262 */
  if (f[0] < 1677 || f[0] > 2262) {
    PyErr_Format(PyExc_OverflowError, "datetime of year %ld does not fit in 64-bit nanoseconds", f[0]);
    return -1;
  }
  int64_t secs = s3sink_text_days_from_civil(f[0], (int)f[1], (int)f[2]) * 86400 + f[3] * 3600 +
                 f[4] * 60 + f[5];
  if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1) {
    PyErr_SetString(PyExc_OverflowError, "datetime does not fit in 64-bit nanoseconds");
    return -1;
  }
  int64_t t = secs * INT64_C(1000000000) + (int64_t)f[6] * 1000;
  if (*aware) {
    PyObject *off = PyObject_CallMethod(v, "utcoffset", NULL);
    if (!off) return -1;
    if (off != Py_None) {
      int64_t off_ns;
      int rc = timedelta_ns(st, off, &off_ns);
      if (rc < 0) {
        Py_DECREF(off);
        return -1;
      }
      t -= off_ns;
    }
    Py_DECREF(off);
  }
  *ns = t;
  return 0;
}

/* ======================================================================================
 * Python values -> compact JSON text, with the engine's rules (pathway-conventions 1.4):
 * floats as serde_json/zmij (NaN/inf -> null), bytes -> base64 strings, datetimes ->
 * strings, durations -> ns integers, pointers -> strings, ndarrays ->
 * {"shape":[..],"elements":[..]} flat row-major, pw.Json -> its payload embedded.
 * ==================================================================================== */

static int json_value(modstate *st, arena *a, PyObject *v);

static int json_pylong(arena *a, PyObject *v) {
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (!overflow) {
    if (x == -1 && PyErr_Occurred()) return -1;
    return put_i64(a, (int64_t)x);
  }
  if (overflow > 0) {
    unsigned long long u = PyLong_AsUnsignedLongLong(v);
    if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
      char num[32];
      int n = PyOS_snprintf(num, sizeof num, "%llu", u);
      return ar_put(a, num, (size_t)n);
    }
    PyErr_Clear();
  }
  /* beyond u64: serde_json (without arbitrary_precision) holds it as an f64 */
  double d = PyLong_AsDouble(v);
  if (d == -1.0 && PyErr_Occurred()) return -1;
  return put_f64_json(a, d);
}

static int json_str(arena *a, PyObject *v) {
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(v, &n);
  if (!s) return -1;
  return put_json_string(a, s, (size_t)n);
}

static int json_sequence(modstate *st, arena *a, PyObject *v) {
  if (ar_putc(a, '[') < 0) return -1;
  /* index loop with a strong reference: a list may change under a callback */
  for (Py_ssize_t i = 0;; i++) {
    Py_ssize_t n = PyTuple_Check(v) ? PyTuple_GET_SIZE(v) : PyList_GET_SIZE(v);
    if (i >= n) break;
    PyObject *item = Py_NewRef(PyTuple_Check(v) ? PyTuple_GET_ITEM(v, i) : PyList_GET_ITEM(v, i));
    int rc = (i ? ar_putc(a, ',') : 0) < 0 ? -1 : json_value(st, a, item);
    Py_DECREF(item);
    if (rc < 0) return -1;
  }
  return ar_putc(a, ']');
}

static int json_dict(modstate *st, arena *a, PyObject *v) {
  PyObject *items = PyDict_Items(v); /* new: a snapshot, safe against mutation */
  if (!items) return -1;
  int rc = ar_putc(a, '{');
  Py_ssize_t n = PyList_GET_SIZE(items);
  for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
    PyObject *kv = PyList_GET_ITEM(items, i);
    PyObject *k = PyTuple_GET_ITEM(kv, 0);
    if (!PyUnicode_Check(k)) {
      PyErr_Format(PyExc_TypeError, "JSON object keys must be str, not %.100s", Py_TYPE(k)->tp_name);
      rc = -1;
      break;
    }
    if ((i && ar_putc(a, ',') < 0) || json_str(a, k) < 0 || ar_putc(a, ':') < 0 ||
        json_value(st, a, PyTuple_GET_ITEM(kv, 1)) < 0)
      rc = -1;
  }
  Py_DECREF(items);
  return rc < 0 ? -1 : ar_putc(a, '}');
}

/* One buffer element as JSON. */
static int json_buffer_item(arena *a, const char *p, char fmt, Py_ssize_t size) {
  switch (fmt) {
#define INT_CASE(ch, type)                \
  case ch: {                              \
    type x;                               \
    memcpy(&x, p, sizeof x);              \
    return put_i64(a, (int64_t)x);        \
  }
    INT_CASE('b', signed char)
    INT_CASE('B', unsigned char)
    INT_CASE('h', short)
    INT_CASE('H', unsigned short)
    INT_CASE('i', int)
    INT_CASE('I', unsigned int)
    INT_CASE('l', long)
    INT_CASE('q', long long)
    INT_CASE('n', Py_ssize_t)
#undef INT_CASE
  case 'L':
  case 'Q':
  case 'N': {
    unsigned long long x = 0;
    if (size == 8) {
      uint64_t y;
      memcpy(&y, p, 8);
      x = y;
    } else {
      uint32_t y;
      memcpy(&y, p, 4);
      x = y;
    }
    char num[32];
    int n = PyOS_snprintf(num, sizeof num, "%llu", x);
    return ar_put(a, num, (size_t)n);
  }
  case 'f': {
    float x;
    memcpy(&x, p, sizeof x);
    return put_f64_json(a, (double)x);
  }
  case 'd': {
    double x;
    memcpy(&x, p, sizeof x);
    return put_f64_json(a, x);
  }
  case '?': return p[0] ? AR_LIT(a, "true") : AR_LIT(a, "false");
  default: return -2;
  }
}

/* An ndarray (any object with the buffer protocol) as the engine writes arrays. */
static int json_ndarray(arena *a, PyObject *v) {
  Py_buffer view;
  if (PyObject_GetBuffer(v, &view, PyBUF_RECORDS_RO) < 0) return -1;
  int rc = -1;
  const char *f = view.format ? view.format : "B";
  if (*f == '@' || *f == '=' || *f == '<') f++;
  char fmt = f[0];
  if (!fmt || f[1]) {
    PyErr_Format(PyExc_TypeError, "cannot write an array of element format '%s' (int64 or float64 expected)",
                 view.format ? view.format : "B");
    goto done;
  }
  if (AR_LIT(a, "{\"shape\":[") < 0) goto done;
  Py_ssize_t total = 1;
  for (int d = 0; d < view.ndim; d++) {
    if ((d && ar_putc(a, ',') < 0) || put_i64(a, (int64_t)view.shape[d]) < 0) goto done;
    total *= view.shape[d];
  }
  if (AR_LIT(a, "],\"elements\":[") < 0) goto done;
  Py_ssize_t idx[64] = {0};
  if (view.ndim > 64) {
    PyErr_SetString(PyExc_ValueError, "array has too many dimensions");
    goto done;
  }
  for (Py_ssize_t k = 0; k < total; k++) {
    const char *p = view.buf;
    for (int d = 0; d < view.ndim; d++)
      p += idx[d] * (view.strides ? view.strides[d] : view.itemsize);
    if (k && ar_putc(a, ',') < 0) goto done;
    int r = json_buffer_item(a, p, fmt, view.itemsize);
    if (r == -2) {
      PyErr_Format(PyExc_TypeError, "cannot write an array of element format '%s' (int64 or float64 expected)",
                   view.format ? view.format : "B");
      goto done;
    }
    if (r < 0) goto done;
    for (int d = view.ndim - 1; d >= 0; d--) { /* row-major: the last index runs fastest */
      if (++idx[d] < view.shape[d]) break;
      idx[d] = 0;
    }
  }
  if (AR_LIT(a, "]}") < 0) goto done;
  rc = 0;
done:
  PyBuffer_Release(&view);
  return rc;
}

static int json_value_impl(modstate *st, arena *a, PyObject *v) {
  if (v == Py_None) return AR_LIT(a, "null");
  if (v == Py_True) return AR_LIT(a, "true");
  if (v == Py_False) return AR_LIT(a, "false");
  if (PyLong_Check(v)) return json_pylong(a, v);
  if (PyFloat_Check(v)) return put_f64_json(a, PyFloat_AS_DOUBLE(v));
  if (PyUnicode_Check(v)) return json_str(a, v);
  if (PyBytes_Check(v)) {
    if (ar_putc(a, '"') < 0 ||
        put_base64(a, (const unsigned char *)PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v)) < 0)
      return -1;
    return ar_putc(a, '"');
  }
  if (PyTuple_Check(v) || PyList_Check(v)) return json_sequence(st, a, v);
  if (PyDict_Check(v)) return json_dict(st, a, v);

  PyObject *t;
  if ((t = lazy_type(&st->json_type, "pathway.internals.json", "Json")) &&
      PyObject_TypeCheck(v, (PyTypeObject *)t)) {
    PyObject *payload = PyObject_GetAttr(v, st->s_value);
    if (!payload) return -1;
    int rc = json_value(st, a, payload);
    Py_DECREF(payload);
    return rc;
  }
  if ((t = lazy_type(&st->pointer_type, "pathway.engine", "Pointer")) &&
      PyObject_TypeCheck(v, (PyTypeObject *)t)) {
    PyObject *s = PyObject_Str(v);
    if (!s) return -1;
    int rc = json_str(a, s);
    Py_DECREF(s);
    return rc;
  }
  if ((t = lazy_type(&st->ndarray_type, "numpy", "ndarray")) &&
      PyObject_TypeCheck(v, (PyTypeObject *)t))
    return json_ndarray(a, v);
  int r = PyObject_IsInstance(v, st->datetime_type);
  if (r < 0) return -1;
  if (r) {
    int64_t ns;
    bool aware;
    if (datetime_ns(st, v, &ns, &aware) < 0) return -1;
    char num[S3SINK_TEXT_NUMBUF];
    size_t n = s3sink_text_datetime(num, ns, aware);
    if (ar_putc(a, '"') < 0 || ar_put(a, num, n) < 0) return -1;
    return ar_putc(a, '"');
  }
  r = PyObject_IsInstance(v, st->timedelta_type);
  if (r < 0) return -1;
  if (r) {
    int64_t ns;
    if (timedelta_ns(st, v, &ns) < 0) return -1;
    return put_i64(a, ns);
  }
  if (PyIndex_Check(v)) { /* numpy integer scalars */
    PyObject *i = PyNumber_Index(v);
    if (!i) return -1;
    int rc = json_pylong(a, i);
    Py_DECREF(i);
    return rc;
  }
  if (Py_TYPE(v)->tp_as_number && Py_TYPE(v)->tp_as_number->nb_float) { /* numpy floats */
    double d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    return put_f64_json(a, d);
  }
  if (PyObject_CheckBuffer(v)) return json_ndarray(a, v);
  PyErr_Format(PyExc_TypeError, "cannot write a value of type %.200s as JSON", Py_TYPE(v)->tp_name);
  return -1;
}

static int json_value(modstate *st, arena *a, PyObject *v) {
  if (Py_EnterRecursiveCall(" while converting a value to JSON")) return -1;
  int rc = json_value_impl(st, a, v);
  Py_LeaveRecursiveCall();
  return rc;
}

/* ======================================================================================
 * Columns
 * ==================================================================================== */

typedef enum {
  CK_INT, CK_FLOAT, CK_BOOL, CK_STR, CK_BYTES, CK_POINTER, CK_DT_NAIVE, CK_DT_UTC,
  CK_DURATION, CK_JSON, CK_TUPLE, CK_LIST, CK_ARRAY, CK_ANY, CK_COUNT
} colkind;

static const char *const kind_names[CK_COUNT] = {
    "int", "float", "bool", "str", "bytes", "pointer", "datetime_naive", "datetime_utc",
    "duration", "json", "tuple", "list", "array", "any"};

typedef struct {
  Py_ssize_t n;
  PyObject **names;     /* strong, interned str */
  unsigned char *kinds; /* colkind */
  s3sink_column *cols;  /* name: UTF-8 of names[i]; type: kind_names[...] */
} schema;

static void schema_free(schema *sc) {
  for (Py_ssize_t i = 0; i < sc->n; i++) Py_XDECREF(sc->names ? sc->names[i] : NULL);
  PyMem_Free(sc->names);
  PyMem_Free(sc->kinds);
  PyMem_Free(sc->cols);
  memset(sc, 0, sizeof *sc);
}

/* Parses a sequence of (name, type[, optional]). Raises ConfigError/TypeError. */
static int schema_parse(modstate *st, PyObject *columns, schema *sc) {
  memset(sc, 0, sizeof *sc);
  if (PyUnicode_Check(columns) || PyBytes_Check(columns)) {
    PyErr_SetString(PyExc_TypeError, "columns must be a list of (name, type[, optional]) tuples");
    return -1;
  }
  PyObject *seq = PySequence_Fast(columns, "columns must be a list of (name, type[, optional]) tuples");
  if (!seq) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  sc->names = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
  sc->kinds = PyMem_Calloc((size_t)n + 1, 1);
  sc->cols = PyMem_Calloc((size_t)n + 1, sizeof(s3sink_column));
  if (!sc->names || !sc->kinds || !sc->cols) {
    PyErr_NoMemory();
    goto fail;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
    if (!(PyTuple_Check(item) || PyList_Check(item)) ||
        (PySequence_Fast_GET_SIZE(item) != 2 && PySequence_Fast_GET_SIZE(item) != 3)) {
      PyErr_Format(PyExc_TypeError, "columns[%zd] must be a (name, type[, optional]) tuple", i);
      goto fail;
    }
    PyObject *name = PySequence_Fast_GET_ITEM(item, 0);
    PyObject *type = PySequence_Fast_GET_ITEM(item, 1);
    if (!PyUnicode_Check(name) || !PyUnicode_Check(type)) {
      PyErr_Format(PyExc_TypeError, "columns[%zd]: the name and the type must be str", i);
      goto fail;
    }
    int optional = 0;
    if (PySequence_Fast_GET_SIZE(item) == 3 &&
        (optional = PyObject_IsTrue(PySequence_Fast_GET_ITEM(item, 2))) < 0)
      goto fail;
    const char *tname = PyUnicode_AsUTF8(type);
    if (!tname) goto fail;
    int kind = -1;
    for (int k = 0; k < CK_COUNT; k++)
      if (strcmp(kind_names[k], tname) == 0) kind = k;
    if (kind < 0) {
      const char *cname = PyUnicode_AsUTF8(name);
      if (cname)
        raise_config(st, "column '%s' has type '%s', which the Python binding cannot convert "
                         "(use int, float, bool, str, bytes, pointer, datetime_naive, "
                         "datetime_utc, duration, json, tuple, list or array)", cname, tname);
      goto fail;
    }
    Py_INCREF(name);
    PyUnicode_InternInPlace(&name);
    sc->names[i] = name;
    sc->n = i + 1;
    const char *cname = PyUnicode_AsUTF8(name);
    if (!cname) goto fail;
    for (Py_ssize_t j = 0; j < i; j++)
      if (strcmp(sc->cols[j].name, cname) == 0) {
        raise_config(st, "column name '%s' is used twice", cname);
        goto fail;
      }
    sc->kinds[i] = (unsigned char)kind;
    sc->cols[i].name = cname;
    sc->cols[i].type = kind_names[kind];
    sc->cols[i].optional = optional;
  }
  sc->n = n;
  Py_DECREF(seq);
  return 0;
fail:
  Py_DECREF(seq);
  schema_free(sc);
  return -1;
}

/* ======================================================================================
 * A row dict -> s3sink values
 * ==================================================================================== */

typedef struct {
  s3sink_value *vals;
  PyObject **objs;   /* strong references to the row's values, held during the call */
  size_t *offs;      /* arena offset of a value's text, or SIZE_MAX */
  arena ar;
  s3sink_value vstack[MAX_STACK_COLUMNS];
  PyObject *ostack[MAX_STACK_COLUMNS];
  size_t fstack[MAX_STACK_COLUMNS];
  Py_ssize_t n;
} rowbuf;

static int rowbuf_init(rowbuf *rb, Py_ssize_t n) {
  rb->n = 0;
  ar_init(&rb->ar);
  if (n <= MAX_STACK_COLUMNS) {
    rb->vals = rb->vstack;
    rb->objs = rb->ostack;
    rb->offs = rb->fstack;
  } else {
    rb->vals = PyMem_Malloc((size_t)n * sizeof *rb->vals);
    rb->objs = PyMem_Malloc((size_t)n * sizeof *rb->objs);
    rb->offs = PyMem_Malloc((size_t)n * sizeof *rb->offs);
    if (!rb->vals || !rb->objs || !rb->offs) {
      PyMem_Free(rb->vals);
      PyMem_Free(rb->objs);
      PyMem_Free(rb->offs);
      rb->vals = NULL;
      rb->objs = NULL;
      rb->offs = NULL;
      PyErr_NoMemory();
      return -1;
    }
  }
  return 0;
}

static void rowbuf_free(rowbuf *rb) {
  for (Py_ssize_t i = 0; i < rb->n; i++) Py_DECREF(rb->objs[i]);
  rb->n = 0;
  if (rb->vals && rb->vals != rb->vstack) {
    PyMem_Free(rb->vals);
    PyMem_Free(rb->objs);
    PyMem_Free(rb->offs);
  }
  ar_free(&rb->ar);
}

static int bad_value(const schema *sc, Py_ssize_t i, PyObject *v, const char *want) {
  PyErr_Format(PyExc_TypeError, "column %R (%s) needs %s, got %.200s", sc->names[i],
               kind_names[sc->kinds[i]], want, Py_TYPE(v)->tp_name);
  return -1;
}

/* Adds the context "column 'x'" to an exception raised while converting it. */
static int column_context(const schema *sc, Py_ssize_t i) {
#if PY_VERSION_HEX >= 0x030C0000
  PyObject *exc = PyErr_GetRaisedException();
  PyErr_Format(PyExc_TypeError, "cannot convert the value of column %R (%s)", sc->names[i],
               kind_names[sc->kinds[i]]);
  PyObject *outer = PyErr_GetRaisedException();
  PyException_SetCause(outer, Py_NewRef(exc));
  PyException_SetContext(outer, exc);
  PyErr_SetRaisedException(outer);
#else
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (tb) PyException_SetTraceback(v, tb);
  PyErr_Format(PyExc_TypeError, "cannot convert the value of column %R (%s)", sc->names[i],
               kind_names[sc->kinds[i]]);
  PyObject *t2, *v2, *tb2;
  PyErr_Fetch(&t2, &v2, &tb2);
  PyErr_NormalizeException(&t2, &v2, &tb2);
  Py_INCREF(v);
  PyException_SetCause(v2, v);
  PyException_SetContext(v2, v);
  Py_XDECREF(t);
  Py_XDECREF(tb);
  PyErr_Restore(t2, v2, tb2);
#endif
  return -1;
}

/* The kind an "any" column's value is written as: its own type, as the engine would. */
static int kind_of_value(modstate *st, PyObject *v, colkind *kind) {
  PyObject *t;
  int r;
  if (PyBool_Check(v)) *kind = CK_BOOL;
  else if (PyLong_Check(v)) *kind = CK_INT;
  else if (PyFloat_Check(v)) *kind = CK_FLOAT;
  else if (PyUnicode_Check(v)) *kind = CK_STR;
  else if (PyBytes_Check(v)) *kind = CK_BYTES;
  else if ((t = lazy_type(&st->pointer_type, "pathway.engine", "Pointer")) &&
           PyObject_TypeCheck(v, (PyTypeObject *)t))
    *kind = CK_POINTER;
  else if ((r = PyObject_IsInstance(v, st->datetime_type)) != 0) {
    if (r < 0) return -1;
    PyObject *tz = PyObject_GetAttr(v, st->s_tzinfo);
    if (!tz) return -1;
    *kind = tz == Py_None ? CK_DT_NAIVE : CK_DT_UTC;
    Py_DECREF(tz);
  } else if ((r = PyObject_IsInstance(v, st->timedelta_type)) != 0) {
    if (r < 0) return -1;
    *kind = CK_DURATION;
  } else {
    *kind = CK_JSON; /* Json, tuples, lists, arrays: JSON text */
  }
  return 0;
}

static int convert_value(modstate *st, const schema *sc, Py_ssize_t i, PyObject *v, rowbuf *rb) {
  s3sink_value *out = &rb->vals[i];
  rb->offs[i] = SIZE_MAX;
  if (v == Py_None) {
    out->kind = S3SINK_V_NULL;
    return 0;
  }
  arena *a = &rb->ar;
  colkind kind = (colkind)sc->kinds[i];
  if (kind == CK_ANY && kind_of_value(st, v, &kind) < 0) return column_context(sc, i);
  switch (kind) {
  case CK_INT:
    out->kind = S3SINK_V_INT;
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "int column") < 0 ? column_context(sc, i) : 0;
    if (PyIndex_Check(v) && !PyFloat_Check(v)) {
      PyObject *x = PyNumber_Index(v);
      if (!x) return column_context(sc, i);
      int rc = long_to_i64(x, &out->u.i, "int column");
      Py_DECREF(x);
      return rc < 0 ? column_context(sc, i) : 0;
    }
    return bad_value(sc, i, v, "an int");
  case CK_FLOAT:
    out->kind = S3SINK_V_FLOAT;
    if (PyFloat_Check(v)) {
      out->u.f = PyFloat_AS_DOUBLE(v);
      return 0;
    }
    if (PyLong_Check(v) || (Py_TYPE(v)->tp_as_number && Py_TYPE(v)->tp_as_number->nb_float)) {
      out->u.f = PyFloat_AsDouble(v);
      if (out->u.f == -1.0 && PyErr_Occurred()) return column_context(sc, i);
      return 0;
    }
    return bad_value(sc, i, v, "a float");
  case CK_BOOL:
    out->kind = S3SINK_V_BOOL;
    if (PyBool_Check(v)) {
      out->u.b = v == Py_True;
      return 0;
    }
    return bad_value(sc, i, v, "a bool");
  case CK_STR: {
    out->kind = S3SINK_V_STR;
    if (!PyUnicode_Check(v)) return bad_value(sc, i, v, "a str");
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n); /* cached in the str, which we hold */
    if (!s) return column_context(sc, i);
    out->u.s.ptr = s;
    out->u.s.len = (size_t)n;
    return 0;
  }
  case CK_BYTES:
    out->kind = S3SINK_V_BYTES;
    if (PyBytes_Check(v)) {
      out->u.s.ptr = PyBytes_AS_STRING(v);
      out->u.s.len = (size_t)PyBytes_GET_SIZE(v);
      return 0;
    }
    if (PyByteArray_Check(v)) { /* mutable: copy */
      rb->offs[i] = a->len;
      out->u.s.len = (size_t)PyByteArray_GET_SIZE(v);
      return ar_put(a, PyByteArray_AS_STRING(v), out->u.s.len);
    }
    return bad_value(sc, i, v, "bytes");
  case CK_POINTER: {
    out->kind = S3SINK_V_POINTER;
    PyObject *s = PyUnicode_Check(v) ? Py_NewRef(v) : PyObject_Str(v); /* str(Pointer) */
    if (!s) return column_context(sc, i);
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    int rc = -1;
    if (p) {
      rb->offs[i] = a->len;
      out->u.s.len = (size_t)n;
      rc = ar_put(a, p, (size_t)n);
    }
    Py_DECREF(s);
    return rc < 0 ? column_context(sc, i) : 0;
  }
  case CK_DT_NAIVE:
  case CK_DT_UTC: {
    out->kind = kind == CK_DT_UTC ? S3SINK_V_DATETIME_UTC : S3SINK_V_DATETIME_NAIVE;
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "datetime") < 0 ? column_context(sc, i) : 0;
    int r = PyObject_IsInstance(v, st->datetime_type);
    if (r < 0) return column_context(sc, i);
    if (!r) return bad_value(sc, i, v, "a pandas.Timestamp or datetime.datetime");
    bool aware;
    return datetime_ns(st, v, &out->u.i, &aware) < 0 ? column_context(sc, i) : 0;
  }
  case CK_DURATION: {
    out->kind = S3SINK_V_DURATION;
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "duration") < 0 ? column_context(sc, i) : 0;
    int r = PyObject_IsInstance(v, st->timedelta_type);
    if (r < 0) return column_context(sc, i);
    if (!r) return bad_value(sc, i, v, "a pandas.Timedelta or datetime.timedelta");
    return timedelta_ns(st, v, &out->u.i) < 0 ? column_context(sc, i) : 0;
  }
  case CK_JSON:
  case CK_TUPLE:
  case CK_LIST:
  case CK_ARRAY: {
    out->kind = S3SINK_V_JSON;
    size_t start = a->len;
    if (json_value(st, a, v) < 0) return column_context(sc, i);
    rb->offs[i] = start;
    out->u.s.len = a->len - start;
    return 0;
  }
  default:
    PyErr_SetString(PyExc_SystemError, "s3sink: bad column kind");
    return -1;
  }
}

/* Converts `row` (a dict in column order) into rb->vals. Values stay referenced by
 * rb->objs until rowbuf_free. */
static int convert_row(modstate *st, const schema *sc, PyObject *row, rowbuf *rb) {
  if (!PyDict_Check(row)) {
    PyErr_Format(PyExc_TypeError, "row must be a dict, not %.100s", Py_TYPE(row)->tp_name);
    return -1;
  }
  Py_ssize_t i = 0;
  if (PyDict_GET_SIZE(row) == sc->n) { /* fast path: the dict is in column order */
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (i < sc->n && PyDict_Next(row, &pos, &k, &v)) {
      if (k != sc->names[i] && !(PyUnicode_Check(k) && PyUnicode_Compare(k, sc->names[i]) == 0))
        break;
      rb->objs[i] = Py_NewRef(v);
      rb->n = ++i;
    }
  }
  for (; i < sc->n; i++) { /* other orders: look the rest up by name */
    PyObject *v = PyDict_GetItemWithError(row, sc->names[i]); /* borrowed */
    if (!v) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_KeyError, "row has no column %R", sc->names[i]);
      return -1;
    }
    rb->objs[i] = Py_NewRef(v);
    rb->n = i + 1;
  }
  for (i = 0; i < sc->n; i++)
    if (convert_value(st, sc, i, rb->objs[i], rb) < 0) return -1;
  for (i = 0; i < sc->n; i++) /* texts in the arena: the arena may have moved */
    if (rb->offs[i] != SIZE_MAX) rb->vals[i].u.s.ptr = rb->ar.data + rb->offs[i];
  return 0;
}

/* ======================================================================================
 * Writer
 * ==================================================================================== */

typedef struct {
  PyObject_HEAD
  modstate *st;             /* the type keeps the module, hence the state, alive */
  s3sink *sink;             /* NULL before init and after close */
  PyThread_type_lock lock;  /* serializes the calls that write, flush or close (they may
                               wait for uploads) against each other */
  PyThread_type_lock state; /* held briefly: to read `sink` for health properties, and to
                               free it; so health never waits for an upload */
  schema sc;
  bool closed;
  bool spooled;             /* opened with a spool_dir */
  int64_t last_time;        /* time of the last row written */
  bool have_rows;
  s3sink_stats final_stats; /* snapshot taken by close */
  char *final_key;          /* PyMem_Raw, last key at close */
  s3sink_err upload_err;    /* last failed upload made from on_time_end (code 0: none) */
  PyObject *desc;           /* str for repr: bucket, prefix, format (no credentials) */
} WriterObject;

static void acquire(PyThread_type_lock lock) {
  if (!PyThread_acquire_lock(lock, NOWAIT_LOCK)) {
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
  }
}

static PyObject *Writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  (void)args;
  (void)kwds;
  WriterObject *w = (WriterObject *)type->tp_alloc(type, 0);
  if (!w) return NULL;
  PyObject *mod = PyType_GetModuleByDef(type, &s3sink_module);
  if (!mod) {
    Py_DECREF(w);
    return NULL;
  }
  w->st = get_state(mod);
  w->lock = PyThread_allocate_lock();
  w->state = PyThread_allocate_lock();
  if (!w->lock || !w->state) {
    Py_DECREF(w);
    return PyErr_NoMemory();
  }
  return (PyObject *)w;
}

static int Writer_init(WriterObject *self, PyObject *args, PyObject *kwds) {
  modstate *st = self->st;
  if (self->sink || self->closed) {
    PyErr_SetString(st->SinkError, "Writer.__init__ called twice");
    return -1;
  }
  char *kwlist[] = {"endpoint", "region", "bucket", "prefix", "virtual_hosted",
                    "access_key", "secret_key", "session_token", "format", "naming",
                    "write_interval_ms", "columns", "writer_id", "connect_timeout_ms",
                    "request_timeout_ms", "insecure_tls", "ca_file", "create_bucket",
                    "no_timer", "max_buffer_bytes", "background_uploads", "max_retry_ms",
                    "spool_dir", "spool_max_bytes", NULL};
  const char *endpoint = NULL, *region = NULL, *bucket = NULL, *prefix = NULL;
  const char *access_key = NULL, *secret_key = NULL, *session_token = NULL;
  const char *format = NULL, *naming = NULL, *writer_id = NULL, *ca_file = NULL;
  const char *spool_dir = NULL;
  int virtual_hosted = 0, insecure_tls = 0, create_bucket = 0, no_timer = 0, background = 0;
  long long interval = 0, connect_timeout = 0, request_timeout = 0;
  unsigned long long spool_max = 0;
  Py_ssize_t max_buffer = 0;
  PyObject *columns = NULL, *max_retry = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$zzzzpzzzzzLOzLLpzppnpOzK:Writer", kwlist,
                                   &endpoint, &region, &bucket, &prefix, &virtual_hosted,
                                   &access_key, &secret_key, &session_token, &format, &naming,
                                   &interval, &columns, &writer_id, &connect_timeout,
                                   &request_timeout, &insecure_tls, &ca_file, &create_bucket,
                                   &no_timer, &max_buffer, &background, &max_retry,
                                   &spool_dir, &spool_max))
    return -1;
  if (!columns) {
    PyErr_SetString(PyExc_TypeError, "Writer() missing required keyword argument 'columns'");
    return -1;
  }
  if (interval < 0) {
    raise_config(st, "write_interval_ms is %lld: it must be 0 (default) or more", interval);
    return -1;
  }
  if (connect_timeout < 0 || request_timeout < 0 || connect_timeout > LONG_MAX ||
      request_timeout > LONG_MAX || max_buffer < 0) {
    raise_config(st, "connect_timeout_ms, request_timeout_ms and max_buffer_bytes must not be negative");
    return -1;
  }
  int64_t max_retry_ms = 0; /* the runtime's default */
  if (max_retry == Py_None) {
    max_retry_ms = -1; /* forever */
  } else if (max_retry) {
    long long v = PyLong_Check(max_retry) ? PyLong_AsLongLong(max_retry) : -2;
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 1) {
      raise_config(st, "max_retry_ms must be a positive number of milliseconds, or None to "
                       "retry forever");
      return -1;
    }
    max_retry_ms = v;
  }
  schema sc;
  if (schema_parse(st, columns, &sc) < 0) return -1;

  PyObject *desc = PyUnicode_FromFormat("bucket=%s prefix=%s format=%s", bucket ? bucket : "None",
                                        prefix ? prefix : "", format ? format : "csv");
  if (!desc) {
    schema_free(&sc);
    return -1;
  }
  s3sink_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.endpoint = endpoint;
  cfg.region = region;
  cfg.bucket = bucket;
  cfg.prefix = prefix;
  cfg.virtual_hosted = virtual_hosted;
  cfg.access_key = access_key;
  cfg.secret_key = secret_key;
  cfg.session_token = session_token;
  cfg.format = format;
  cfg.naming = naming;
  cfg.write_interval_ms = (int64_t)interval;
  cfg.columns = sc.cols;
  cfg.ncolumns = (size_t)sc.n;
  cfg.writer_id = writer_id;
  cfg.connect_timeout_ms = (long)connect_timeout;
  cfg.request_timeout_ms = (long)request_timeout;
  cfg.insecure_tls = insecure_tls;
  cfg.ca_file = ca_file;
  cfg.create_bucket = create_bucket;
  cfg.no_timer = no_timer;
  cfg.background_uploads = background;
  cfg.max_buffer_bytes = (size_t)max_buffer;
  cfg.max_retry_ms = max_retry_ms;
  cfg.spool_dir = spool_dir;
  cfg.spool_max_bytes = (uint64_t)spool_max;

  s3sink *sink = NULL;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc;
  /* the strings stay alive: they belong to `args`/`kwds` and to sc */
  Py_BEGIN_ALLOW_THREADS
  rc = s3sink_open(&cfg, &sink, &err);
  Py_END_ALLOW_THREADS
  if (rc != S3SINK_OK) {
    Py_DECREF(desc);
    schema_free(&sc);
    set_sink_error(st, &err);
    return -1;
  }
  self->sink = sink;
  self->spooled = spool_dir != NULL;
  self->sc = sc;
  Py_XSETREF(self->desc, desc);
  return 0;
}

static PyObject *closed_error(WriterObject *self) {
  PyErr_SetString(self->st->SinkError, self->closed ? "the writer is closed" : "the writer is not open");
  return NULL;
}

/* Parses (key, row, time, is_addition), positional or keyword. */
static int parse_change_args(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames, PyObject *argv[4]) {
  modstate *st = self->st;
  PyObject *names[4] = {st->s_key, st->s_row, st->s_time, st->s_is_addition};
  argv[0] = argv[1] = argv[2] = argv[3] = NULL;
  if (nargs > 4) {
    PyErr_Format(PyExc_TypeError, "on_change() takes 4 arguments (%zd given)", nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) argv[i] = args[i];
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t j = 0; j < nkw; j++) {
    PyObject *kw = PyTuple_GET_ITEM(kwnames, j);
    int idx = -1;
    for (int k = 0; k < 4 && idx < 0; k++)
      if (kw == names[k]) idx = k;
    for (int k = 0; k < 4 && idx < 0; k++)
      if (PyUnicode_Compare(kw, names[k]) == 0) idx = k;
    if (idx < 0) {
      PyErr_Format(PyExc_TypeError, "on_change() got an unexpected keyword argument %R", kw);
      return -1;
    }
    if (argv[idx]) {
      PyErr_Format(PyExc_TypeError, "on_change() got multiple values for argument %R", kw);
      return -1;
    }
    argv[idx] = args[nargs + j];
  }
  for (int k = 0; k < 4; k++)
    if (!argv[k]) {
      PyErr_Format(PyExc_TypeError, "on_change() missing required argument %R", names[k]);
      return -1;
    }
  return 0;
}

PyDoc_STRVAR(Writer_on_change_doc,
"on_change(key, row, time, is_addition)\n--\n\n"
"Buffers one change: ``row`` is a dict of the column values (in column order), ``time``\n"
"the engine time, ``is_addition`` False for a retraction. ``key`` is ignored.");

static PyObject *Writer_on_change(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
  PyObject *argv[4];
  if (parse_change_args(self, args, nargs, kwnames, argv) < 0) return NULL;
  if (!self->sink) return closed_error(self);
  int64_t time;
  if (!PyLong_Check(argv[2])) {
    PyErr_Format(PyExc_TypeError, "time must be an int, not %.100s", Py_TYPE(argv[2])->tp_name);
    return NULL;
  }
  if (long_to_i64(argv[2], &time, "time") < 0) return NULL;
  int add = PyObject_IsTrue(argv[3]);
  if (add < 0) return NULL;

  rowbuf rb;
  if (rowbuf_init(&rb, self->sc.n) < 0) return NULL;
  if (convert_row(self->st, &self->sc, argv[1], &rb) < 0) {
    rowbuf_free(&rb);
    return NULL;
  }
  s3sink_err err;
  err.code = 0;
  int rc;
  acquire(self->lock);
  if (!self->sink) { /* closed by another thread meanwhile */
    PyThread_release_lock(self->lock);
    rowbuf_free(&rb);
    return closed_error(self);
  }
  rc = s3sink_try_write(self->sink, rb.vals, (size_t)self->sc.n, time, add ? 1 : -1, &err);
  if (rc == S3SINK_EAGAIN) { /* over budget: wait for uploads (backpressure), without the GIL */
    Py_BEGIN_ALLOW_THREADS
    rc = s3sink_write_held(self->sink, &err);
    Py_END_ALLOW_THREADS
  }
  if (rc == S3SINK_OK) {
    self->last_time = time;
    self->have_rows = true;
  }
  PyThread_release_lock(self->lock);
  rowbuf_free(&rb);
  if (rc != S3SINK_OK) return set_sink_error(self->st, &err);
  Py_RETURN_NONE;
}

/* Ends the minibatch of *time_end (if given), then applies the flush policy, with the
 * GIL released and the writer's lock held. Returns s3sink_flush's result, or
 * FLUSH_CLOSED if the writer is (or got) closed; *stopped tells whether uploads have
 * stopped on an error (as opposed to a failed attempt that is retried). */
#define FLUSH_CLOSED (INT_MIN)
static int locked_flush(WriterObject *self, const int64_t *time_end, bool forced,
                        s3sink_err *err, bool *stopped) {
  memset(err, 0, sizeof *err);
  *stopped = false;
  if (!self->sink) return FLUSH_CLOSED;
  int rc = FLUSH_CLOSED;
  Py_BEGIN_ALLOW_THREADS
  PyThread_acquire_lock(self->lock, WAIT_LOCK);
  if (self->sink) {
    rc = time_end ? s3sink_time_end(self->sink, *time_end, err) : S3SINK_OK;
    if (rc == S3SINK_OK) rc = s3sink_flush(self->sink, forced, err);
    *stopped = rc < 0 && s3sink_failure(self->sink, NULL) != S3SINK_OK;
  }
  PyThread_release_lock(self->lock);
  Py_END_ALLOW_THREADS
  return rc;
}

/* An upload attempt failed but its rows are kept and it is retried: not an error for
 * the caller of on_time_end. */
static bool retried(int rc, bool stopped) {
  return !stopped && (rc == S3SINK_EHTTP || rc == S3SINK_ES3);
}

PyDoc_STRVAR(Writer_on_time_end_doc,
"on_time_end(time)\n--\n\n"
"Closes the minibatch of ``time`` (with a spool, once it is on disk) and applies the\n"
"flush policy: uploads the complete minibatches as one object if write_interval_ms has\n"
"passed since the last upload. Returns True if an object was uploaded (or handed to the\n"
"sink's thread). A failed attempt that is retried does not raise (its error is in\n"
"``upload_error``); once uploads have stopped on an error, raises it.");

static PyObject *Writer_on_time_end(WriterObject *self, PyObject *arg) {
  if (!PyLong_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "time must be an int, not %.100s", Py_TYPE(arg)->tp_name);
    return NULL;
  }
  int64_t time;
  if (long_to_i64(arg, &time, "time") < 0) return NULL;
  s3sink_err err;
  bool stopped;
  int rc = locked_flush(self, &time, false, &err, &stopped);
  if (rc == FLUSH_CLOSED) return closed_error(self);
  if (retried(rc, stopped)) {
    self->upload_err = err;
    Py_RETURN_FALSE;
  }
  if (rc < 0) return set_sink_error(self->st, &err);
  if (rc > 0) self->upload_err.code = 0;
  return PyBool_FromLong(rc > 0);
}

PyDoc_STRVAR(Writer_flush_doc,
"flush(forced=False)\n--\n\n"
"Applies the flush policy now; with ``forced``, uploads everything kept whatever the\n"
"interval, retrying transient failures for up to max_retry_ms (and trying again after\n"
"uploads had stopped on an error). Returns True if an object was uploaded; raises\n"
"UploadError if the upload failed (the rows are kept).");

static PyObject *Writer_flush(WriterObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  int forced = 0;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs + nkw > 1) {
    PyErr_SetString(PyExc_TypeError, "flush() takes at most 1 argument");
    return NULL;
  }
  if (nkw && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "forced") != 0) {
    PyErr_Format(PyExc_TypeError, "flush() got an unexpected keyword argument %R",
                 PyTuple_GET_ITEM(kwnames, 0));
    return NULL;
  }
  if (nargs + nkw == 1 && (forced = PyObject_IsTrue(args[0])) < 0) return NULL;
  s3sink_err err;
  bool stopped;
  int rc = locked_flush(self, NULL, forced, &err, &stopped);
  if (rc == FLUSH_CLOSED) return closed_error(self);
  if (rc < 0) {
    if (rc == S3SINK_EHTTP || rc == S3SINK_ES3) self->upload_err = err;
    return set_sink_error(self->st, &err);
  }
  if (rc > 0) self->upload_err.code = 0;
  return PyBool_FromLong(rc > 0);
}

/* Ends the sink with s3sink_finish's flags and frees it. Returns 0, or -1 with the error
 * in *err and the sink still open. Called with the GIL released and the lock held; the
 * final stats and key replace the sink under `state`, so health readers see one or the
 * other. */
static int close_locked(WriterObject *self, unsigned flags, s3sink_err *err) {
  s3sink *s = self->sink;
  if (s3sink_finish(s, flags, err) != S3SINK_OK) return -1;
  char key[1100];
  s3sink_last_key(s, key, sizeof key);
  size_t n = strlen(key);
  char *copy = PyMem_RawMalloc(n + 1);
  if (copy) memcpy(copy, key, n + 1);
  PyThread_acquire_lock(self->state, WAIT_LOCK);
  s3sink_get_stats(s, &self->final_stats);
  PyMem_RawFree(self->final_key);
  self->final_key = copy;
  self->sink = NULL;
  self->closed = true;
  PyThread_release_lock(self->state);
  s3sink_free(s);
  return 0;
}

static PyObject *do_close(WriterObject *self, unsigned flags) {
  if (!self->sink) Py_RETURN_NONE; /* closed already (or never opened): nothing to do */
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = 0;
  Py_BEGIN_ALLOW_THREADS
  PyThread_acquire_lock(self->lock, WAIT_LOCK);
  if (self->sink) rc = close_locked(self, flags, &err);
  else rc = 1;
  PyThread_release_lock(self->lock);
  Py_END_ALLOW_THREADS
  if (rc == 1) Py_RETURN_NONE; /* another thread closed it */
  if (rc < 0) {
    if (err.code == S3SINK_EHTTP || err.code == S3SINK_ES3) self->upload_err = err;
    return set_sink_error(self->st, &err);
  }
  self->upload_err.code = 0;
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_close_doc,
"close(*, drop_unfinished=False, leave_spooled=False)\n--\n\n"
"Uploads everything still buffered (an unfinished minibatch too), stops the sink's thread\n"
"and releases the sink. Raises UploadError if the final upload fails; the rows are then\n"
"kept and close() may be called again. Closing a closed writer does nothing.\n\n"
"For a host that stops mid-stream: ``drop_unfinished`` drops the rows written since the\n"
"last on_time_end (the host sends them again), and ``leave_spooled`` (with a spool_dir)\n"
"uploads nothing: every kept row stays in the spool for the next writer on it.");

static PyObject *Writer_close(WriterObject *self, PyObject *args, PyObject *kwds) {
  char *kwlist[] = {"drop_unfinished", "leave_spooled", NULL};
  int drop = 0, leave = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$pp:close", kwlist, &drop, &leave)) return NULL;
  return do_close(self, (drop ? S3SINK_DROP_UNFINISHED : 0u) | (leave ? S3SINK_LEAVE_SPOOLED : 0u));
}

/* Frees the sink without uploading; `state` keeps health readers off it meanwhile. */
static void discard_sink(WriterObject *self) {
  acquire(self->state);
  s3sink *sink = self->sink;
  if (sink) {
    s3sink_get_stats(sink, &self->final_stats);
    self->closed = true;
  }
  self->sink = NULL;
  PyThread_release_lock(self->state);
  if (!sink) return;
  Py_BEGIN_ALLOW_THREADS
  s3sink_free(sink);
  Py_END_ALLOW_THREADS
}

PyDoc_STRVAR(Writer_discard_doc,
"discard()\n--\n\n"
"Releases the sink without uploading: rows in memory are lost, complete minibatches in\n"
"a spool stay there for the next writer on it.");

static PyObject *Writer_discard(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  acquire(self->lock);
  discard_sink(self);
  PyThread_release_lock(self->lock);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_interrupt_doc,
"interrupt()\n--\n\n"
"Makes an on_change that waits for room (backpressure) raise at once, its row not\n"
"accepted, and every later one too: for a host shutting down while its thread waits.");

static PyObject *Writer_interrupt(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  acquire(self->state);
  if (self->sink) s3sink_interrupt(self->sink);
  PyThread_release_lock(self->state);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(Writer_on_end_doc,
"on_end()\n--\n\n"
"End of the stream: the same as close().");

static PyObject *Writer_on_end(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  return do_close(self, 0);
}

static PyObject *Writer_enter(WriterObject *self, PyObject *Py_UNUSED(ignored)) {
  return Py_NewRef(self);
}

static PyObject *Writer_exit(WriterObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return do_close(self, 0);
}

/* Health: the sink's counters, or those taken at close; never waits for an upload. */
static bool read_stats(WriterObject *self, s3sink_stats *s) {
  acquire(self->state);
  bool known = self->sink != NULL || self->closed;
  if (self->sink) s3sink_get_stats(self->sink, s);
  else *s = self->final_stats;
  PyThread_release_lock(self->state);
  return known;
}

static PyObject *Writer_get_stats(WriterObject *self, void *Py_UNUSED(closure)) {
  s3sink_stats s;
  if (!read_stats(self, &s)) return closed_error(self);
  return Py_BuildValue("{sKsKsKsKsKsKsLsKsK}", "objects", (unsigned long long)s.objects,
                       "rows", (unsigned long long)s.rows, "bytes", (unsigned long long)s.bytes,
                       "buffered_rows", (unsigned long long)s.buffered_rows, "buffered_bytes",
                       (unsigned long long)s.buffered_bytes, "failed_uploads",
                       (unsigned long long)s.failed_uploads, "last_write_ms",
                       (long long)s.last_write_ms, "pending_objects",
                       (unsigned long long)s.pending_objects, "spool_bytes",
                       (unsigned long long)s.spool_bytes);
}

static PyObject *Writer_get_failed_uploads(WriterObject *self, void *Py_UNUSED(closure)) {
  s3sink_stats s;
  memset(&s, 0, sizeof s);
  read_stats(self, &s);
  return PyLong_FromUnsignedLongLong((unsigned long long)s.failed_uploads);
}

static PyObject *Writer_get_last_key(WriterObject *self, void *Py_UNUSED(closure)) {
  char key[1100];
  key[0] = 0;
  acquire(self->state);
  if (self->sink) s3sink_last_key(self->sink, key, sizeof key);
  else if (self->final_key) PyOS_snprintf(key, sizeof key, "%s", self->final_key);
  PyThread_release_lock(self->state);
  if (!key[0]) Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(key, (Py_ssize_t)strlen(key), "replace");
}

/* An error the sink reports (fn: s3sink_last_error or s3sink_failure), or None. */
static PyObject *sink_error_property(WriterObject *self, int (*fn)(s3sink *, s3sink_err *)) {
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc = S3SINK_OK;
  acquire(self->state);
  if (self->sink) rc = fn(self->sink, &err);
  PyThread_release_lock(self->state);
  if (rc == S3SINK_OK) Py_RETURN_NONE;
  return make_sink_error(self->st, &err);
}

static PyObject *Writer_get_timer_error(WriterObject *self, void *Py_UNUSED(closure)) {
  return sink_error_property(self, s3sink_last_error);
}

static PyObject *Writer_get_failure(WriterObject *self, void *Py_UNUSED(closure)) {
  return sink_error_property(self, s3sink_failure);
}

static PyObject *Writer_get_upload_error(WriterObject *self, void *Py_UNUSED(closure)) {
  if (self->upload_err.code == 0) Py_RETURN_NONE;
  return make_sink_error(self->st, &self->upload_err);
}

static PyObject *Writer_get_closed(WriterObject *self, void *Py_UNUSED(closure)) {
  return PyBool_FromLong(self->sink == NULL);
}

static PyObject *Writer_get_columns(WriterObject *self, void *Py_UNUSED(closure)) {
  PyObject *list = PyList_New(self->sc.n);
  if (!list) return NULL;
  for (Py_ssize_t i = 0; i < self->sc.n; i++) {
    PyObject *t = Py_BuildValue("(OsO)", self->sc.names[i], self->sc.cols[i].type,
                                self->sc.cols[i].optional ? Py_True : Py_False);
    if (!t) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, t);
  }
  return list;
}

static PyObject *Writer_repr(WriterObject *self) {
  const char *state = self->sink ? "open" : self->closed ? "closed" : "not open";
  if (self->desc) return PyUnicode_FromFormat("<%s %U (%s)>", Py_TYPE(self)->tp_name, self->desc, state);
  return PyUnicode_FromFormat("<%s (%s)>", Py_TYPE(self)->tp_name, state);
}

/* A writer nobody closed: with a spool its rows stay there for the next writer (no
 * network); else it uploads them, unless uploads had stopped on an error already. Rows
 * that cannot be uploaded are dropped with a warning. */
static void Writer_finalize(WriterObject *self) {
  if (!self->sink) return;
#if PY_VERSION_HEX >= 0x030C0000
  PyObject *saved = PyErr_GetRaisedException();
#else
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
#endif
  s3sink_err failure;
  bool stopped = s3sink_failure(self->sink, &failure) != S3SINK_OK;
  PyObject *r = stopped && !self->spooled ? NULL : do_close(self, S3SINK_LEAVE_SPOOLED);
  if (r) {
    Py_DECREF(r);
  } else {
    PyErr_Clear();
    s3sink_stats s;
    s3sink_get_stats(self->sink, &s);
    const char *msg = stopped ? failure.msg : self->upload_err.code ? self->upload_err.msg : "";
    discard_sink(self);
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "s3sink.Writer was garbage-collected unclosed and its final upload "
                         "failed: %llu buffered rows were dropped. %s",
                         (unsigned long long)s.buffered_rows, msg) < 0)
      PyErr_WriteUnraisable((PyObject *)self);
  }
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(saved);
#else
  PyErr_Restore(t, v, tb);
#endif
}

static void Writer_dealloc(WriterObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) return; /* resurrected */
  if (self->sink) { /* finalizer could not run (e.g. at shutdown) */
    s3sink_free(self->sink);
    self->sink = NULL;
  }
  schema_free(&self->sc);
  if (self->lock) PyThread_free_lock(self->lock);
  if (self->state) PyThread_free_lock(self->state);
  PyMem_RawFree(self->final_key);
  Py_CLEAR(self->desc);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyMethodDef Writer_methods[] = {
    {"on_change", (PyCFunction)(void (*)(void))Writer_on_change, METH_FASTCALL | METH_KEYWORDS,
     Writer_on_change_doc},
    {"on_time_end", (PyCFunction)Writer_on_time_end, METH_O, Writer_on_time_end_doc},
    {"on_end", (PyCFunction)Writer_on_end, METH_NOARGS, Writer_on_end_doc},
    {"flush", (PyCFunction)(void (*)(void))Writer_flush, METH_FASTCALL | METH_KEYWORDS,
     Writer_flush_doc},
    {"close", (PyCFunction)(void (*)(void))Writer_close, METH_VARARGS | METH_KEYWORDS,
     Writer_close_doc},
    {"discard", (PyCFunction)Writer_discard, METH_NOARGS, Writer_discard_doc},
    {"interrupt", (PyCFunction)Writer_interrupt, METH_NOARGS, Writer_interrupt_doc},
    {"__enter__", (PyCFunction)Writer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Writer_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Writer_getset[] = {
    {"stats", (getter)Writer_get_stats, NULL,
     "Counters: objects, rows, bytes (uploaded), buffered_rows, buffered_bytes, "
     "failed_uploads, last_write_ms.", NULL},
    {"failed_uploads", (getter)Writer_get_failed_uploads, NULL,
     "Number of failed upload attempts (their rows were kept).", NULL},
    {"last_key", (getter)Writer_get_last_key, NULL,
     "Key of the last object uploaded (or found under the prefix at open), or None.", NULL},
    {"timer_error", (getter)Writer_get_timer_error, NULL,
     "UploadError of the last upload attempt if it failed (it is retried), else None.", NULL},
    {"failure", (getter)Writer_get_failure, NULL,
     "The error that stopped uploads (permanent, or transient past max_retry_ms), else None. "
     "The rows are kept; flush(True) or close() tries again.", NULL},
    {"upload_error", (getter)Writer_get_upload_error, NULL,
     "UploadError of the last failed upload attempted by on_time_end/flush/close, cleared "
     "by a successful one, else None.", NULL},
    {"closed", (getter)Writer_get_closed, NULL, "True once closed.", NULL},
    {"columns", (getter)Writer_get_columns, NULL, "The columns: (name, type, optional).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyDoc_STRVAR(Writer_doc,
"Writer(*, bucket, columns, endpoint=None, region=None, prefix='', virtual_hosted=False,\n"
"       access_key=None, secret_key=None, session_token=None, format='csv',\n"
"       naming='default', write_interval_ms=60000, writer_id=None,\n"
"       connect_timeout_ms=10000, request_timeout_ms=120000, insecure_tls=False,\n"
"       ca_file=None, create_bucket=False, no_timer=False, max_buffer_bytes=1 GiB,\n"
"       background_uploads=False, max_retry_ms=300000, spool_dir=None,\n"
"       spool_max_bytes=8 GiB)\n"
"--\n\n"
"A sink that buffers rows and uploads them as self-contained objects to an S3 bucket.\n\n"
"``columns`` is a list of ``(name, type, optional)``, type one of int, float, bool, str,\n"
"bytes, pointer, datetime_naive, datetime_utc, duration, json, tuple, list, array.\n"
"Opening checks the bucket (HeadBucket) and lists the prefix. The writer has Pathway's\n"
"ConnectorObserver methods: on_change, on_time_end, on_end.");

static PyType_Slot Writer_slots[] = {
    {Py_tp_doc, (void *)Writer_doc},
    {Py_tp_new, Writer_new},
    {Py_tp_init, Writer_init},
    {Py_tp_dealloc, Writer_dealloc},
    {Py_tp_finalize, Writer_finalize},
    {Py_tp_repr, Writer_repr},
    {Py_tp_methods, Writer_methods},
    {Py_tp_getset, Writer_getset},
    {0, NULL}};

static PyType_Spec Writer_spec = {
    .name = "s3sink._s3sink.Writer",
    .basicsize = sizeof(WriterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Writer_slots,
};

/* ======================================================================================
 * Formatter
 * ==================================================================================== */

typedef struct {
  PyObject_HEAD
  modstate *st;
  s3sink_formatter *fmt;
  schema sc;
} FormatterObject;

static PyObject *Formatter_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  modstate *st;
  PyObject *mod = PyType_GetModuleByDef(type, &s3sink_module);
  if (!mod) return NULL;
  st = get_state(mod);
  char *kwlist[] = {"format", "columns", NULL};
  const char *format = NULL;
  PyObject *columns = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "zO:Formatter", kwlist, &format, &columns))
    return NULL;
  FormatterObject *f = (FormatterObject *)type->tp_alloc(type, 0);
  if (!f) return NULL;
  f->st = st;
  if (schema_parse(st, columns, &f->sc) < 0) {
    Py_DECREF(f);
    return NULL;
  }
  s3sink_err err;
  memset(&err, 0, sizeof err);
  if (s3sink_formatter_open(format ? format : "csv", f->sc.cols, (size_t)f->sc.n, &f->fmt, &err) != S3SINK_OK) {
    Py_DECREF(f);
    return set_sink_error(st, &err);
  }
  return (PyObject *)f;
}

static void Formatter_dealloc(FormatterObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (self->fmt) s3sink_formatter_free(self->fmt);
  schema_free(&self->sc);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyObject *Formatter_header(FormatterObject *self, PyObject *Py_UNUSED(ignored)) {
  const char *bytes;
  size_t len;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  /* the formatter is used only with the GIL held, which serializes its calls */
  if (s3sink_formatter_header(self->fmt, &bytes, &len, &err) != S3SINK_OK)
    return set_sink_error(self->st, &err);
  return PyBytes_FromStringAndSize(bytes, (Py_ssize_t)len);
}

static PyObject *Formatter_row(FormatterObject *self, PyObject *args, PyObject *kwds) {
  char *kwlist[] = {"row", "time", "diff", NULL};
  PyObject *row;
  long long time = 0;
  int diff = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OL|i:row", kwlist, &row, &time, &diff))
    return NULL;
  if (diff != 1 && diff != -1) {
    PyErr_SetString(PyExc_ValueError, "diff must be 1 or -1");
    return NULL;
  }
  rowbuf rb;
  if (rowbuf_init(&rb, self->sc.n) < 0) return NULL;
  if (convert_row(self->st, &self->sc, row, &rb) < 0) {
    rowbuf_free(&rb);
    return NULL;
  }
  const char *bytes;
  size_t len;
  s3sink_err err;
  memset(&err, 0, sizeof err);
  PyObject *res;
  if (s3sink_formatter_row(self->fmt, rb.vals, (size_t)self->sc.n, (int64_t)time, diff, &bytes,
                           &len, &err) != S3SINK_OK)
    res = set_sink_error(self->st, &err);
  else
    res = PyBytes_FromStringAndSize(bytes, (Py_ssize_t)len);
  rowbuf_free(&rb);
  return res;
}

static PyObject *Formatter_get_extension(FormatterObject *self, void *Py_UNUSED(closure)) {
  return PyUnicode_FromString(s3sink_formatter_extension(self->fmt));
}

static PyObject *Formatter_get_content_type(FormatterObject *self, void *Py_UNUSED(closure)) {
  return PyUnicode_FromString(s3sink_formatter_content_type(self->fmt));
}

static PyMethodDef Formatter_methods[] = {
    {"header", (PyCFunction)Formatter_header, METH_NOARGS,
     "header()\n--\n\nThe bytes that start every object (may be empty)."},
    {"row", (PyCFunction)(void (*)(void))Formatter_row, METH_VARARGS | METH_KEYWORDS,
     "row(row, time, diff=1)\n--\n\nThe bytes of one change."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Formatter_getset[] = {
    {"extension", (getter)Formatter_get_extension, NULL, "Object name extension.", NULL},
    {"content_type", (getter)Formatter_get_content_type, NULL, "Content-Type of objects.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot Formatter_slots[] = {
    {Py_tp_doc, (void *)"Formatter(format, columns)\n--\n\n"
                        "Renders rows with a format script (\"csv\", \"json\" or a Lua path) "
                        "exactly as the sink does, without uploading."},
    {Py_tp_new, Formatter_new},
    {Py_tp_dealloc, Formatter_dealloc},
    {Py_tp_methods, Formatter_methods},
    {Py_tp_getset, Formatter_getset},
    {0, NULL}};

static PyType_Spec Formatter_spec = {
    .name = "s3sink._s3sink.Formatter",
    .basicsize = sizeof(FormatterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Formatter_slots,
};

/* ======================================================================================
 * Module
 * ==================================================================================== */

static PyObject *new_error(PyObject *module, const char *name, const char *doc, PyObject *bases) {
  PyObject *dict = PyDict_New();
  if (!dict) return NULL;
  if (PyDict_SetItemString(dict, "code", Py_None) < 0 ||
      PyDict_SetItemString(dict, "status", Py_None) < 0 ||
      PyDict_SetItemString(dict, "s3_code", Py_None) < 0 ||
      PyDict_SetItemString(dict, "request_id", Py_None) < 0) {
    Py_DECREF(dict);
    return NULL;
  }
  PyObject *cls = PyErr_NewExceptionWithDoc(name, doc, bases, dict);
  Py_DECREF(dict);
  if (!cls) return NULL;
  const char *dot = strrchr(name, '.');
  if (PyModule_AddObjectRef(module, dot ? dot + 1 : name, cls) < 0) {
    Py_DECREF(cls);
    return NULL;
  }
  return cls;
}

static int module_exec(PyObject *m) {
  modstate *st = get_state(m);
  st->WriterType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Writer_spec, NULL);
  if (!st->WriterType || PyModule_AddType(m, st->WriterType) < 0) return -1;
  st->FormatterType = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Formatter_spec, NULL);
  if (!st->FormatterType || PyModule_AddType(m, st->FormatterType) < 0) return -1;

  st->SinkError = new_error(m, "s3sink.SinkError",
                            "Base class of the errors of s3sink. Attributes: code (the runtime's "
                            "code name), status (HTTP status or None), s3_code, request_id.",
                            PyExc_Exception);
  if (!st->SinkError) return -1;
  PyObject *bases = PyTuple_Pack(2, st->SinkError, PyExc_ValueError);
  if (!bases) return -1;
  st->ConfigError = new_error(m, "s3sink.ConfigError", "A bad argument or configuration.", bases);
  Py_DECREF(bases);
  if (!st->ConfigError) return -1;
  st->ScriptError = new_error(m, "s3sink.ScriptError",
                              "A Lua format or naming script failed to load or to run.",
                              st->SinkError);
  if (!st->ScriptError) return -1;
  bases = PyTuple_Pack(2, st->SinkError, PyExc_OSError);
  if (!bases) return -1;
  st->UploadError = new_error(m, "s3sink.UploadError",
                              "A request to the object store failed (transport or S3 error). "
                              "status is the HTTP status (None for transport failures), s3_code "
                              "the S3 error code.", bases);
  Py_DECREF(bases);
  if (!st->UploadError) return -1;

#define INTERN(field, text) \
  if (!(st->field = PyUnicode_InternFromString(text))) return -1
  INTERN(s_key, "key");
  INTERN(s_row, "row");
  INTERN(s_time, "time");
  INTERN(s_is_addition, "is_addition");
  INTERN(s_value, "value");
  INTERN(s_tzinfo, "tzinfo");
#undef INTERN

  PyObject *dt = PyImport_ImportModule("datetime");
  if (!dt) return -1;
  st->datetime_type = PyObject_GetAttrString(dt, "datetime");
  st->timedelta_type = PyObject_GetAttrString(dt, "timedelta");
  Py_DECREF(dt);
  if (!st->datetime_type || !st->timedelta_type) return -1;

  if (PyModule_AddStringConstant(m, "__version__", S3SINK_VERSION) < 0) return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  modstate *st = get_state(m);
  if (!st) return 0;
  Py_VISIT(st->WriterType);
  Py_VISIT(st->FormatterType);
  Py_VISIT(st->SinkError);
  Py_VISIT(st->ConfigError);
  Py_VISIT(st->ScriptError);
  Py_VISIT(st->UploadError);
  Py_VISIT(st->datetime_type);
  Py_VISIT(st->timedelta_type);
  Py_VISIT(st->json_type);
  Py_VISIT(st->pointer_type);
  Py_VISIT(st->ndarray_type);
  return 0;
}

static int module_clear(PyObject *m) {
  modstate *st = get_state(m);
  if (!st) return 0;
  Py_CLEAR(st->WriterType);
  Py_CLEAR(st->FormatterType);
  Py_CLEAR(st->SinkError);
  Py_CLEAR(st->ConfigError);
  Py_CLEAR(st->ScriptError);
  Py_CLEAR(st->UploadError);
  Py_CLEAR(st->s_key);
  Py_CLEAR(st->s_row);
  Py_CLEAR(st->s_time);
  Py_CLEAR(st->s_is_addition);
  Py_CLEAR(st->s_value);
  Py_CLEAR(st->s_tzinfo);
  Py_CLEAR(st->datetime_type);
  Py_CLEAR(st->timedelta_type);
  Py_CLEAR(st->json_type);
  Py_CLEAR(st->pointer_type);
  Py_CLEAR(st->ndarray_type);
  return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyObject *mod_strerror(PyObject *Py_UNUSED(module), PyObject *arg) {
  long code = PyLong_AsLong(arg);
  if (code == -1 && PyErr_Occurred()) return NULL;
  return PyUnicode_FromString(s3sink_strerror((int)code));
}

static PyObject *mod_format_float(PyObject *Py_UNUSED(module), PyObject *args) {
  double v;
  const char *style = "json";
  if (!PyArg_ParseTuple(args, "d|s:format_float", &v, &style)) return NULL;
  char num[S3SINK_TEXT_NUMBUF];
  size_t n;
  if (strcmp(style, "json") == 0) n = s3sink_text_float_json(num, v);
  else if (strcmp(style, "csv") == 0) n = s3sink_text_float_csv(num, v);
  else {
    PyErr_SetString(PyExc_ValueError, "style must be 'json' or 'csv'");
    return NULL;
  }
  return PyUnicode_FromStringAndSize(num, (Py_ssize_t)n);
}

static PyObject *mod_to_json(PyObject *module, PyObject *arg) {
  arena a;
  ar_init(&a);
  PyObject *res = NULL;
  if (json_value(get_state(module), &a, arg) == 0)
    res = PyUnicode_DecodeUTF8(a.data, (Py_ssize_t)a.len, "strict");
  ar_free(&a);
  return res;
}

static PyMethodDef module_methods[] = {
    {"strerror", mod_strerror, METH_O, "strerror(code)\n--\n\nDescription of a runtime error code."},
    {"format_float", mod_format_float, METH_VARARGS,
     "format_float(value, style='json')\n--\n\nA float as the engine writes it in JSON "
     "('json': serde_json) or in CSV ('csv': Rust {:?})."},
    {"to_json", mod_to_json, METH_O,
     "to_json(value)\n--\n\nCompact JSON text of a value, with the engine's rules (what a "
     "tuple, list, array or Json column holds)."},
    {NULL, NULL, 0, NULL}};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL}};

static struct PyModuleDef s3sink_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "s3sink._s3sink",
    .m_doc = "C core of s3sink: buffers rows and uploads them as objects to S3/MinIO.",
    .m_size = sizeof(modstate),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__s3sink(void);
PyMODINIT_FUNC PyInit__s3sink(void) { return PyModuleDef_Init(&s3sink_module); }
