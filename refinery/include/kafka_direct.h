/* Direct access to the librdkafka objects under confluent-kafka's Message and Producer, for the worker's
 * compiled loops (refinery/routing/route_fast.c, refinery/worker/write_fast.c).
 *
 * Why: confluent-kafka turns a consumed record's headers into Python objects (a list of 13 (str, bytes)
 * tuples for the reference workload, ~5 us per record) on `headers()`, and `produce(headers=...)` turns
 * them back (~2-4 us per output). The routing loop needs a few header values and the writer forwards the
 * headers unchanged, so both can read and copy librdkafka's own header list instead: confluent-kafka's
 * Message keeps it (`c_headers`) until `headers()` is first called.
 *
 * This reaches into another extension's structs, so nothing is assumed: `direct_bind` binds only after
 * checking, on live objects, that the fields sit where this file says (a probe Message's fields against
 * its accessors, the Producer's handle against librdkafka's own name and type of it), and it takes the
 * functions from the very librdkafka that confluent-kafka loaded (`refinery/worker/direct.py` finds it).
 * Unbound, or for any object that does not fit (another type, headers already converted, a closed
 * producer), the loops take confluent-kafka's public API as before. A produce refused here is made again
 * through confluent-kafka's `produce`, so its errors (BufferError, KafkaException) stay its own.
 *
 * Delivery reports: a record produced here carries confluent-kafka's per-message state (its
 * `struct Producer_msgstate`: the Producer and the on_delivery callable, calloc'ed, freed by its delivery
 * callback), so its report reaches the batch's tracker exactly as one produced through `produce`.
 * Header-only: each extension module gets its own static copy and is bound on its own.
 */
#ifndef REFINERY_KAFKA_DIRECT_H
#define REFINERY_KAFKA_DIRECT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* librdkafka's public ABI, as declared in rdkafka.h (opaque types, the produceva value union) */
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;
typedef struct rd_kafka_error_s rd_kafka_error_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct { /* rd_kafka_message_t: what a delivery report or an interceptor is given */
    int err;
    void *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private; /* the per-message opaque: confluent-kafka's state below */
} direct_rkmessage_t;
enum {
    DIRECT_VTYPE_END = 0, DIRECT_VTYPE_TOPIC = 1, DIRECT_VTYPE_PARTITION = 3, DIRECT_VTYPE_VALUE = 4,
    DIRECT_VTYPE_KEY = 5, DIRECT_VTYPE_OPAQUE = 6, DIRECT_VTYPE_MSGFLAGS = 7, DIRECT_VTYPE_HEADERS = 10,
};
#define DIRECT_MSG_F_COPY 0x2
#define DIRECT_PARTITION_UA ((int32_t)-1)
#define DIRECT_RD_KAFKA_PRODUCER 0
typedef struct {
    int vtype;
    union {
        const char *cstr;
        int i;
        int32_t i32;
        struct {
            void *ptr;
            size_t size;
        } mem;
        rd_kafka_headers_t *headers;
        void *ptr;
        char _pad[64];
    } u;
} direct_vu_t;

#if defined(__has_include)
#if __has_include(<librdkafka/rdkafka.h>)
#include <librdkafka/rdkafka.h>
/* where Debian's rdkafka.h is installed, the build checks these declarations against it */
_Static_assert(sizeof(direct_vu_t) == sizeof(rd_kafka_vu_t), "rd_kafka_vu_t layout");
_Static_assert(DIRECT_VTYPE_TOPIC == (int)RD_KAFKA_VTYPE_TOPIC && DIRECT_VTYPE_PARTITION == (int)RD_KAFKA_VTYPE_PARTITION &&
                   DIRECT_VTYPE_VALUE == (int)RD_KAFKA_VTYPE_VALUE && DIRECT_VTYPE_KEY == (int)RD_KAFKA_VTYPE_KEY &&
                   DIRECT_VTYPE_OPAQUE == (int)RD_KAFKA_VTYPE_OPAQUE && DIRECT_VTYPE_MSGFLAGS == (int)RD_KAFKA_VTYPE_MSGFLAGS &&
                   DIRECT_VTYPE_HEADERS == (int)RD_KAFKA_VTYPE_HEADERS && DIRECT_MSG_F_COPY == RD_KAFKA_MSG_F_COPY &&
                   DIRECT_RD_KAFKA_PRODUCER == (int)RD_KAFKA_PRODUCER,
               "librdkafka constants");
