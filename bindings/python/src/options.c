/*
 * options.c - the runtime's vocabulary in Python. Writer's keyword options are read by
 * walking the runtime's option table (s3sink_option_find, s3sink_config_set_*), which
 * checks names, ranges and rules; nothing here knows an option by name. The module
 * functions options(), column_types() and bundled(kind) expose the tables.
 */
#include "pyext.h"

/* The Python type of an option's values, as options() reports it. */
static const char *python_type(s3sink_option_type t) {
  return t == S3SINK_OPTION_STRING ? "str" : t == S3SINK_OPTION_INT ? "int"
         : t == S3SINK_OPTION_BOOL ? "bool" : "dict";
}

static int wrong_type(const s3sink_option *o, PyObject *value) {
  const char *also = o->unlimited ? " or None (no limit)"
                     : o->list ? " or a list of str"
                     : o->type == S3SINK_OPTION_STRING ? " or os.PathLike"
                     : o->type == S3SINK_OPTION_MAP ? " of str to str" : "";
  PyErr_Format(PyExc_TypeError, "option '%s' must be %s%s, not %.100s", o->name,
               python_type(o->type), also, Py_TYPE(value)->tp_name);
  return -1;
}

/* The text of a string option's value (borrowed from the dict): a str, or the str of a
 * path object, which replaces it in the dict so that the text lives as long as the dict
 * (the key set does not change, so an iteration of the dict goes on). NULL with an
 * exception. */
static const char *option_text(modstate *st, PyObject *options, PyObject *key,
                               const s3sink_option *o, PyObject *value) {
  if (!PyUnicode_Check(value)) {
    PyObject *path = PyOS_FSPath(value); /* new: str or bytes, or NULL */
    int rc = path && PyUnicode_Check(path) ? PyDict_SetItem(options, key, path) : -1;
    Py_XDECREF(path);
    if (rc < 0) {
      PyErr_Clear();
      wrong_type(o, value);
      return NULL;
    }
    value = path; /* the dict holds it now */
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(value, &n); /* cached in the str */
  if (s && strlen(s) != (size_t)n) {
    raise_config(st, "option '%s' holds a NUL character", o->name);
    return NULL;
  }
  return s;
}

/* A list option's names given as a list or tuple of str: joined by commas (as the runtime
 * takes them) into a str that replaces the value in the dict, so that the text lives as
 * long as the dict. NULL with an exception. */
static const char *join_names(modstate *st, PyObject *options, PyObject *key,
                              const s3sink_option *o, PyObject *value) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(value);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(value, i);
    if (!PyUnicode_Check(item)) {
      PyErr_Format(PyExc_TypeError, "option '%s' must be str or a list of str, not a list holding %.100s",
                   o->name, Py_TYPE(item)->tp_name);
      return NULL;
    }
    if (PyUnicode_FindChar(item, ',', 0, PY_SSIZE_T_MAX, 1) >= 0) {
      const char *text = PyUnicode_AsUTF8(item);
      if (text)
        raise_config(st, "option '%s': the name '%.200s' holds a comma, which separates names",
                     o->name, text);
      return NULL;
    }
  }
  PyObject *comma = PyUnicode_FromString(",");
  PyObject *joined = comma ? PyUnicode_Join(comma, value) : NULL;
  Py_XDECREF(comma);
  int rc = joined ? PyDict_SetItem(options, key, joined) : -1;
  Py_XDECREF(joined); /* the dict holds it now */
  if (rc < 0) return NULL;
  return option_text(st, options, key, o, joined);
}

#define MAP_CAPSULE "s3sink.map"

static void free_map(PyObject *capsule) { free(PyCapsule_GetPointer(capsule, MAP_CAPSULE)); }

/* A dict of str to str as pairs, copied with their text into one block owned by a capsule
 * that replaces the dict in `options` (so it lives as long as the dict, as option_text's
 * strings do). NULL with an exception. */
static const s3sink_pair *map_pairs(modstate *st, PyObject *options, PyObject *key,
                                    const s3sink_option *o, PyObject *value, size_t *n) {
  Py_ssize_t count = PyDict_GET_SIZE(value), pos = 0;
  size_t bytes = 0;
  PyObject *k, *v;
  while (PyDict_Next(value, &pos, &k, &v)) {
    PyObject *both[2] = {k, v};
    for (int j = 0; j < 2; j++) {
      if (!PyUnicode_Check(both[j])) {
        PyErr_Format(PyExc_TypeError, "option '%s' must map str to str, not hold %.100s",
                     o->name, Py_TYPE(both[j])->tp_name);
        return NULL;
      }
      Py_ssize_t len;
      const char *text = PyUnicode_AsUTF8AndSize(both[j], &len);
      if (!text) return NULL;
      if (strlen(text) != (size_t)len) {
        raise_config(st, "option '%s' holds a NUL character", o->name);
        return NULL;
      }
      bytes += (size_t)len + 1;
    }
  }
  s3sink_pair *pairs = malloc((size_t)count * sizeof *pairs + bytes + 1);
  PyObject *capsule = pairs ? PyCapsule_New(pairs, MAP_CAPSULE, free_map) : NULL;
  if (!capsule) {
    free(pairs);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return NULL;
  }
  char *text = (char *)(pairs + count);
  pos = 0;
  for (size_t i = 0; PyDict_Next(value, &pos, &k, &v); i++) {
    Py_ssize_t len;
    const char *kt = PyUnicode_AsUTF8AndSize(k, &len); /* cached by the loop above */
    memcpy(text, kt, (size_t)len + 1);
    pairs[i].key = text;
    text += len + 1;
    const char *vt = PyUnicode_AsUTF8AndSize(v, &len);
    memcpy(text, vt, (size_t)len + 1);
    pairs[i].value = text;
    text += len + 1;
  }
  int rc = PyDict_SetItem(options, key, capsule);
  Py_DECREF(capsule);
  if (rc < 0) return NULL;
  *n = (size_t)count;
  return pairs;
}

