/* A compiled, one-sided fast path for the SDK's Avro payloads (producers/codecs.py).
 *
 * encode(plan, value) -> bytes | None
 *
 * `plan` is a schema compiled by `producers.avro_fast.compile_plan` into nested tuples (kinds below).
 * Bytes mean: fastavro's validation accepts `value` and `fastavro.schemaless_writer` writes exactly
 * these bytes. None means only "not shown here": the caller then runs fastavro's validation and writer,
 * which decide and name the bad field. Like the pure-Python check in front of fastavro it takes exact
 * Python types only (no subclasses, no bool for a number, every record field present) and leaves to
 * fastavro anything it could read another way: unions in which an earlier branch might also take the
 * value, floats that do not fit 32 bits, strings that do not encode as UTF-8.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum kind {
    K_NULL = 0,
    K_BOOLEAN = 1,
    K_INT = 2,
    K_LONG = 3,
    K_FLOAT = 4,
    K_DOUBLE = 5,
    K_STRING = 6,
    K_BYTES = 7,
    K_ENUM = 8,   /* (K_ENUM, {symbol: index}) */
    K_FIXED = 9,  /* (K_FIXED, size) */
    K_ARRAY = 10, /* (K_ARRAY, items) */
    K_MAP = 11,   /* (K_MAP, values) */
    K_RECORD = 12, /* (K_RECORD, (name, ...), (plan, ...)) */
    K_UNION = 13, /* (K_UNION, (plan, ...)): branches of kinds NULL..BYTES without FLOAT */
};

#define NOT_SURE 0
#define WRITTEN 1
#define FAILED -1 /* a Python error is set (out of memory, a malformed plan) */

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} buffer;

