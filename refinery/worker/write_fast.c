/* The compiled produce loop of `refinery.worker.writer.BatchWriter.write`.
 *
 * produce_outputs(produce, outputs, start, on_delivery, routed) -> (index, exception or None)
 *
 * For outputs[start:], each an `Output` named tuple (topic, record, route): call
 * produce(topic, record.value(), record.key(), headers=record.headers(), on_delivery=on_delivery) and
 * count routed[route] += 1. Stops at the first output whose produce raised and returns its index with
 * the exception (cleared here), so the writer deals with that output in Python exactly as its Python
 * loop does (wait for room on BufferError, dead-letter a permanent refusal, raise anything else) and
 * calls again from the next one; (len(outputs), None) when every output was produced. The records'
 * own key, value and header objects are passed, as the Python loop passes them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *s_value, *s_key, *s_headers, *kwnames, *one;

static PyObject *call_method(PyObject *obj, PyObject *name) {
    return PyObject_VectorcallMethod(name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int count(PyObject *counter, PyObject *key) {
    PyObject *old = PyDict_GetItemWithError(counter, key);
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *new_value = old == NULL ? PyLong_FromLong(1) : PyNumber_Add(old, one);
    if (new_value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(counter, key, new_value);
    Py_DECREF(new_value);
    return rc;
}

/* 0: produced; 1: produce raised (the exception is set); -1: anything else failed */
static int produce_one(PyObject *produce, PyObject *out, PyObject *on_delivery) {
    if (!PyTuple_Check(out) || PyTuple_GET_SIZE(out) != 3) {
        PyErr_SetString(PyExc_TypeError, "outputs must hold (topic, record, route) tuples");
        return -1;
    }
    PyObject *record = PyTuple_GET_ITEM(out, 1);
    PyObject *value = NULL, *key = NULL, *headers = NULL;
    int rc = -1;
    if ((value = call_method(record, s_value)) == NULL || (key = call_method(record, s_key)) == NULL ||
        (headers = call_method(record, s_headers)) == NULL) {
        goto done;
    }
    PyObject *args[5] = {PyTuple_GET_ITEM(out, 0), value, key, headers, on_delivery};
    PyObject *result = PyObject_Vectorcall(produce, args, 3, kwnames);
    if (result == NULL) {
        rc = 1;
        goto done;
    }
    Py_DECREF(result);
    rc = 0;
done:
    Py_XDECREF(value);
    Py_XDECREF(key);
    Py_XDECREF(headers);
    return rc;
}

static PyObject *produce_outputs(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "produce_outputs(produce, outputs, start, on_delivery, routed) takes 5 arguments");
        return NULL;
    }
    PyObject *produce = args[0], *outputs = args[1], *on_delivery = args[3], *routed = args[4];
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_Check(outputs) || !PyDict_Check(routed)) {
        PyErr_SetString(PyExc_TypeError, "produce_outputs: outputs must be a list and routed a dict");
        return NULL;
    }
    for (Py_ssize_t i = start; i < PyList_GET_SIZE(outputs); i++) {
        PyObject *out = PyList_GET_ITEM(outputs, i);
        Py_INCREF(out);
        int rc = produce_one(produce, out, on_delivery);
        if (rc == 0) {
            rc = count(routed, PyTuple_GET_ITEM(out, 2)) < 0 ? -1 : 0;
        }
        Py_DECREF(out);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 1) {
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL) {
                PyException_SetTraceback(value, traceback);
            }
            Py_XDECREF(type);
            Py_XDECREF(traceback);
            PyObject *result = Py_BuildValue("(nN)", i, value);
            return result;
        }
    }
    return Py_BuildValue("(nO)", PyList_GET_SIZE(outputs), Py_None);
}

static PyMethodDef methods[] = {
    {"produce_outputs", (PyCFunction)(void (*)(void))produce_outputs, METH_FASTCALL,
     "produce_outputs(produce, outputs, start, on_delivery, routed) -> (index, exception or None) "
     "(see refinery/worker/write_fast.c)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_write_fast", "Compiled produce loop of the worker's batch writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__write_fast(void) {
    if ((s_value = PyUnicode_InternFromString("value")) == NULL ||
        (s_key = PyUnicode_InternFromString("key")) == NULL ||
        (s_headers = PyUnicode_InternFromString("headers")) == NULL ||
        (kwnames = Py_BuildValue("(ss)", "headers", "on_delivery")) == NULL || (one = PyLong_FromLong(1)) == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
