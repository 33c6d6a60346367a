/* The compiled routing loop of `refinery.routing.batch.route_batch` (see refinery/routing/plan.py).
 *
 * route_records(context, records, slow, output_type, taken, outputs, first, next_, records_in, origin)
 *     -> number of unmatched records
 *
 * For every record without error(): note its offsets (first/next per (topic, partition)), keep it in
 * `taken`, count it per ingest topic. Then, when its plan covers it, route it here: the plan of its
 * header combination (looked up in context's plan dict by the ingest topic and the values of the plan's
 * key headers, or built by context's plan function on first sight), the compiled envelope check against
 * the plan's expected fields, the origin count and one `output_type(topic, record, route)` per
 * destination. Every other record goes to `slow(record, topic, (topic, partition))`, the Python
 * reference, which checks and routes it from scratch: when the record is near the size limit, has no
 * headers, a duplicated header name, an invalid message id, a combination without a plan, or an
 * envelope the compiled check does not recognise. Nothing is decided here that the plan and the
 * compiled envelope check did not decide; this file only saves the interpreter's work per record.
 * Once bound (`bind`, refinery/include/kafka_direct.h), the header values of a consumed Message are read
 * from librdkafka's own list, so its headers never become Python objects unless a plan is built or the
 * reference takes the record.
 *
 * context = (plans: dict, plan: callable(topic, headers, key) -> plan or None (stored under key),
 *            key_names: tuple of str, exact_size_from: int, max_message_id_bytes: int, message_id_name: str,
 *            envelope_check: callable(value, message_id, middle) -> bool, or None)
 * plan = (middle: bytes or None (no envelope check), origin: tuple, destinations: tuple of (topic, route))
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "fast_helpers.h"
#include "kafka_direct.h"

#define MAX_KEY_NAMES 32 /* key headers a plan may read for the list reader; more: the object path only */

typedef struct {
    PyObject *plans;
    PyObject *plan_function;
    PyObject *key_names;
    Py_ssize_t exact_size_from;
    Py_ssize_t max_id_bytes;
    PyObject *message_id_name;
    PyObject *envelope_check;
    int use_direct; /* read header values from librdkafka's list (kafka_direct.h) where a record has it */
    const char *message_id_utf8;
    const char *key_utf8[MAX_KEY_NAMES];
} Context;

typedef struct {
    PyObject *error, *topic, *partition, *offset, *value, *key, *headers;
} Names;

static Names names;
static PyObject *one;

static int unpack_context(PyObject *tuple, Context *ctx) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != 7) {
        PyErr_SetString(PyExc_TypeError, "context must be a 7-tuple (see route_fast.c)");
        return -1;
    }
    ctx->plans = PyTuple_GET_ITEM(tuple, 0);
    ctx->plan_function = PyTuple_GET_ITEM(tuple, 1);
    ctx->key_names = PyTuple_GET_ITEM(tuple, 2);
    ctx->exact_size_from = PyLong_AsSsize_t(PyTuple_GET_ITEM(tuple, 3));
    ctx->max_id_bytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(tuple, 4));
    ctx->message_id_name = PyTuple_GET_ITEM(tuple, 5);
    ctx->envelope_check = PyTuple_GET_ITEM(tuple, 6);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (!PyDict_Check(ctx->plans) || !PyTuple_Check(ctx->key_names)) {
        PyErr_SetString(PyExc_TypeError, "context: plans must be a dict and key_names a tuple");
        return -1;
    }
    if (ctx->envelope_check == Py_None) {
        ctx->envelope_check = NULL;
    }
    Py_ssize_t n_keys = PyTuple_GET_SIZE(ctx->key_names);
    ctx->message_id_utf8 = NULL;
    ctx->use_direct = direct.bound && n_keys <= MAX_KEY_NAMES && PyUnicode_Check(ctx->message_id_name) &&
                      (ctx->message_id_utf8 = PyUnicode_AsUTF8(ctx->message_id_name)) != NULL;
    for (Py_ssize_t i = 0; ctx->use_direct && i < n_keys; i++) {
        PyObject *name = PyTuple_GET_ITEM(ctx->key_names, i);
        ctx->use_direct = PyUnicode_Check(name) && (ctx->key_utf8[i] = PyUnicode_AsUTF8(name)) != NULL;
    }
    PyErr_Clear(); /* a name that cannot be UTF-8: the list path only */
    return 0;
}