/* Sets the option named by `key` of cfg from its value in `options`: None is "not given",
 * except for an option with no limit, where it is that (-1). A string stays borrowed from
 * the dict. -1 with an exception: TypeError for a value of the wrong type, ConfigError
 * with the runtime's message for a name or value it refuses. */
static int set_option(modstate *st, s3sink_config *cfg, PyObject *options, PyObject *key,
                      PyObject *value) {
  const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
  if (!name) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "option names must be str");
    return -1;
  }
  const s3sink_option *o = s3sink_option_find(name);
  s3sink_err err;
  memset(&err, 0, sizeof err);
  int rc;
  if (!o) {
    rc = s3sink_config_set_string(cfg, name, NULL, &err); /* names the option meant */
  } else if (value == Py_None) {
    if (o->type != S3SINK_OPTION_INT || !o->unlimited) return 0;
    rc = s3sink_config_set_int(cfg, name, -1, &err);
  } else if (o->type == S3SINK_OPTION_STRING && o->list && (PyList_Check(value) || PyTuple_Check(value))) {
    PyObject *names = PySequence_Fast(value, "a list"); /* new: the list itself, or the tuple */
    const char *text = names ? join_names(st, options, key, o, names) : NULL;
    Py_XDECREF(names);
    if (!text) return -1;
    rc = s3sink_config_set_string(cfg, name, text, &err);
  } else if (o->type == S3SINK_OPTION_STRING) {
    const char *text = option_text(st, options, key, o, value);
    if (!text) return -1;
    rc = s3sink_config_set_string(cfg, name, text, &err);
  } else if (o->type == S3SINK_OPTION_INT) {
    if (!PyLong_Check(value) || PyBool_Check(value)) return wrong_type(o, value);
    int64_t v;
    if (long_to_i64(value, &v, name) < 0) return -1;
    rc = s3sink_config_set_int(cfg, name, v, &err);
  } else if (o->type == S3SINK_OPTION_MAP) {
    if (!PyDict_Check(value)) return wrong_type(o, value);
    size_t n = 0;
    const s3sink_pair *pairs = map_pairs(st, options, key, o, value, &n);
    if (!pairs) return -1;
    rc = s3sink_config_set_map(cfg, name, pairs, n, &err);
  } else {
    if (!PyBool_Check(value)) return wrong_type(o, value);
    rc = s3sink_config_set_bool(cfg, name, value == Py_True, &err);
  }
  if (rc != S3SINK_OK) {
    set_sink_error(st, &err);
    return -1;
  }
  return 0;
}

int config_from_options(modstate *st, PyObject *options, s3sink_config *cfg) {
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(options, &pos, &key, &value))
    if (set_option(st, cfg, options, key, value) < 0) return -1;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * Module functions
 * ------------------------------------------------------------------------------------- */

/* New: an option's range end, or None for options without a range. */
static PyObject *range_end(const s3sink_option *o, int64_t end) {
  if (o->type != S3SINK_OPTION_INT) return Py_NewRef(Py_None);
  return PyLong_FromLongLong((long long)end);
}

static PyObject *option_dict(const s3sink_option *o) {
  /* "N" takes the new references of min and max, also when building fails */
  return Py_BuildValue("{s:s,s:s,s:s,s:N,s:N,s:O,s:z,s:s,s:O}", "name", o->name, "type",
                       python_type(o->type), "group", o->group, "min", range_end(o, o->min),
                       "max", range_end(o, o->max), "unlimited",
                       o->unlimited ? Py_True : Py_False, "default", o->default_text, "doc",
                       o->doc, "list", o->list ? Py_True : Py_False);
}

PyObject *vocab_options(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
  size_t n = 0;
  while (s3sink_option_info(n)) n++;
  PyObject *all = PyTuple_New((Py_ssize_t)n);
  for (size_t i = 0; all && i < n; i++) {
    PyObject *d = option_dict(s3sink_option_info(i));
    if (!d) Py_CLEAR(all);
    else PyTuple_SET_ITEM(all, (Py_ssize_t)i, d);
  }
  return all;
}

PyObject *vocab_column_types(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
  PyObject *names = PyTuple_New(S3SINK_T_COUNT);
  for (int t = 0; names && t < S3SINK_T_COUNT; t++) {
    PyObject *name = PyUnicode_FromString(s3sink_column_type_info((s3sink_type)t)->name);
    if (!name) Py_CLEAR(names);
    else PyTuple_SET_ITEM(names, t, name);
  }
  return names;
}

PyObject *vocab_bundled(PyObject *Py_UNUSED(module), PyObject *arg) {
  const char *kind = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
  if (!kind) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "bundled() takes a str, not %.100s", Py_TYPE(arg)->tp_name);
    return NULL;
  }
  PyObject *names = PyList_New(0);
  for (size_t i = 0; names && s3sink_bundled_name(kind, i); i++) {
    PyObject *name = PyUnicode_FromString(s3sink_bundled_name(kind, i));
    if (!name || PyList_Append(names, name) < 0) Py_CLEAR(names);
    Py_XDECREF(name);
  }
  if (names && PyList_GET_SIZE(names) == 0) {
    Py_DECREF(names);
    return PyErr_Format(PyExc_ValueError, "no bundled scripts of kind %R", arg);
  }
  PyObject *tuple = names ? PyList_AsTuple(names) : NULL;
  Py_XDECREF(names);
  return tuple;
}