_Static_assert(sizeof(direct_rkmessage_t) == sizeof(rd_kafka_message_t) &&
                   offsetof(direct_rkmessage_t, _private) == offsetof(rd_kafka_message_t, _private),
               "rd_kafka_message_t layout");
#endif
#endif

/* confluent-kafka's objects, their leading fields (src/confluent_kafka/src/confluent_kafka.h, Producer.c) */
typedef struct {
    PyObject_HEAD
    PyObject *topic, *value, *key, *headers;
    rd_kafka_headers_t *c_headers; /* kept until headers() converts it (and sets `headers`) */
} direct_message_t;
typedef struct {
    PyObject_HEAD
    rd_kafka_t *rk; /* NULL once closed */
} direct_handle_t;
typedef struct {
    PyObject *producer; /* confluent-kafka's Handle */
    PyObject *dr_cb;
} direct_msgstate_t;

static struct {
    int bound;
    PyTypeObject *message_type, *producer_type;
    int (*header_get_all)(const rd_kafka_headers_t *, size_t, const char **, const void **, size_t *);
    rd_kafka_headers_t *(*headers_copy)(const rd_kafka_headers_t *);
    void (*headers_destroy)(rd_kafka_headers_t *);
    rd_kafka_error_t *(*produceva)(rd_kafka_t *, const direct_vu_t *, size_t);
    void (*error_destroy)(rd_kafka_error_t *);
    const char *(*name)(const rd_kafka_t *);
    int (*type)(const rd_kafka_t *);
} direct;

/* The header list of a consumed Message whose headers() was never called; NULL for anything else. */
static inline const rd_kafka_headers_t *direct_headers(PyObject *record) {
    if (!__atomic_load_n(&direct.bound, __ATOMIC_ACQUIRE) || Py_TYPE(record) != direct.message_type) {
        return NULL;
    }
    const direct_message_t *m = (const direct_message_t *)record;
    return m->headers == NULL ? m->c_headers : NULL;
}

/* Produce `record` (a Message with direct_headers) to `topic` on `producer` with a copy of its headers,
 * its own key and value, reporting to `on_delivery`: as producer.produce(topic, record.value(),
 * record.key(), headers=record.headers(), on_delivery=on_delivery) does. 1: produced; 0: not produced
 * here (nothing was queued; the caller produces it through confluent-kafka). */
static inline int direct_produce(PyObject *producer, PyObject *topic, PyObject *record, PyObject *on_delivery) {
    const rd_kafka_headers_t *headers = direct_headers(record);
    if (headers == NULL || on_delivery == Py_None || !PyUnicode_CheckExact(topic) ||
        !PyObject_TypeCheck(producer, direct.producer_type)) {
        return 0;
    }
    rd_kafka_t *rk = ((direct_handle_t *)producer)->rk;
    const direct_message_t *m = (const direct_message_t *)record;
    const char *name = PyUnicode_AsUTF8(topic);
    if (rk == NULL || name == NULL || (m->value != NULL && !PyBytes_CheckExact(m->value)) ||
        (m->key != NULL && !PyBytes_CheckExact(m->key))) {
        PyErr_Clear();
        return 0;
    }
    direct_msgstate_t *state = calloc(1, sizeof(*state));
    rd_kafka_headers_t *copy = state == NULL ? NULL : direct.headers_copy(headers);
    if (copy == NULL) {
        free(state);
        return 0;
    }
    state->producer = producer; /* not a reference: confluent-kafka's own state holds none either */
    state->dr_cb = on_delivery;
    Py_INCREF(on_delivery); /* released by confluent-kafka's delivery callback */
    direct_vu_t vus[7];
    memset(vus, 0, sizeof(vus));
    vus[0].vtype = DIRECT_VTYPE_TOPIC;
    vus[0].u.cstr = name;
    vus[1].vtype = DIRECT_VTYPE_PARTITION;
    vus[1].u.i32 = DIRECT_PARTITION_UA;
    vus[2].vtype = DIRECT_VTYPE_MSGFLAGS;
    vus[2].u.i = DIRECT_MSG_F_COPY;
    vus[3].vtype = DIRECT_VTYPE_VALUE;
    vus[3].u.mem.ptr = m->value == NULL ? NULL : PyBytes_AS_STRING(m->value);
    vus[3].u.mem.size = m->value == NULL ? 0 : (size_t)PyBytes_GET_SIZE(m->value);
    vus[4].vtype = DIRECT_VTYPE_KEY;
    vus[4].u.mem.ptr = m->key == NULL ? NULL : PyBytes_AS_STRING(m->key);
    vus[4].u.mem.size = m->key == NULL ? 0 : (size_t)PyBytes_GET_SIZE(m->key);
    vus[5].vtype = DIRECT_VTYPE_HEADERS;
    vus[5].u.headers = copy; /* owned by the message once queued */
    vus[6].vtype = DIRECT_VTYPE_OPAQUE;
    vus[6].u.ptr = state;
    rd_kafka_error_t *error = direct.produceva(rk, vus, 7);
    if (error != NULL) {
        direct.error_destroy(error);
        direct.headers_destroy(copy);
        Py_DECREF(on_delivery);
        free(state);
        return 0;
    }
    return 1;
}

