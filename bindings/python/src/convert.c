/*
 * convert.c - Python values -> what the runtime takes: datetimes and timedeltas ->
 * nanoseconds, a column list -> a schema, and a row (a dict, or the engine's list of values
 * in column order) -> s3sink values converted by each column's declared type (composite
 * values as JSON text, json.c).
 */
#include "pyext.h"

#include "s3sink_text.h"

/* ---------------------------------------------------------------------------------------
 * Python values -> numbers
 * ------------------------------------------------------------------------------------- */

PyObject *lazy_type(PyObject **slot, const char *modname, const char *attr) {
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

int long_to_i64(PyObject *v, int64_t *out, const char *what) {
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

/* The exact nanoseconds a pandas Timestamp or Timedelta keeps in `.value`: 1 with *ns set,
 * 0 if v has no integer `value` (the standard library's types), -1 with an exception. */
static int pandas_value(modstate *st, PyObject *v, int64_t *ns, const char *what) {
  PyObject *val = PyObject_GetAttr(v, st->s_value); /* new, or NULL */
  if (!val || !PyLong_Check(val)) {
    Py_XDECREF(val);
    PyErr_Clear(); /* no such attribute (the standard library's types): not an error */
    return 0;
  }
  int rc = long_to_i64(val, ns, what);
  Py_DECREF(val);
  return rc < 0 ? -1 : 1;
}

/* The integer attributes `names` of v into out[]; -1 with an exception. */
static int int_attrs(PyObject *v, const char *const *names, int n, long long *out) {
  for (int i = 0; i < n; i++) {
    PyObject *x = PyObject_GetAttrString(v, names[i]);
    if (!x) return -1;
    out[i] = PyLong_AsLongLong(x);
    Py_DECREF(x);
    if (out[i] == -1 && PyErr_Occurred()) return -1;
  }
  return 0;
}

int timedelta_ns(modstate *st, PyObject *v, int64_t *ns) {
  int exact = pandas_value(st, v, ns, "duration");
  if (exact) return exact < 0 ? -1 : 0;
  static const char *const names[3] = {"days", "seconds", "microseconds"};
  long long part[3];
  if (int_attrs(v, names, 3, part) < 0) return -1;
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

int datetime_ns(modstate *st, PyObject *v, int64_t *ns, bool *aware) {
  PyObject *tz = PyObject_GetAttr(v, st->s_tzinfo);
  if (!tz) return -1;
  *aware = tz != Py_None;
  Py_DECREF(tz);
  int exact = pandas_value(st, v, ns, "datetime");
  if (exact) return exact < 0 ? -1 : 0;
  static const char *const names[7] = {"year", "month", "day", "hour", "minute", "second",
                                       "microsecond"};
  long long f[7];
  if (int_attrs(v, names, 7, f) < 0) return -1;
  /* int64 nanoseconds reach the years 1677..2262 */
  if (f[0] < 1677 || f[0] > 2262) {
    PyErr_Format(PyExc_OverflowError, "datetime of year %lld does not fit in 64-bit nanoseconds",
                 f[0]);
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

/* ---------------------------------------------------------------------------------------
 * Columns
 * ------------------------------------------------------------------------------------- */

/* "int, float, ..., any": the column types of the runtime's table, for messages. */
static void column_type_names(char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = 0;
  for (int t = 0; t < S3SINK_T_COUNT; t++) {
    int n = PyOS_snprintf(buf + used, cap - used, "%s%s", t ? ", " : "",
                          s3sink_column_type_info((s3sink_type)t)->name);
    if (n < 0 || (size_t)n >= cap - used) break;
    used += (size_t)n;
  }
}

void schema_free(schema *sc) {
  for (Py_ssize_t i = 0; i < sc->n; i++) Py_XDECREF(sc->names ? sc->names[i] : NULL);
  PyMem_Free(sc->names);
  PyMem_Free(sc->kinds);
  PyMem_Free(sc->cols);
  memset(sc, 0, sizeof *sc);
}

int schema_parse(modstate *st, PyObject *columns, schema *sc) {
  memset(sc, 0, sizeof *sc);
  if (PyUnicode_Check(columns) || PyBytes_Check(columns)) {
    PyErr_SetString(PyExc_TypeError, "columns must be a list of (name, type[, optional]) tuples");
    return -1;
  }
  PyObject *seq = PySequence_Fast(columns, "columns must be a list of (name, type[, optional]) tuples");
  if (!seq) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  sc->names = PyMem_Calloc((size_t)n + 1, sizeof(PyObject *));
  sc->kinds = PyMem_Calloc((size_t)n + 1, sizeof(s3sink_kind));
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
    const s3sink_column_type *ctype = s3sink_column_type_info(s3sink_column_type_find(tname));
    if (!ctype) {
      const char *cname = PyUnicode_AsUTF8(name);
      char names[512];
      column_type_names(names, sizeof names);
      if (cname)
        raise_config(st, "column '%s' has unsupported type '%s': use one of %s", cname, tname,
                     names);
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
    sc->kinds[i] = ctype->kind;
    sc->cols[i].name = cname;
    sc->cols[i].type = ctype->name;
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

/* ---------------------------------------------------------------------------------------
 * A row dict -> s3sink values
 * ------------------------------------------------------------------------------------- */

int rowbuf_init(rowbuf *rb, Py_ssize_t n) {
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

/* Beyond this, a row's arena is given back after the row rather than kept for the next. */
#define ROWBUF_KEEP_BYTES (256 * 1024)

void rowbuf_clear(rowbuf *rb) {
  for (Py_ssize_t i = 0; i < rb->n; i++) Py_DECREF(rb->objs[i]);
  rb->n = 0;
  if (rb->ar.heap && rb->ar.cap > ROWBUF_KEEP_BYTES) ar_free(&rb->ar);
  rb->ar.len = 0;
}

void rowbuf_free(rowbuf *rb) {
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
               sc->cols[i].type, want, Py_TYPE(v)->tp_name);
  return -1;
}

/* Adds the context "column 'x'" to an exception raised while converting it. */
static int column_context(const schema *sc, Py_ssize_t i) {
#if PY_VERSION_HEX >= 0x030C0000
  PyObject *exc = PyErr_GetRaisedException();
  PyErr_Format(PyExc_TypeError, "cannot convert the value of column %R (%s)", sc->names[i],
               sc->cols[i].type);
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
               sc->cols[i].type);
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
static int kind_of_value(modstate *st, PyObject *v, s3sink_kind *kind) {
  PyObject *t;
  int r;
  if (PyBool_Check(v)) *kind = S3SINK_V_BOOL;
  else if (PyLong_Check(v)) *kind = S3SINK_V_INT;
  else if (PyFloat_Check(v)) *kind = S3SINK_V_FLOAT;
  else if (PyUnicode_Check(v)) *kind = S3SINK_V_STR;
  else if (PyBytes_Check(v)) *kind = S3SINK_V_BYTES;
  else if ((t = lazy_type(&st->pointer_type, "pathway.engine", "Pointer")) &&
           PyObject_TypeCheck(v, (PyTypeObject *)t))
    *kind = S3SINK_V_POINTER;
  else if ((r = PyObject_IsInstance(v, st->datetime_type)) != 0) {
    if (r < 0) return -1;
    PyObject *tz = PyObject_GetAttr(v, st->s_tzinfo);
    if (!tz) return -1;
    *kind = tz == Py_None ? S3SINK_V_DATETIME_NAIVE : S3SINK_V_DATETIME_UTC;
    Py_DECREF(tz);
  } else if ((r = PyObject_IsInstance(v, st->timedelta_type)) != 0) {
    if (r < 0) return -1;
    *kind = S3SINK_V_DURATION;
  } else {
    *kind = S3SINK_V_JSON; /* Json, tuples, lists, arrays: JSON text */
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
  s3sink_kind kind = sc->kinds[i];
  if (kind == S3SINK_V_NULL && kind_of_value(st, v, &kind) < 0) return column_context(sc, i);
  out->kind = kind;
  switch (kind) {
  case S3SINK_V_INT:
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "int column") < 0 ? column_context(sc, i) : 0;
    if (PyIndex_Check(v) && !PyFloat_Check(v)) {
      PyObject *x = PyNumber_Index(v);
      if (!x) return column_context(sc, i);
      int rc = long_to_i64(x, &out->u.i, "int column");
      Py_DECREF(x);
      return rc < 0 ? column_context(sc, i) : 0;
    }
    return bad_value(sc, i, v, "an int");
  case S3SINK_V_FLOAT:
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
  case S3SINK_V_BOOL:
    if (PyBool_Check(v)) {
      out->u.b = v == Py_True;
      return 0;
    }
    return bad_value(sc, i, v, "a bool");
  case S3SINK_V_STR: {
    if (!PyUnicode_Check(v)) return bad_value(sc, i, v, "a str");
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n); /* cached in the str, which we hold */
    if (!s) return column_context(sc, i);
    out->u.s.ptr = s;
    out->u.s.len = (size_t)n;
    return 0;
  }
  case S3SINK_V_BYTES:
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
  case S3SINK_V_POINTER: {
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
  case S3SINK_V_DATETIME_NAIVE:
  case S3SINK_V_DATETIME_UTC: {
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "datetime") < 0 ? column_context(sc, i) : 0;
    int r = PyObject_IsInstance(v, st->datetime_type);
    if (r < 0) return column_context(sc, i);
    if (!r) return bad_value(sc, i, v, "a pandas.Timestamp or datetime.datetime");
    bool aware;
    return datetime_ns(st, v, &out->u.i, &aware) < 0 ? column_context(sc, i) : 0;
  }
  case S3SINK_V_DURATION: {
    if (PyLong_Check(v)) return long_to_i64(v, &out->u.i, "duration") < 0 ? column_context(sc, i) : 0;
    int r = PyObject_IsInstance(v, st->timedelta_type);
    if (r < 0) return column_context(sc, i);
    if (!r) return bad_value(sc, i, v, "a pandas.Timedelta or datetime.timedelta");
    return timedelta_ns(st, v, &out->u.i) < 0 ? column_context(sc, i) : 0;
  }
  case S3SINK_V_JSON: {
    size_t start = a->len;
    if (json_value(st, a, v) < 0) return column_context(sc, i);
    rb->offs[i] = start;
    out->u.s.len = a->len - start;
    return 0;
  }
  default: /* a kind this binding does not know: the runtime's table grew */
    PyErr_Format(PyExc_SystemError, "s3sink: column %R has a value kind this binding cannot pass",
                 sc->names[i]);
    return -1;
  }
}

/* Converts the values held in rb->objs (rb->n == sc->n). */
static int convert_held(modstate *st, const schema *sc, rowbuf *rb) {
  for (Py_ssize_t i = 0; i < sc->n; i++)
    if (convert_value(st, sc, i, rb->objs[i], rb) < 0) return -1;
  for (Py_ssize_t i = 0; i < sc->n; i++) /* texts in the arena: the arena may have moved */
    if (rb->offs[i] != SIZE_MAX) rb->vals[i].u.s.ptr = rb->ar.data + rb->offs[i];
  return 0;
}

int convert_row(modstate *st, const schema *sc, PyObject *row, rowbuf *rb) {
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
  return convert_held(st, sc, rb);
}

int convert_values(modstate *st, const schema *sc, PyObject *values, rowbuf *rb) {
  if (!PyList_Check(values) && !PyTuple_Check(values)) {
    PyErr_Format(PyExc_TypeError, "values must be a list, not %.100s", Py_TYPE(values)->tp_name);
    return -1;
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(values);
  if (n != sc->n) {
    PyErr_Format(PyExc_ValueError, "values has %zd items for %zd columns", n, sc->n);
    return -1;
  }
  /* all held before any conversion: converting may run Python code */
  PyObject **items = PySequence_Fast_ITEMS(values);
  for (Py_ssize_t i = 0; i < n; i++) rb->objs[i] = Py_NewRef(items[i]);
  rb->n = n;
  return convert_held(st, sc, rb);
}
