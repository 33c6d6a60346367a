/* The compiled produce loop of `refinery.worker.writer.BatchWriter.write`, the delivery counter its
 * records report to (`DeliveryCounter`, the base of `refinery.worker.inflight.BatchTracker`), and the
 * librdkafka plugin that counts their acknowledgements (`conf_init`, further down).
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
 * refinery/worker/inflight.py, without a Python frame per delivery report. `acked` counts the records
 * librdkafka acknowledged, by the interceptor below (written by librdkafka's threads, atomically; 0
 * where no interceptor counts). */
typedef struct {
    PyObject_HEAD
    Py_ssize_t left;
    PyObject *failures;
    int64_t acked;
} DeliveryCounter;
static PyTypeObject *counter_type; /* the DeliveryCounter class (the module keeps it alive) */

static int counter_init(DeliveryCounter *self, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "DeliveryCounter() takes no arguments");
        return -1;
    }
    self->left = 0;
    __atomic_store_n(&self->acked, 0, __ATOMIC_RELEASE);
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

static PyObject *counter_acked(DeliveryCounter *self, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(__atomic_load_n(&self->acked, __ATOMIC_ACQUIRE));
}

static PyGetSetDef counter_getset[] = {
    {"acked", (getter)counter_acked, NULL, "records librdkafka acknowledged, counted by the interceptor", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

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
    {Py_tp_getset, counter_getset},
    {Py_tp_doc, "Counts a batch's delivery reports down and keeps its failures (refinery/worker/write_fast.c)."},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    "refinery.worker._write_fast.DeliveryCounter", sizeof(DeliveryCounter), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, counter_slots,
};


/* Acknowledgement counting: a librdkafka interceptor (on_acknowledgement, loaded as a plugin of the
 * worker's producer: `plugin.library.paths` names this module, librdkafka calls `conf_init` below).
 *
 * Why: with failure-only delivery reports (the default) a batch could only be known complete once the
 * producer had nothing outstanding, which on a live feed it never has; the loop stopped every ~64 small
 * batches to drain it, 25-65 ms each, twice a second at 10k msg/s (bench/results/NOTES.md §3). A report
 * per record completes batches on their own, at the cost of a Message object and a Python call per
 * output in confluent-kafka. librdkafka calls this interceptor once per record, when its fate is final,
 * in its own thread and without the GIL: a record acknowledged without error whose delivery callback is
 * a DeliveryCounter (a batch's tracker) counts one up in `acked`. Failures are still reported to the
 * callback by confluent-kafka and counted down there, so no record is ever counted both ways, and a
 * batch is complete once every record written for it was counted one of the two ways.
 *
 * The callback is found in confluent-kafka's per-message state (kafka_direct.h), so the interceptor
 * counts only while the layout checks of `bind` hold (`direct.bound`); otherwise it counts nothing and
 * batches complete as before. The callback object is alive while its record is (the state holds a
 * reference until confluent-kafka's delivery callback, which runs after this); its type chain is read
 * without the GIL, which is safe as types are not changed after creation. */
typedef int (acks_on_ack_f)(rd_kafka_t *, direct_rkmessage_t *, void *);
typedef int (acks_on_new_f)(rd_kafka_t *, const rd_kafka_conf_t *, void *, char *, size_t);
#define ACKS_INTERCEPTOR "refinery-acks"
#define ACKS_ERR_INVALID_ARG (-186) /* RD_KAFKA_RESP_ERR__INVALID_ARG */

static struct {
    int ready;
    int (*add_on_new)(rd_kafka_conf_t *, const char *, acks_on_new_f *, void *);
    int (*add_on_acknowledgement)(rd_kafka_t *, const char *, acks_on_ack_f *, void *);
} acks;

static int acks_on_acknowledgement(rd_kafka_t *rk, direct_rkmessage_t *message, void *opaque) {
    (void)rk;
    (void)opaque;
    if (message->err != 0 || message->_private == NULL || !__atomic_load_n(&direct.bound, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    PyObject *callback = ((const direct_msgstate_t *)message->_private)->dr_cb;
    if (callback == NULL) {
        return 0;
    }
    for (PyTypeObject *type = Py_TYPE(callback); type != NULL; type = type->tp_base) {
        if (type == counter_type) {
            __atomic_fetch_add(&((DeliveryCounter *)callback)->acked, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    return 0;
}

static int acks_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque, char *errstr, size_t size) {
    (void)conf;
    (void)opaque;
    int err = acks.add_on_acknowledgement(rk, ACKS_INTERCEPTOR, acks_on_acknowledgement, NULL);
    if (err != 0) {
        snprintf(errstr, size, "refinery: on_acknowledgement interceptor not added (error %d)", err);
    }
    return err;
}

/* librdkafka's plugin entry point (plugin.library.paths) */
__attribute__((visibility("default"))) int conf_init(rd_kafka_conf_t *conf, void **plug_opaquep, char *errstr,
                                                     size_t size) {
    (void)plug_opaquep;
    if (!__atomic_load_n(&acks.ready, __ATOMIC_ACQUIRE)) {
        snprintf(errstr, size, "refinery: acknowledgement counting was not prepared (refinery.worker.direct)");
        return ACKS_ERR_INVALID_ARG;
    }
    int err = acks.add_on_new(conf, ACKS_INTERCEPTOR, acks_on_new, NULL);
    if (err != 0) {
        snprintf(errstr, size, "refinery: on_new interceptor not added (error %d)", err);
    }
    return err;
}

/* acks_prepare(library_path) -> None when this module can serve as the producer's plugin, else why not:
 * takes the interceptor functions from the librdkafka at `library_path` (already loaded: never here). */
static PyObject *acks_prepare(PyObject *module, PyObject *path_object) {
    (void)module;
    const direct_symbol_t symbols[] = {
        {"rd_kafka_conf_interceptor_add_on_new", (void **)&acks.add_on_new},
        {"rd_kafka_interceptor_add_on_acknowledgement", (void **)&acks.add_on_acknowledgement},
    };
    PyObject *why = direct_symbols(path_object, symbols, sizeof symbols / sizeof symbols[0]);
    if (why == Py_None) {
        __atomic_store_n(&acks.ready, 1, __ATOMIC_RELEASE);
    }
    return why;
}

static PyMethodDef methods[] = {
    {"acks_prepare", (PyCFunction)acks_prepare, METH_O,
     "acks_prepare(library_path) -> None when the module can count acknowledgements as a librdkafka plugin, "
     "else why not (see refinery/worker/write_fast.c)"},
    {"produce_outputs", (PyCFunction)(void (*)(void))produce_outputs, METH_FASTCALL,
     "produce_outputs(produce, outputs, start, on_delivery, routed[, producer]) -> (index, exception or None) "
     "(see refinery/worker/write_fast.c)"},
    DIRECT_BIND_METHOD,
    DIRECT_BOUND_METHOD,
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
    PyObject *type = PyType_FromSpec(&counter_spec);
    if (type == NULL || PyModule_AddObject(mod, "DeliveryCounter", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(mod);
        return NULL;
    }
    counter_type = (PyTypeObject *)type; /* the module holds it; so does every counter's type chain */
    return mod;
}
