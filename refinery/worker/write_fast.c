/* The compiled produce loop of `refinery.worker.writer.BatchWriter.write`, and the delivery counter its
 * records report to (`DeliveryCounter`, the base of `refinery.worker.inflight.BatchTracker`).
 *
 * produce_outputs(produce, outputs, start, on_delivery, routed[, producer]) -> (index, exception or None)
 *
 * For outputs[start:], each an `Output` named tuple (topic, record, route): call
 * produce(topic, record.value(), record.key(), headers=record.headers(), on_delivery=on_delivery) and
 * count routed[route] += 1. Stops at the first output whose produce raised and returns its index with
 * the exception (cleared here), so the writer deals with that output in Python exactly as its Python
 * loop does (wait for room on BufferError, dead-letter a permanent refusal, raise anything else) and
 * calls again from the next one; (len(outputs), None) when every output was produced. The records'
 * own key, value and header objects are passed, as the Python loop passes them. Once bound (`bind`,
 * refinery/include/kafka_direct.h) and given the `producer` whose `produce` it is, an output whose
 * record still holds librdkafka's header list is queued on the producer's handle with a copy of that
 * list, its headers never turned into Python objects; what cannot be queued that way goes through
 * `produce` as above.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "fast_helpers.h"
#include "kafka_direct.h"
#include <structmember.h>

static PyObject *s_value, *s_key, *s_headers, *kwnames;


/* 0: produced; 1: produce raised (the exception is set); -1: anything else failed */
static int produce_one(PyObject *produce, PyObject *producer, PyObject *out, PyObject *on_delivery) {
    if (!PyTuple_Check(out) || PyTuple_GET_SIZE(out) != 3) {
        PyErr_SetString(PyExc_TypeError, "outputs must hold (topic, record, route) tuples");
        return -1;
    }
    PyObject *record = PyTuple_GET_ITEM(out, 1);
    if (producer != NULL && direct_produce(producer, PyTuple_GET_ITEM(out, 0), record, on_delivery)) {
        return 0;
    }
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
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "produce_outputs(produce, outputs, start, on_delivery, routed[, producer]) takes 5 or 6 "
                        "arguments");
        return NULL;
    }
    PyObject *produce = args[0], *outputs = args[1], *on_delivery = args[3], *routed = args[4];
    PyObject *producer = nargs == 6 && args[5] != Py_None && direct.bound ? args[5] : NULL;
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
        int rc = produce_one(produce, producer, out, on_delivery);
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


/* DeliveryCounter: called by confluent-kafka with (error, message) for each record reported. `left`
 * counts down; a failure is kept in `failures` as (error, message). The same as the Python class in
 * refinery/worker/inflight.py, without a Python frame per delivery report. */
typedef struct {
    PyObject_HEAD
    Py_ssize_t left;
    PyObject *failures;
} DeliveryCounter;

static int counter_init(DeliveryCounter *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "DeliveryCounter() takes no arguments");
        return -1;
    }
    self->left = 0;
    Py_XSETREF(self->failures, PyList_New(0));
    return self->failures == NULL ? -1 : 0;
}

static PyObject *counter_call(DeliveryCounter *self, PyObject *args, PyObject *kwargs) {
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 2 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "a delivery report is (error, message)");
        return NULL;
    }
    self->left--;
    if (PyTuple_GET_ITEM(args, 0) != Py_None) {
        if (self->failures == NULL || !PyList_Check(self->failures)) {
            PyErr_SetString(PyExc_TypeError, "DeliveryCounter.failures must be a list");
            return NULL;
        }
        if (PyList_Append(self->failures, args) < 0) { /* (error, message) */
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static int counter_traverse(DeliveryCounter *self, visitproc visit, void *arg) {
    Py_VISIT(self->failures);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int counter_clear(DeliveryCounter *self) {
    Py_CLEAR(self->failures);
    return 0;
}

static void counter_dealloc(DeliveryCounter *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    counter_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMemberDef counter_members[] = {
    {"left", T_PYSSIZET, offsetof(DeliveryCounter, left), 0, "records written and not yet reported"},
    {"failures", T_OBJECT_EX, offsetof(DeliveryCounter, failures), 0, "(error, message) of failed records"},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot counter_slots[] = {
    {Py_tp_init, counter_init},
    {Py_tp_call, counter_call},
    {Py_tp_traverse, counter_traverse},
    {Py_tp_clear, counter_clear},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_members, counter_members},
    {Py_tp_doc, "Counts a batch's delivery reports down and keeps its failures (refinery/worker/write_fast.c)."},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    "refinery.worker._write_fast.DeliveryCounter", sizeof(DeliveryCounter), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, counter_slots,
};

static PyMethodDef methods[] = {
    {"produce_outputs", (PyCFunction)(void (*)(void))produce_outputs, METH_FASTCALL,
     "produce_outputs(produce, outputs, start, on_delivery, routed[, producer]) -> (index, exception or None) "
     "(see refinery/worker/write_fast.c)"},
    DIRECT_BIND_METHOD,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_write_fast", "Compiled produce loop of the worker's batch writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__write_fast(void) {
    if ((s_value = PyUnicode_InternFromString("value")) == NULL ||
        (s_key = PyUnicode_InternFromString("key")) == NULL ||
        (s_headers = PyUnicode_InternFromString("headers")) == NULL ||
        (kwnames = Py_BuildValue("(ss)", "headers", "on_delivery")) == NULL) {
        return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *counter_type = PyType_FromSpec(&counter_spec);
    if (counter_type == NULL || PyModule_AddObject(mod, "DeliveryCounter", counter_type) < 0) {
        Py_XDECREF(counter_type);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