/* `obj or default` for the int-valued Message accessors; a new reference */
static PyObject *or_zero(PyObject *obj) {
    if (obj == Py_None) {
        Py_DECREF(obj);
        return PyLong_FromLong(0);
    }
    return obj;
}

/* The headers as a dict when every item is a (name, value) 2-tuple and no name repeats; NULL with no
 * error set otherwise (the reference path then judges the record). */
static PyObject *headers_dict(PyObject *raw) {
    if (!PyList_CheckExact(raw)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(raw);
    if (n == 0) {
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(raw, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 ||
            PyDict_SetItem(dict, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0) {
            PyErr_Clear(); /* e.g. an unhashable name: not ours to judge here */
            Py_DECREF(dict);
            return NULL;
        }
    }
    if (PyDict_GET_SIZE(dict) != n) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

/* The record's headers as a dict (headers_dict of confluent-kafka's list) in `*headers`: 1; 0 (no dict:
 * the reference judges them); -1 (headers() raised, the error is set) */
static int record_headers(PyObject *record, PyObject **headers) {
    PyObject *raw = call_method(record, names.headers);
    if (raw == NULL) {
        return -1;
    }
    *headers = headers_dict(raw);
    Py_DECREF(raw);
    return *headers == NULL ? 0 : 1;
}

/* A plan key with the ingest topic in place and `n_keys` value slots after it (filled by the caller) */
static PyObject *new_plan_key(PyObject *topic, Py_ssize_t n_keys) {
    PyObject *key = PyTuple_New(n_keys + 1);
    if (key != NULL) {
        Py_INCREF(topic);
        PyTuple_SET_ITEM(key, 0, topic);
    }
    return key;
}

#define MAX_DIRECT_HEADERS 64

/* The message id and plan key of a record from librdkafka's header list (kafka_direct.h), built as the
 * list path below builds them: 1 (new references set), 0 (the list path decides: a null value, a name
 * that is not ASCII or repeats, no valid message id, too many headers), -1 (an error is set). */
static int key_from_direct(const Context *ctx, const rd_kafka_headers_t *list, PyObject *topic,
                           PyObject **message_id, PyObject **plan_key) {
    const char *names_[MAX_DIRECT_HEADERS];
    const void *values[MAX_DIRECT_HEADERS];
    size_t sizes[MAX_DIRECT_HEADERS];
    size_t n = 0;
    while (direct.header_get_all(list, n, &names_[n], &values[n], &sizes[n]) == 0) {
        if (values[n] == NULL) {
            return 0;
        }
        for (const unsigned char *c = (const unsigned char *)names_[n]; *c; c++) {
            if (*c >= 0x80) {
                return 0; /* confluent-kafka decodes names as UTF-8: let it */
            }
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(names_[j], names_[n]) == 0) {
                return 0;
            }
        }
        if (++n == MAX_DIRECT_HEADERS) {
            return 0;
        }
    }
    Py_ssize_t id_at = -1;
    for (size_t i = 0; i < n && id_at < 0; i++) {
        if (strcmp(names_[i], ctx->message_id_utf8) == 0) {
            id_at = (Py_ssize_t)i;
        }
    }
    if (id_at < 0 || sizes[id_at] == 0 || sizes[id_at] > (size_t)ctx->max_id_bytes) {
        return 0;
    }
    Py_ssize_t n_keys = PyTuple_GET_SIZE(ctx->key_names);
    PyObject *key = new_plan_key(topic, n_keys);
    if (key == NULL) {
        return -1;
    }
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        PyObject *found = Py_None;
        Py_INCREF(found);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(names_[i], ctx->key_utf8[k]) == 0) {
                Py_SETREF(found, PyBytes_FromStringAndSize(values[i], (Py_ssize_t)sizes[i]));
                break;
            }
        }
        if (found == NULL) {
            Py_DECREF(key);
            return -1;
        }
        PyTuple_SET_ITEM(key, k + 1, found);
    }
    if ((*message_id = PyBytes_FromStringAndSize(values[id_at], (Py_ssize_t)sizes[id_at])) == NULL) {
        Py_DECREF(key);
        return -1;
    }
    *plan_key = key;
    return 1;
}

