/*
 * module.c - the module s3sink._s3sink: multi-phase init, its state (types, exception
 * classes, interned names), the mapping of s3sink_err to the exceptions, and the module
 * functions.
 */
#include "pyext.h"

#include "s3sink_text.h"

static struct PyModuleDef s3sink_module;

static inline modstate *get_state(PyObject *module) {
  return (modstate *)PyModule_GetState(module);
}

/* What PyType_GetModuleByDef does, with the API of Python 3.10 (it is 3.11's): the first
 * class in the MRO that this module defined. A Python subclass of Writer is a heap type
 * without a module of its own, so its bases are searched. */
modstate *module_state_of(PyTypeObject *type) {
  PyObject *mro = type->tp_mro; /* borrowed tuple, set when the type was readied */
  Py_ssize_t n = mro ? PyTuple_GET_SIZE(mro) : 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
    if (!PyType_HasFeature(base, Py_TPFLAGS_HEAPTYPE)) continue;
    PyObject *mod = PyType_GetModule(base); /* borrowed */
    if (!mod) { /* TypeError: a class defined in Python has no module */
      PyErr_Clear();
      continue;
    }
    if (PyModule_GetDef(mod) == &s3sink_module) return get_state(mod);
  }
  PyErr_Format(PyExc_TypeError, "%s is not a class of s3sink._s3sink", type->tp_name);
  return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------- */

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

PyObject *make_sink_error(modstate *st, const s3sink_err *err) {
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

PyObject *set_sink_error(modstate *st, const s3sink_err *err) {
  PyObject *exc = make_sink_error(st, err);
  if (exc) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

PyObject *raise_config(modstate *st, const char *fmt, ...) {
  s3sink_err e;
  memset(&e, 0, sizeof e);
  e.code = S3SINK_EINVAL;
  va_list ap;
  va_start(ap, fmt);
  PyOS_vsnprintf(e.msg, sizeof e.msg, fmt, ap);
  va_end(ap);
  return set_sink_error(st, &e);
}

/* ---------------------------------------------------------------------------------------
 * Module
 * ------------------------------------------------------------------------------------- */

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
  if (add_writer_type(m, st) < 0 || add_formatter_type(m, st) < 0) return -1;

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
  INTERN(s_columns, "columns");
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
  Py_CLEAR(st->s_columns);
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
    {"options", vocab_options, METH_NOARGS,
     "options()\n--\n\nThe runtime's options, in order: dicts of name, type ('str', 'int' "
     "or 'bool'), group ('target', 'output', 'transport', 'reliability', 'host'), min and "
     "max (integers, else None), unlimited (None is accepted for no limit), default (as "
     "users read it, or None) and doc."},
    {"column_types", vocab_column_types, METH_NOARGS,
     "column_types()\n--\n\nThe names of the column types, in the runtime's order."},
    {"bundled", vocab_bundled, METH_O,
     "bundled(kind)\n--\n\nThe names of the scripts bundled in the runtime, of kind "
     "'format' or 'naming'."},
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