/* One function taken from librdkafka by name, into `slot` (a function pointer's address). */
#define DIRECT_SYMBOLS_MAX 16 /* the most one direct_symbols call takes (direct_bind: 7) */
typedef struct {
    const char *name;
    void **slot;
} direct_symbol_t;

/* direct_symbols(library_path, symbols, count): fill each slot from the librdkafka at `library_path`, which
 * confluent-kafka already loaded (RTLD_NOLOAD: never loaded here, never dlopen(NULL), the program itself).
 * All or nothing: when one function is missing no slot changes, so functions found by an earlier call stay
 * callable. Returns a new reference: None when every function was found, else a str saying why not; NULL
 * with an exception set when the path is not a str. */
static PyObject *direct_symbols(PyObject *path_object, const direct_symbol_t *symbols, size_t count) {
    if (!PyUnicode_Check(path_object)) {
        PyErr_SetString(PyExc_TypeError, "the librdkafka path must be a str");
        return NULL;
    }
    const char *path = PyUnicode_AsUTF8(path_object);
    if (path == NULL) {
        return NULL;
    }
    if (count > DIRECT_SYMBOLS_MAX) {
        return PyUnicode_FromFormat("%zu functions asked for, more than DIRECT_SYMBOLS_MAX", count);
    }
    void *library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (library == NULL) {
        return PyUnicode_FromFormat("librdkafka is not loaded from %U", path_object);
    }
    void *found[DIRECT_SYMBOLS_MAX];
    const char *missing = NULL;
    for (size_t i = 0; i < count && missing == NULL; i++) {
        found[i] = dlsym(library, symbols[i].name);
        if (found[i] == NULL) {
            missing = symbols[i].name;
        }
    }
    for (size_t i = 0; i < count && missing == NULL; i++) {
        *symbols[i].slot = found[i];
    }
    dlclose(library); /* confluent-kafka keeps it loaded */
    if (missing != NULL) {
        return PyUnicode_FromFormat("librdkafka lacks %s, which this build uses", missing);
    }
    Py_RETURN_NONE;
}

/* direct_bind(library_path or None, message_type, probe_message, probe_fields, producer_type, producer):
 * bind to the librdkafka at `library_path` (already loaded by confluent-kafka: never loaded here) once
 * the probes fit; None unbinds. Returns None when bound (or unbound), else a str saying why not. */
