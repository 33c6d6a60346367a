/* A compiled, one-sided fast path for the worker's envelope check (refinery/routing/guards.py).
 *
 * check(value, message_id, middle) -> bool
 *
 * True means: `value` is the canonical protobuf encoding of an Envelope whose metadata has exactly
 * `message_id` as message_id, the pre-encoded fields 2-8 `middle` (env, source, title, category,
 * version, schema_id, payload_format, as the serializer writes them for one header combination) and
 * then only well-formed fields 9-11 (produced_at_ms, producer, attributes) in field order, followed
 * by at most the payload field. upb would parse such bytes into exactly those values, so the Python
 * check would accept the record too.
 *
 * False means only "not shown here": the caller then runs the reference check (the upb parse and a
 * field-by-field comparison), which decides and names what is wrong. Anything unusual (fields out of
 * order or repeated, non-ASCII text, unknown fields, over-long varints) takes that path, so this code
 * never has to reproduce a parser's verdicts, only recognise the layout our producers write.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TAG_LEN(field) ((uint8_t)(((field) << 3) | 2)) /* wire type 2: length-delimited */
#define TAG_VARINT(field) ((uint8_t)((field) << 3))  /* wire type 0: varint */

/* Read a varint of at most `max_bytes` bytes; NULL when malformed, longer or past `end`. */
static const uint8_t *read_varint(const uint8_t *p, const uint8_t *end, int max_bytes, uint64_t *out) {
    uint64_t value = 0;
    for (int i = 0; i < max_bytes && p < end; i++) {
        uint8_t byte = *p++;
        value |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            if (i == 9 && byte > 1) {
                return NULL; /* a 10th byte may only carry the 64th bit */
            }
            *out = value;
            return p;
        }
    }
    return NULL;
}

/* Read a length prefix (at most 5 bytes) whose span fits before `end`; NULL otherwise. */
static const uint8_t *read_length(const uint8_t *p, const uint8_t *end, const uint8_t **span_end) {
    uint64_t length;
    p = read_varint(p, end, 5, &length);
    if (p == NULL || length > (uint64_t)(end - p)) {
        return NULL;
    }
    *span_end = p + length;
    return p;
}

static int all_ascii(const uint8_t *p, const uint8_t *end) {
    for (; p < end; p++) {
        if (*p & 0x80) {
            return 0;
        }
    }
    return 1;
}

/* An ASCII string field `field` at p, if there; NULL when malformed. */
static const uint8_t *skip_ascii_field(const uint8_t *p, const uint8_t *end, uint8_t tag) {
    const uint8_t *text_end;
    if (p >= end || *p != tag) {
        return p;
    }
    p = read_length(p + 1, end, &text_end);
    if (p == NULL || !all_ascii(p, text_end)) {
        return NULL;
    }
    return text_end;
}

/* One attributes map entry (key = 1, value = 2, both ASCII strings, each at most once, in order). */
static int attribute_entry(const uint8_t *p, const uint8_t *end) {
    p = skip_ascii_field(p, end, TAG_LEN(1));
    if (p == NULL) {
        return 0;
    }
    p = skip_ascii_field(p, end, TAG_LEN(2));
    return p == end;
}

/* Fields 9-11 of Metadata, each optional, in field order; must end exactly at `end`. */
static int metadata_tail(const uint8_t *p, const uint8_t *end) {
    uint64_t ignored;
    if (p < end && *p == TAG_VARINT(9)) {
        p = read_varint(p + 1, end, 10, &ignored);
        if (p == NULL) {
            return 0;
        }
    }
    p = skip_ascii_field(p, end, TAG_LEN(10));
    if (p == NULL) {
        return 0;
    }
    while (p < end && *p == TAG_LEN(11)) {
        const uint8_t *entry_end;
        p = read_length(p + 1, end, &entry_end);
        if (p == NULL || !attribute_entry(p, entry_end)) {
            return 0;
        }
        p = entry_end;
    }
    return p == end;
}

static int canonical_envelope(const uint8_t *p, const uint8_t *end, const uint8_t *id, Py_ssize_t id_len,
                              const uint8_t *middle, Py_ssize_t middle_len) {
    const uint8_t *md_end, *id_end, *payload_end;
    if (p >= end || *p != TAG_LEN(1)) {
        return 0;
    }
    p = read_length(p + 1, end, &md_end);
    if (p == NULL || p >= md_end || *p != TAG_LEN(1)) {
        return 0;
    }
    p = read_length(p + 1, md_end, &id_end);
    if (p == NULL || id_end - p != id_len || memcmp(p, id, (size_t)id_len) != 0 || !all_ascii(p, id_end)) {
        return 0;
    }
    p = id_end;
    if (md_end - p < middle_len || memcmp(p, middle, (size_t)middle_len) != 0) {
        return 0;
    }
    if (!metadata_tail(p + middle_len, md_end)) {
        return 0;
    }
    p = md_end;
    if (p == end) {
        return 1; /* an empty payload is not written */
    }
    if (*p != TAG_LEN(2)) {
        return 0;
    }
    p = read_length(p + 1, end, &payload_end);
    return p != NULL && payload_end == end;
}

static PyObject *check(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "check(value, message_id, middle) takes 3 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 3; i++) {
        if (!PyBytes_CheckExact(args[i])) {
            Py_RETURN_FALSE; /* None, or another type: the reference check decides */
        }
    }
    const uint8_t *value = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    int ok = canonical_envelope(value, value + PyBytes_GET_SIZE(args[0]),
                                (const uint8_t *)PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]),
                                (const uint8_t *)PyBytes_AS_STRING(args[2]), PyBytes_GET_SIZE(args[2]));
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"check", (PyCFunction)(void (*)(void))check, METH_FASTCALL,
     "check(value, message_id, middle) -> True when value is the canonical envelope with that message "
     "id and those pre-encoded metadata fields 2-8 (False: run the reference check)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_envelope_fast", "Compiled fast path of the worker's envelope check.", -1, methods,
};

PyMODINIT_FUNC PyInit__envelope_fast(void) { return PyModule_Create(&module); }