static int reserve(buffer *out, Py_ssize_t more) {
    if (out->size + more <= out->capacity) {
        return WRITTEN;
    }
    Py_ssize_t capacity = out->capacity * 2;
    while (capacity < out->size + more) {
        capacity *= 2;
    }
    char *grown = PyMem_Realloc(out->data, (size_t)capacity);
    if (grown == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    out->data = grown;
    out->capacity = capacity;
    return WRITTEN;
}

/* Avro's int and long: zig-zag, then a little-endian base-128 varint. */
static int write_long(buffer *out, int64_t n) {
    if (reserve(out, 10) != WRITTEN) {
        return FAILED;
    }
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    while (z > 0x7F) {
        out->data[out->size++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    out->data[out->size++] = (char)z;
    return WRITTEN;
}

static int write_raw(buffer *out, const char *data, Py_ssize_t length) {
    if (reserve(out, length) != WRITTEN) {
        return FAILED;
    }
    memcpy(out->data + out->size, data, (size_t)length);
    out->size += length;
    return WRITTEN;
}

static int write_sized(buffer *out, const char *data, Py_ssize_t length) {
    if (write_long(out, length) != WRITTEN) {
        return FAILED;
    }
    return write_raw(out, data, length);
}

/* An exact str as UTF-8; NOT_SURE for one that does not encode (lone surrogates). */
static int write_string(buffer *out, PyObject *value) {
    Py_ssize_t length;
    const char *text = PyUnicode_AsUTF8AndSize(value, &length);
    if (text == NULL) {
        PyErr_Clear();
        return NOT_SURE;
    }
    return write_sized(out, text, length);
}

/* An exact int within [low, high]. */
static int integer_in(PyObject *value, int64_t low, int64_t high, int64_t *n) {
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < low || v > high) {
        return 0;
    }
    *n = (int64_t)v;
    return 1;
}

/* An exact float, or an exact int (fastavro takes ints for float and double). */
static int real_value(PyObject *value, double *d) {
    if (PyFloat_CheckExact(value)) {
        *d = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (PyLong_CheckExact(value)) {
        *d = PyLong_AsDouble(value);
        if (*d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large for a double */
            return 0;
        }
        return 1;
    }
    return 0;
}

static long plan_kind(PyObject *plan) {
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) < 1) {
        PyErr_SetString(PyExc_TypeError, "malformed Avro plan");
        return -1;
    }
    return PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
}

static PyObject *plan_part(PyObject *plan, Py_ssize_t at) {
    if (PyTuple_GET_SIZE(plan) <= at) {
        PyErr_SetString(PyExc_TypeError, "malformed Avro plan");
        return NULL;
    }
    return PyTuple_GET_ITEM(plan, at);
}

/* Would fastavro's validation take `value` for a union branch of this kind? Exact for the builtin
 * scalar types (fastavro takes no bool for a number); "it might" for any other type, so a union is
 * written only when no earlier branch could have taken the value. */
static int might_take(long kind, PyObject *value) {
    int builtin = value == Py_None || PyBool_Check(value) || PyLong_CheckExact(value) || PyFloat_CheckExact(value) ||
                  PyUnicode_CheckExact(value) || PyBytes_CheckExact(value);
    if (!builtin) {
        return 1;
    }
    int64_t n;
    switch (kind) {
    case K_NULL:
        return value == Py_None;
    case K_BOOLEAN:
        return PyBool_Check(value);
    case K_INT:
        return integer_in(value, INT32_MIN, INT32_MAX, &n);
    case K_LONG:
        return integer_in(value, INT64_MIN, INT64_MAX, &n);
    case K_DOUBLE:
        return PyLong_CheckExact(value) || PyFloat_CheckExact(value);
    case K_STRING:
        return PyUnicode_CheckExact(value);
    case K_BYTES:
        return PyBytes_CheckExact(value);
    default:
        return 1; /* not a union branch the plan allows: assume it might */
    }
}

static int encode_value(buffer *out, PyObject *plan, PyObject *value, int depth);

static int encode_union(buffer *out, PyObject *plan, PyObject *value, int depth) {
    PyObject *branches = plan_part(plan, 1);
    if (branches == NULL || !PyTuple_Check(branches)) {
        return FAILED;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(branches); i++) {
        PyObject *branch = PyTuple_GET_ITEM(branches, i);
        long kind = plan_kind(branch);
        if (kind == -1 && PyErr_Occurred()) {
            return FAILED;
        }
        if (!might_take(kind, value)) {
            continue;
        }
        /* The first branch fastavro might pick: write it if the value is exactly its type. */
        Py_ssize_t mark = out->size;
        if (write_long(out, i) != WRITTEN) {
            return FAILED;
        }
        int written = encode_value(out, branch, value, depth + 1);
        if (written != WRITTEN) {
            out->size = mark;
        }
        return written;
    }
    return NOT_SURE;
}

static int encode_record(buffer *out, PyObject *plan, PyObject *value, int depth) {
    if (!PyDict_CheckExact(value)) {
        return NOT_SURE;
    }
    PyObject *names = plan_part(plan, 1);
    PyObject *plans = names == NULL ? NULL : plan_part(plan, 2);
    if (plans == NULL || !PyTuple_Check(names) || !PyTuple_Check(plans) ||
        PyTuple_GET_SIZE(names) != PyTuple_GET_SIZE(plans)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "malformed Avro plan");
        }
        return FAILED;
    }
    static PyObject *type_key = NULL; /* fastavro's "-type" hint: left to fastavro */
    if (type_key == NULL && (type_key = PyUnicode_InternFromString("-type")) == NULL) {
        return FAILED;
    }
    int has_hint = PyDict_Contains(value, type_key);
    if (has_hint != 0) {
        return has_hint < 0 ? FAILED : NOT_SURE;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *field = PyDict_GetItemWithError(value, PyTuple_GET_ITEM(names, i));
        if (field == NULL) {
            return PyErr_Occurred() ? FAILED : NOT_SURE; /* missing: it may have a default */
        }
        int written = encode_value(out, PyTuple_GET_ITEM(plans, i), field, depth + 1);
        if (written != WRITTEN) {
            return written;
        }
    }
    return WRITTEN;
}

static int encode_array(buffer *out, PyObject *plan, PyObject *value, int depth) {
    if (!PyList_CheckExact(value)) {
        return NOT_SURE;
    }
    PyObject *items = plan_part(plan, 1);
    if (items == NULL) {
        return FAILED;
    }
    Py_ssize_t count = PyList_GET_SIZE(value);
    if (count > 0) {
        if (write_long(out, count) != WRITTEN) {
            return FAILED;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            if (PyList_GET_SIZE(value) != count) {
                return NOT_SURE; /* changed under us (a key's __eq__ in a nested lookup): let fastavro decide */
            }
            PyObject *item = Py_NewRef(PyList_GET_ITEM(value, i));
            int written = encode_value(out, items, item, depth + 1);
            Py_DECREF(item);
            if (written != WRITTEN) {
                return written;
            }
        }
    }
    return write_long(out, 0);
}