static PyObject *direct_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    __atomic_store_n(&direct.bound, 0, __ATOMIC_RELEASE); /* read by librdkafka's threads (write_fast.c) */
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "bind(library_path, message_type, probe_message, probe_fields, "
                                         "producer_type, producer) takes 6 arguments");
        return NULL;
    }
    if (args[0] == Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *message_type = args[1], *probe = args[2], *fields = args[3], *producer_type = args[4],
             *producer = args[5];
    if (!PyUnicode_Check(args[0]) || !PyType_Check(message_type) || !PyType_Check(producer_type) ||
        !PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != 4) {
        PyErr_SetString(PyExc_TypeError, "bind: wrong argument types (see kafka_direct.h)");
        return NULL;
    }
    if (Py_TYPE(probe) != (PyTypeObject *)message_type ||
        ((PyTypeObject *)message_type)->tp_basicsize < (Py_ssize_t)sizeof(direct_message_t)) {
        return PyUnicode_FromString("the probe is not a Message, or a Message is smaller than expected");
    }
    const direct_message_t *m = (const direct_message_t *)probe;
    if (m->topic != PyTuple_GET_ITEM(fields, 0) || m->value != PyTuple_GET_ITEM(fields, 1) ||
        m->key != PyTuple_GET_ITEM(fields, 2) || m->headers != PyTuple_GET_ITEM(fields, 3) || m->c_headers != NULL) {
        return PyUnicode_FromString("a Message's fields are not where this build expects them");
    }
    if (!PyObject_TypeCheck(producer, (PyTypeObject *)producer_type) ||
        ((PyTypeObject *)producer_type)->tp_basicsize < (Py_ssize_t)sizeof(direct_handle_t)) {
        return PyUnicode_FromString("the producer is not a confluent-kafka Producer");
    }
    const direct_symbol_t symbols[] = {
        {"rd_kafka_header_get_all", (void **)&direct.header_get_all},
        {"rd_kafka_headers_copy", (void **)&direct.headers_copy},
        {"rd_kafka_headers_destroy", (void **)&direct.headers_destroy},
        {"rd_kafka_produceva", (void **)&direct.produceva},
        {"rd_kafka_error_destroy", (void **)&direct.error_destroy},
        {"rd_kafka_name", (void **)&direct.name},
        {"rd_kafka_type", (void **)&direct.type},
    };
    PyObject *why = direct_symbols(args[0], symbols, sizeof symbols / sizeof symbols[0]);
    if (why != Py_None) {
        return why;
    }
    Py_DECREF(why);
    rd_kafka_t *rk = ((direct_handle_t *)producer)->rk;
    const char *name = rk == NULL ? NULL : direct.name(rk);
    if (name == NULL || direct.type(rk) != DIRECT_RD_KAFKA_PRODUCER || strstr(name, "#producer-") == NULL) {
        return PyUnicode_FromString("a Producer's handle is not where this build expects it");
    }
    direct.message_type = (PyTypeObject *)message_type;
    direct.producer_type = (PyTypeObject *)producer_type;
    Py_INCREF(message_type); /* kept for the module's life */
    Py_INCREF(producer_type);
    __atomic_store_n(&direct.bound, 1, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* holds_header_list(record) -> bool: the record still holds librdkafka's header list (for the tests) */
static inline PyObject *direct_holds(PyObject *module, PyObject *record) {
    (void)module;
    return PyBool_FromLong(direct_headers(record) != NULL);
}

/* bound() -> bool: whether this module's loops read librdkafka's objects now (the last bind succeeded) */
static inline PyObject *direct_is_bound(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(__atomic_load_n(&direct.bound, __ATOMIC_ACQUIRE));
}

#define DIRECT_BOUND_METHOD                                                                                \
    {"bound", (PyCFunction)direct_is_bound, METH_NOARGS,                                                   \
     "bound() -> whether this module's loops use librdkafka's objects now (see kafka_direct.h)"}

#define DIRECT_HOLDS_METHOD                                                                                \
    {"holds_header_list", (PyCFunction)direct_holds, METH_O,                                               \
     "holds_header_list(record) -> whether a bound loop reads its headers from librdkafka's list"}

#define DIRECT_BIND_METHOD                                                                                 \
    {"bind", (PyCFunction)(void (*)(void))direct_bind, METH_FASTCALL,                                      \
     "bind(library_path, message_type, probe_message, (topic, value, key, headers), producer_type, producer)" \
     " -> None when bound, else why not (see refinery/include/kafka_direct.h)"}

#endif
