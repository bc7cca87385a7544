/*
 * formatter.c - the Formatter type: wraps `s3sink_formatter *` to render rows to bytes
 * without uploading (tests, and hosts that want the exact bytes the sink writes).
 */
#include "pyext.h"

typedef struct {
  PyObject_HEAD
  modstate *st;
  s3sink_formatter *fmt;
  schema sc;
} FormatterObject;

static PyObject *Formatter_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  modstate *st = module_state_of(type);
  if (!st) return NULL;
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

int add_formatter_type(PyObject *module, modstate *st) {
  st->FormatterType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Formatter_spec, NULL);
  return st->FormatterType ? PyModule_AddType(module, st->FormatterType) : -1;
}
