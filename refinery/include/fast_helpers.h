/* Helpers shared by the worker's compiled fast paths (refinery/routing/route_fast.c,
 * refinery/worker/write_fast.c). Header-only: each extension module gets its own static copy. */
#ifndef REFINERY_FAST_HELPERS_H
#define REFINERY_FAST_HELPERS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* obj.name() for a method without arguments; a new reference, or NULL with the error set */
static inline PyObject *call_method(PyObject *obj, PyObject *name) {
    return PyObject_VectorcallMethod(name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* counter[key] += 1 on a dict (collections.Counter is one, used without its __missing__); -1 on error */
static inline int count(PyObject *counter, PyObject *key) {
    PyObject *old = PyDict_GetItemWithError(counter, key);
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    long before = old == NULL ? 0 : PyLong_AsLong(old);
    if (before == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *new_value = PyLong_FromLong(before + 1);
    if (new_value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(counter, key, new_value);
    Py_DECREF(new_value);
    return rc;
}

#endif