static int encode_map(buffer *out, PyObject *plan, PyObject *value, int depth) {
    if (!PyDict_CheckExact(value)) {
        return NOT_SURE;
    }
    PyObject *values = plan_part(plan, 1);
    if (values == NULL) {
        return FAILED;
    }
    Py_ssize_t count = PyDict_GET_SIZE(value);
    if (count > 0) {
        if (write_long(out, count) != WRITTEN) {
            return FAILED;
        }
        Py_ssize_t position = 0, seen = 0;
        PyObject *key, *item;
        while (PyDict_Next(value, &position, &key, &item)) {
            if (!PyUnicode_CheckExact(key) || PyDict_GET_SIZE(value) != count || ++seen > count) {
                return NOT_SURE;
            }
            Py_INCREF(key);
            Py_INCREF(item);
            int written = write_string(out, key);
            if (written == WRITTEN) {
                written = encode_value(out, values, item, depth + 1);
            }
            Py_DECREF(key);
            Py_DECREF(item);
            if (written != WRITTEN) {
                return written;
            }
        }
        if (seen != count) {
            return NOT_SURE;
        }
    }
    return write_long(out, 0);
}

static int encode_value(buffer *out, PyObject *plan, PyObject *value, int depth) {
    if (depth > 64) {
        return NOT_SURE; /* deeper than any event schema: fastavro's recursion decides */
    }
    long kind = plan_kind(plan);
    if (kind == -1 && PyErr_Occurred()) {
        return FAILED;
    }
    int64_t n;
    double d;
    switch (kind) {
    case K_NULL:
        return value == Py_None ? WRITTEN : NOT_SURE;
    case K_BOOLEAN:
        if (!PyBool_Check(value)) {
            return NOT_SURE;
        }
        return write_raw(out, value == Py_True ? "\x01" : "\x00", 1);
    case K_INT:
        return integer_in(value, INT32_MIN, INT32_MAX, &n) ? write_long(out, n) : NOT_SURE;
    case K_LONG:
        return integer_in(value, INT64_MIN, INT64_MAX, &n) ? write_long(out, n) : NOT_SURE;
    case K_FLOAT: {
        if (!real_value(value, &d)) {
            return NOT_SURE;
        }
        char packed[4];
        if (PyFloat_Pack4(d, packed, 1) < 0) {
            PyErr_Clear(); /* beyond a 32-bit float: left to fastavro */
            return NOT_SURE;
        }
        return write_raw(out, packed, 4);
    }
    case K_DOUBLE: {
        if (!real_value(value, &d)) {
            return NOT_SURE;
        }
        char packed[8];
        if (PyFloat_Pack8(d, packed, 1) < 0) {
            PyErr_Clear();
            return NOT_SURE;
        }
        return write_raw(out, packed, 8);
    }
    case K_STRING:
        return PyUnicode_CheckExact(value) ? write_string(out, value) : NOT_SURE;
    case K_BYTES:
        if (!PyBytes_CheckExact(value)) {
            return NOT_SURE;
        }
        return write_sized(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    case K_ENUM: {
        PyObject *symbols = plan_part(plan, 1);
        if (symbols == NULL || !PyDict_Check(symbols)) {
            return FAILED;
        }
        if (!PyUnicode_CheckExact(value)) {
            return NOT_SURE;
        }
        PyObject *index = PyDict_GetItemWithError(symbols, value);
        if (index == NULL) {
            return PyErr_Occurred() ? FAILED : NOT_SURE;
        }
        return write_long(out, PyLong_AsLongLong(index));
    }
    case K_FIXED: {
        PyObject *size = plan_part(plan, 1);
        if (size == NULL) {
            return FAILED;
        }
        if (!PyBytes_CheckExact(value) || PyBytes_GET_SIZE(value) != PyLong_AsSsize_t(size)) {
            return NOT_SURE;
        }
        return write_raw(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    }
    case K_ARRAY:
        return encode_array(out, plan, value, depth);
    case K_MAP:
        return encode_map(out, plan, value, depth);
    case K_RECORD:
        return encode_record(out, plan, value, depth);
    case K_UNION:
        return encode_union(out, plan, value, depth);
    default:
        PyErr_Format(PyExc_TypeError, "unknown kind %ld in Avro plan", kind);
        return FAILED;
    }
}

static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(plan, value) takes 2 arguments");
        return NULL;
    }
    buffer out = {PyMem_Malloc(256), 0, 256};
    if (out.data == NULL) {
        return PyErr_NoMemory();
    }
    int written = encode_value(&out, args[0], args[1], 0);
    PyObject *result = NULL;
    if (written == WRITTEN) {
        result = PyBytes_FromStringAndSize(out.data, out.size);
    } else if (written == NOT_SURE) {
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(out.data);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(plan, value) -> the Avro binary fastavro's schemaless_writer would write for a value its "
     "validation accepts, or None (not sure: run fastavro)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_avro_encoder", "Compiled fast path of the SDK's Avro payloads.", -1, methods,
};

PyMODINIT_FUNC PyInit__avro_encoder(void) { return PyModule_Create(&module); }
