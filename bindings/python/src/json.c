/*
 * json.c - Python values -> compact JSON text, with the engine's rules (docs/value-text.md,
 * "JSON, tuples, lists and arrays"): floats as serde_json/zmij (NaN/inf -> null), bytes -> base64 strings, datetimes ->
 * strings, durations -> ns integers, pointers -> strings, ndarrays ->
 * {"shape":[..],"elements":[..]} flat row-major, pw.Json -> its payload embedded. Also the
 * byte arena the texts of a row are built in. The value text is the runtime's
 * (s3sink_text.h), so composite values hold exactly what the formats write in cells.
 */
#include "pyext.h"

#include "s3sink_text.h"

/* ---------------------------------------------------------------------------------------
 * The arena
 * ------------------------------------------------------------------------------------- */

void ar_init(arena *a) {
  a->data = a->local;
  a->len = 0;
  a->cap = sizeof a->local;
  a->heap = false;
}

void ar_free(arena *a) {
  if (a->heap) PyMem_Free(a->data);
  ar_init(a);
}

int ar_grow(arena *a, size_t extra) {
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

/* ---------------------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------------------- */

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

int json_value(modstate *st, arena *a, PyObject *v) {
  if (Py_EnterRecursiveCall(" while converting a value to JSON")) return -1;
  int rc = json_value_impl(st, a, v);
  Py_LeaveRecursiveCall();
  return rc;
}