/* The message id (new reference) and plan key from the record's headers as confluent-kafka's list;
 * `*headers` gets the dict (the plan function's argument). 1 / 0 / -1 as key_from_direct. */
static int key_from_list(const Context *ctx, PyObject *record, PyObject *topic, PyObject **headers,
                         PyObject **message_id, PyObject **plan_key) {
    int got = record_headers(record, headers);
    if (got <= 0) {
        return got;
    }
    PyObject *id = PyDict_GetItemWithError(*headers, ctx->message_id_name); /* borrowed */
    if (id == NULL || !PyBytes_CheckExact(id) || PyBytes_GET_SIZE(id) == 0 ||
        PyBytes_GET_SIZE(id) > ctx->max_id_bytes) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t n_keys = PyTuple_GET_SIZE(ctx->key_names);
    PyObject *key = new_plan_key(topic, n_keys);
    if (key == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n_keys; i++) {
        PyObject *found = PyDict_GetItemWithError(*headers, PyTuple_GET_ITEM(ctx->key_names, i));
        if (found == NULL) {
            if (PyErr_Occurred()) {
                PyErr_Clear();
                Py_DECREF(key);
                return 0;
            }
            found = Py_None;
        }
        Py_INCREF(found);
        PyTuple_SET_ITEM(key, i + 1, found);
    }
    Py_INCREF(id);
    *message_id = id;
    *plan_key = key;
    return 1;
}

/* 1: routed here; 0: take the reference path; -1: an error is set */
static int route_planned(const Context *ctx, PyObject *record, PyObject *topic, PyObject *output_type,
                         PyObject *outputs, PyObject *origin_counts, Py_ssize_t *unmatched) {
    int result = -1;
    PyObject *value = NULL, *key = NULL, *headers = NULL, *plan_key = NULL, *message_id = NULL;
    if ((value = call_method(record, names.value)) == NULL || (key = call_method(record, names.key)) == NULL) {
        goto done;
    }
    result = 0;
    if (value != Py_None) {
        if (!PyBytes_CheckExact(value) || (key != Py_None && !PyBytes_CheckExact(key))) {
            goto done;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(value) + (key == Py_None ? 0 : PyBytes_GET_SIZE(key));
        if (size > ctx->exact_size_from) {
            goto done; /* near the limit: the exact size (headers too) is counted by the reference */
        }
    }
    const rd_kafka_headers_t *direct_list = ctx->use_direct ? direct_headers(record) : NULL;
    int found = direct_list == NULL ? 0 : key_from_direct(ctx, direct_list, topic, &message_id, &plan_key);
    if (found == 0) {
        found = key_from_list(ctx, record, topic, &headers, &message_id, &plan_key);
    }
    if (found <= 0) {
        result = found;
        goto done;
    }
    PyObject *plan = PyDict_GetItemWithError(ctx->plans, plan_key); /* borrowed */
    PyObject *new_plan = NULL;
    if (plan == NULL) {
        if (PyErr_Occurred()) { /* an unhashable header value */
            PyErr_Clear();
            goto done;
        }
        if (headers == NULL) { /* keyed from librdkafka's list: the plan function takes the dict */
            int got = record_headers(record, &headers);
            if (got <= 0) {
                result = got;
                goto done;
            }
        }
        PyObject *args[3] = {topic, headers, plan_key}; /* the key is built here only */
        if ((new_plan = PyObject_Vectorcall(ctx->plan_function, args, 3, NULL)) == NULL) {
            result = -1;
            goto done;
        }
        plan = new_plan;
    }
    if (plan == Py_None) {
        Py_XDECREF(new_plan);
        goto done;
    }
    if (!PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) != 3 ||
        !PyTuple_CheckExact(PyTuple_GET_ITEM(plan, 2))) {
        Py_XDECREF(new_plan);
        PyErr_SetString(PyExc_TypeError, "a plan must be (middle, origin, destinations)");
        result = -1;
        goto done;
    }
    Py_INCREF(plan);
    Py_XDECREF(new_plan); /* the plan dict holds it too */
    PyObject *middle = PyTuple_GET_ITEM(plan, 0);
    if (middle != Py_None) {
        if (ctx->envelope_check == NULL) {
            Py_DECREF(plan);
            goto done;
        }
        PyObject *args[3] = {value, message_id, middle};
        PyObject *ok = PyObject_Vectorcall(ctx->envelope_check, args, 3, NULL);
        if (ok == NULL) {
            Py_DECREF(plan);
            result = -1;
            goto done;
        }
        int accepted = ok == Py_True;
        Py_DECREF(ok);
        if (!accepted) {
            Py_DECREF(plan);
            goto done; /* the parser decides, and names what is wrong */
        }
    }
    if (count(origin_counts, PyTuple_GET_ITEM(plan, 1)) < 0) {
        Py_DECREF(plan);
        result = -1;
        goto done;
    }
    PyObject *destinations = PyTuple_GET_ITEM(plan, 2);
    Py_ssize_t n_dest = PyTuple_GET_SIZE(destinations);
    if (n_dest == 0) {
        (*unmatched)++;
    }
    for (Py_ssize_t i = 0; i < n_dest; i++) {
        PyObject *dest = PyTuple_GET_ITEM(destinations, i);
        /* a tuple subclass (a named tuple): allocated and filled as tuple.__new__ does for subclasses */
        PyObject *out = ((PyTypeObject *)output_type)->tp_alloc((PyTypeObject *)output_type, 3);
        if (out == NULL) {
            Py_DECREF(plan);
            result = -1;
            goto done;
        }
        PyObject *dest_topic = PyTuple_GET_ITEM(dest, 0), *route = PyTuple_GET_ITEM(dest, 1);
        Py_INCREF(dest_topic);
        Py_INCREF(record);
        Py_INCREF(route);
        PyTuple_SET_ITEM(out, 0, dest_topic);
        PyTuple_SET_ITEM(out, 1, record);
        PyTuple_SET_ITEM(out, 2, route);
        int rc = PyList_Append(outputs, out);
        Py_DECREF(out);
        if (rc < 0) {
            Py_DECREF(plan);
            result = -1;
            goto done;
        }
    }
    Py_DECREF(plan);
    result = 1;
done:
    Py_XDECREF(value);
    Py_XDECREF(key);
    Py_XDECREF(headers);
    Py_XDECREF(plan_key);
    Py_XDECREF(message_id);
    return result;
}

static PyObject *route_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "route_records takes 10 arguments (see route_fast.c)");
        return NULL;
    }
    Context ctx;
    if (unpack_context(args[0], &ctx) < 0) {
        return NULL;
    }
    PyObject *slow = args[2], *output_type = args[3], *taken = args[4], *outputs = args[5];
    PyObject *first = args[6], *next = args[7], *records_in = args[8], *origin = args[9];
    if (!PyType_Check(output_type) || !PyType_IsSubtype((PyTypeObject *)output_type, &PyTuple_Type) ||
        !PyList_Check(taken) || !PyList_Check(outputs) || !PyDict_Check(first) || !PyDict_Check(next) ||
        !PyDict_Check(records_in) || !PyDict_Check(origin)) {
        PyErr_SetString(PyExc_TypeError, "route_records: wrong argument types (see route_fast.c)");
        return NULL;
    }
    PyObject *iterator = PyObject_GetIter(args[1]);
    if (iterator == NULL) {
        return NULL;
    }
    Py_ssize_t unmatched = 0;
    PyObject *record, *tp = NULL;
    while ((record = PyIter_Next(iterator)) != NULL) {
        PyObject *error = NULL, *topic = NULL, *partition = NULL, *offset = NULL, *next_offset = NULL;
        int ok = 0;
        if ((error = call_method(record, names.error)) == NULL) {
            goto next_record;
        }
        if (error != Py_None) {
            ok = 1;
            goto next_record;
        }
        if ((topic = call_method(record, names.topic)) == NULL ||
            (partition = call_method(record, names.partition)) == NULL ||
            (offset = call_method(record, names.offset)) == NULL) {
            goto next_record;
        }
        if (topic == Py_None || !PyObject_IsTrue(topic)) {
            Py_SETREF(topic, PyUnicode_FromString(""));
        }
        if (topic == NULL || (partition = or_zero(partition)) == NULL || (offset = or_zero(offset)) == NULL) {
            goto next_record;
        }
        /* records come in runs of one partition: reuse the key of the previous record when it is the same */
        if (tp == NULL || PyObject_RichCompareBool(PyTuple_GET_ITEM(tp, 0), topic, Py_EQ) != 1 ||
            PyObject_RichCompareBool(PyTuple_GET_ITEM(tp, 1), partition, Py_EQ) != 1) {
            PyErr_Clear();
            Py_XDECREF(tp);
            if ((tp = PyTuple_Pack(2, topic, partition)) == NULL) {
                goto next_record;
            }
            int known = PyDict_Contains(first, tp);
            if (known < 0 || (!known && PyDict_SetItem(first, tp, offset) < 0)) {
                goto next_record;
            }
        }
        if ((next_offset = PyNumber_Add(offset, one)) == NULL || PyDict_SetItem(next, tp, next_offset) < 0 ||
            PyList_Append(taken, record) < 0 || count(records_in, topic) < 0) {
            goto next_record;
        }
        int routed = route_planned(&ctx, record, topic, output_type, outputs, origin, &unmatched);
        if (routed == 0) {
            PyObject *slow_args[3] = {record, topic, tp};
            PyObject *done = PyObject_Vectorcall(slow, slow_args, 3, NULL);
            if (done == NULL) {
                goto next_record;
            }
            Py_DECREF(done);
        } else if (routed < 0) {
            goto next_record;
        }
        ok = 1;
    next_record:
        Py_XDECREF(error);
        Py_XDECREF(topic);
        Py_XDECREF(partition);
        Py_XDECREF(offset);
        Py_XDECREF(next_offset);
        Py_DECREF(record);
        if (!ok) {
            Py_XDECREF(tp);
            Py_DECREF(iterator);
            return NULL;
        }
    }
    Py_XDECREF(tp);
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(unmatched);
}

static PyMethodDef methods[] = {
    {"route_records", (PyCFunction)(void (*)(void))route_records, METH_FASTCALL,
     "route_records(context, records, slow, output_type, taken, outputs, first, next_, records_in, origin)"
     " -> unmatched count (see refinery/routing/route_fast.c)"},
    DIRECT_BIND_METHOD,
    DIRECT_BOUND_METHOD,
    DIRECT_HOLDS_METHOD,
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_route_fast", "Compiled routing loop of the worker (refinery/routing/plan.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__route_fast(void) {
    PyObject **slots[] = {&names.error, &names.topic, &names.partition, &names.offset,
                          &names.value, &names.key,   &names.headers};
    const char *texts[] = {"error", "topic", "partition", "offset", "value", "key", "headers"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if ((*slots[i] = PyUnicode_InternFromString(texts[i])) == NULL) {
            return NULL;
        }
    }
    if ((one = PyLong_FromLong(1)) == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
