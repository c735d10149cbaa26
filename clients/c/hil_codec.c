/* hil_codec: protocol 2's messages on msgpack-c (see hil_codec.h). */
#define _POSIX_C_SOURCE 200809L
#include "hil_codec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One row per kind: its name and its fields' types, one letter each:
 * i int, n int or float, b bool, s str, l array, m map (str keys),
 * V state vector (1..HIL_MAX_STATES numbers), W input vector (1..HIL_MAX_INPUTS numbers),
 * U input vector whose entries must also be finite (a control's u). */
static const struct {
    const char *name;
    const char *types;
} SCHEMA[HIL_KIND_COUNT] = {
    [HIL_HELLO] = {"hello", "is"},
    [HIL_WELCOME] = {"welcome", "im"},
    [HIL_REFUSE] = {"refuse", "ss"},
    [HIL_STATE] = {"state", "iiVi"},
    [HIL_CONTROL] = {"control", "iiUiii"},
    [HIL_HEARTBEAT] = {"heartbeat", "i"},
    [HIL_FAULT] = {"fault", "ss"},
    [HIL_CLEAR] = {"clear", ""},
    [HIL_BYE] = {"bye", "s"},
    [HIL_SYNC] = {"sync", "i"},
    [HIL_SYNC_REPLY] = {"sync_reply", "ii"},
    [HIL_ESTOP] = {"estop", "s"},
    [HIL_OPERATOR_CLEAR] = {"operator_clear", "s"},
    [HIL_ACK] = {"ack", "ss"},
    [HIL_GAINS_GET] = {"gains_get", "is"},
    [HIL_GAINS_SET] = {"gains_set", "isll"},
    [HIL_GAINS_REPLY] = {"gains_reply", "ibslll"},
    [HIL_OBSERVE] = {"observe", "is"},
    [HIL_OBSERVING] = {"observing", "ism"},
    [HIL_OBSERVATION] = {"observation", "iinVWiiiisi"},
    [HIL_ERROR] = {"error", "ss"},
    [HIL_PUSH] = {"push", "snns"},
};

static const char *const REJECTION[] = {
    "decoded", "oversized", "malformed", "unknown_kind", "bad_arity", "bad_type", "bad_shape",
    "non_finite"};

/* msgpack-c's unpacker nests at most this deep (its stack); deeper is `malformed`. */
#define MAX_DEPTH 32

const char *hil_kind_name(hil_kind kind)
{
    return (unsigned)kind < HIL_KIND_COUNT ? SCHEMA[kind].name : "?";
}

const char *hil_rejection_name(hil_rejection rejection)
{
    return (unsigned)rejection <= HIL_NON_FINITE ? REJECTION[rejection] : "?";
}

int hil_decoder_init(hil_decoder *d)
{
    d->why[0] = '\0';
    return msgpack_zone_init(&d->zone, 4096) ? 0 : -1;
}

void hil_decoder_destroy(hil_decoder *d)
{
    msgpack_zone_destroy(&d->zone);
}

static hil_rejection reject(hil_decoder *d, hil_rejection r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(d->why, sizeof d->why, fmt, args);
    va_end(args);
    return r;
}

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as Python's. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp;
        unsigned long min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; min = 0x80; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; min = 0x800; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; min = 0x10000; cp = c & 0x07; }
        else return 0;
        if (n - i <= need) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

static hil_rejection check_limits(hil_decoder *d, const msgpack_object *o, int depth);

static hil_rejection check_map(hil_decoder *d, const msgpack_object *o, int depth)
{
    if (o->via.map.size > HIL_MAX_MAP_LEN)
        return reject(d, HIL_MALFORMED, "a map of %u > %d", o->via.map.size, HIL_MAX_MAP_LEN);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        hil_rejection r;
        if (kv->key.type != MSGPACK_OBJECT_STR)
            return reject(d, HIL_MALFORMED, "a map key that is not a str: keys are str");
        if ((r = check_limits(d, &kv->key, depth + 1)) != HIL_DECODED) return r;
        if ((r = check_limits(d, &kv->val, depth + 1)) != HIL_DECODED) return r;
    }
    return HIL_DECODED;
}

/* The unpacking limits over a value and all it holds (hil/link/messages.py). */
static hil_rejection check_limits(hil_decoder *d, const msgpack_object *o, int depth)
{
    if (depth > MAX_DEPTH)
        return reject(d, HIL_MALFORMED, "nested deeper than %d levels", MAX_DEPTH);
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        if (o->via.str.size > HIL_MAX_STR_BYTES)
            return reject(d, HIL_MALFORMED, "a str of %u bytes > %d", o->via.str.size,
                          HIL_MAX_STR_BYTES);
        if (!valid_utf8((const unsigned char *)o->via.str.ptr, o->via.str.size))
            return reject(d, HIL_MALFORMED, "a str that is not valid UTF-8");
        return HIL_DECODED;
    case MSGPACK_OBJECT_ARRAY:
        if (o->via.array.size > HIL_MAX_ARRAY_LEN)
            return reject(d, HIL_MALFORMED, "an array of %u > %d", o->via.array.size,
                          HIL_MAX_ARRAY_LEN);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            hil_rejection r = check_limits(d, &o->via.array.ptr[i], depth + 1);
            if (r != HIL_DECODED) return r;
        }
        return HIL_DECODED;
    case MSGPACK_OBJECT_MAP:
        return check_map(d, o, depth);
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT:
        return reject(d, HIL_MALFORMED, "msgpack %s is not accepted (text is str)",
                      o->type == MSGPACK_OBJECT_BIN ? "bin" : "ext");
    default:
        return HIL_DECODED;
    }
}

static int is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
           || o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

static int is_float(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32;
}

static int type_fits(char type, const msgpack_object *o)
{
    switch (type) {
    case 'i': return is_int(o);
    case 'n': return is_int(o) || is_float(o);
    case 'b': return o->type == MSGPACK_OBJECT_BOOLEAN;
    case 's': return o->type == MSGPACK_OBJECT_STR;
    case 'm': return o->type == MSGPACK_OBJECT_MAP;
    default: return o->type == MSGPACK_OBJECT_ARRAY; /* l, V, W, U */
    }
}

static const char *type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "NoneType";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "list";
    case MSGPACK_OBJECT_MAP: return "dict";
    default: return "bytes";
    }
}

/* A vector field: 1 .. limit numbers; for a control's u (`finite`), each finite. */
static hil_rejection check_vector(hil_decoder *d, const char *where, const msgpack_object *o,
                                  uint32_t limit, int finite)
{
    uint32_t n = o->via.array.size;
    if (n == 0 || n > limit)
        return reject(d, HIL_BAD_SHAPE, "%s has %u entries (1 .. %u)", where, n, limit);
    for (uint32_t i = 0; i < n; i++)
        if (!is_int(&o->via.array.ptr[i]) && !is_float(&o->via.array.ptr[i]))
            return reject(d, HIL_BAD_TYPE, "%s entry of type %s", where,
                          type_name(&o->via.array.ptr[i]));
    for (uint32_t i = 0; finite && i < n; i++) {
        double v = hil_num(&o->via.array.ptr[i]);
        if (!isfinite(v))
            return reject(d, HIL_NON_FINITE, "control.u[%u] is %s", i,
                          isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
    }
    return HIL_DECODED;
}

static int find_kind(const msgpack_object *o)
{
    for (int k = 0; k < HIL_KIND_COUNT; k++)
        if (hil_str_is(o, SCHEMA[k].name)) return k;
    return -1;
}

/* The table's checks on an unpacked array, in order: kind, arity, types, vectors. */
static hil_rejection check_fields(hil_decoder *d, const msgpack_object *root, hil_message *out)
{
    const msgpack_object *items = root->via.array.ptr;
    int kind = find_kind(&items[0]);
    if (kind < 0)
        return reject(d, HIL_UNKNOWN_KIND, "unknown kind '%.*s'",
                      (int)(items[0].via.str.size < 32 ? items[0].via.str.size : 32),
                      items[0].via.str.ptr);
    const char *types = SCHEMA[kind].types;
    int n = (int)strlen(types), got = (int)root->via.array.size - 1;
    if (got != n)
        return reject(d, HIL_BAD_ARITY, "%s takes %d fields, got %d", SCHEMA[kind].name, n, got);
    for (int i = 0; i < n; i++)
        if (!type_fits(types[i], &items[i + 1]))
            return reject(d, HIL_BAD_TYPE, "%s field %d has type %s", SCHEMA[kind].name, i + 1,
                          type_name(&items[i + 1]));
    for (int i = 0; i < n; i++) {
        char where[48];
        hil_rejection r = HIL_DECODED;
        snprintf(where, sizeof where, "%s field %d", SCHEMA[kind].name, i + 1);
        if (types[i] == 'V') r = check_vector(d, where, &items[i + 1], HIL_MAX_STATES, 0);
        if (types[i] == 'W') r = check_vector(d, where, &items[i + 1], HIL_MAX_INPUTS, 0);
        if (types[i] == 'U') r = check_vector(d, where, &items[i + 1], HIL_MAX_INPUTS, 1);
        if (r != HIL_DECODED) return r;
    }
    out->kind = (hil_kind)kind;
    out->n_fields = n;
    memcpy(out->field, items + 1, (size_t)n * sizeof *items);
    return HIL_DECODED;
}

hil_rejection hil_decode(hil_decoder *d, const char *data, size_t len, hil_message *out)
{
    msgpack_object root;
    size_t off = 0;
    hil_rejection r;
    if (len > HIL_MAX_MESSAGE_BYTES)
        return reject(d, HIL_OVERSIZED, "%zu bytes > %d", len, HIL_MAX_MESSAGE_BYTES);
    msgpack_zone_clear(&d->zone);
    switch (msgpack_unpack(data, len, &off, &d->zone, &root)) {
    case MSGPACK_UNPACK_SUCCESS: break;
    case MSGPACK_UNPACK_EXTRA_BYTES: return reject(d, HIL_MALFORMED, "not msgpack: trailing bytes");
    case MSGPACK_UNPACK_CONTINUE: return reject(d, HIL_MALFORMED, "not msgpack: truncated");
    default: return reject(d, HIL_MALFORMED, "not msgpack (or nested too deep)");
    }
    if ((r = check_limits(d, &root, 0)) != HIL_DECODED) return r;
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size == 0
        || root.via.array.ptr[0].type != MSGPACK_OBJECT_STR)
        return reject(d, HIL_MALFORMED, "not an array starting with a kind string");
    return check_fields(d, &root, out);
}

int64_t hil_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64 : o->via.i64;
}

double hil_num(const msgpack_object *o)
{
    if (is_float(o)) return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (double)o->via.u64;
    return (double)o->via.i64;
}

void hil_str(const msgpack_object *o, char *dst, size_t size)
{
    size_t n = 0;
    if (size == 0) return;
    if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
        n = o->via.str.size < size - 1 ? o->via.str.size : size - 1;
        while (n < o->via.str.size && n > 0 && (o->via.str.ptr[n] & 0xC0) == 0x80)
            n--; /* cut between two characters, never inside one: the text stays UTF-8 */
    }
    if (n) memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
}

int hil_str_is(const msgpack_object *o, const char *text)
{
    size_t n = strlen(text);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
           && memcmp(o->via.str.ptr, text, n) == 0;
}

const msgpack_object *hil_map_get(const msgpack_object *map, const char *key)
{
    if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (hil_str_is(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

/* ------------------------------------------------------------------ encoding */

static int buffer_write(void *data, const char *buf, size_t len)
{
    hil_buffer *b = data;
    if (b->overflow || len > sizeof b->data - b->len) {
        b->overflow = 1;
        return -1;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

static void start(hil_buffer *b, msgpack_packer *pk, const char *kind, size_t n_fields)
{
    b->len = 0;
    b->overflow = 0;
    msgpack_packer_init(pk, b, buffer_write);
    msgpack_pack_array(pk, n_fields + 1);
    msgpack_pack_str_with_body(pk, kind, strlen(kind));
}

static void pack_text(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

static void pack_doubles(msgpack_packer *pk, const double *v, int n)
{
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_double(pk, v[i]);
}

static int finish(const hil_buffer *b)
{
    return b->overflow ? -1 : 0;
}

int hil_encode_hello(hil_buffer *b, int64_t protocol, const char *client)
{
    msgpack_packer pk;
    start(b, &pk, "hello", 2);
    msgpack_pack_int64(&pk, protocol);
    pack_text(&pk, client);
    return finish(b);
}

int hil_encode_control(hil_buffer *b, int64_t seq, int64_t state_seq, const double *u,
                       int n_inputs, int64_t t_state_rx_ns, int64_t t_send_ns,
                       int64_t compute_ns)
{
    msgpack_packer pk;
    if (n_inputs < 1 || n_inputs > HIL_MAX_INPUTS) return -1;
    start(b, &pk, "control", 6);
    msgpack_pack_int64(&pk, seq);
    msgpack_pack_int64(&pk, state_seq);
    pack_doubles(&pk, u, n_inputs);
    msgpack_pack_int64(&pk, t_state_rx_ns);
    msgpack_pack_int64(&pk, t_send_ns);
    msgpack_pack_int64(&pk, compute_ns);
    return finish(b);
}

static int encode_one_int(hil_buffer *b, const char *kind, int64_t value)
{
    msgpack_packer pk;
    start(b, &pk, kind, 1);
    msgpack_pack_int64(&pk, value);
    return finish(b);
}

int hil_encode_sync(hil_buffer *b, int64_t t_ns) { return encode_one_int(b, "sync", t_ns); }

int hil_encode_heartbeat(hil_buffer *b, int64_t t_ns)
{
    return encode_one_int(b, "heartbeat", t_ns);
}

int hil_encode_bye(hil_buffer *b, const char *reason)
{
    msgpack_packer pk;
    start(b, &pk, "bye", 1);
    pack_text(&pk, reason);
    return finish(b);
}

int hil_encode_clear(hil_buffer *b)
{
    msgpack_packer pk;
    start(b, &pk, "clear", 0);
    return finish(b);
}

int hil_encode_gains_reply(hil_buffer *b, int64_t request_id, int ok, const char *detail,
                           const char *const *names, int n_names, const double *values,
                           int n_values, const double *old, int n_old)
{
    msgpack_packer pk;
    start(b, &pk, "gains_reply", 6);
    msgpack_pack_int64(&pk, request_id);
    if (ok) msgpack_pack_true(&pk);
    else msgpack_pack_false(&pk);
    pack_text(&pk, detail);
    msgpack_pack_array(&pk, (size_t)n_names);
    for (int i = 0; i < n_names; i++) pack_text(&pk, names[i]);
    pack_doubles(&pk, values, n_values);
    pack_doubles(&pk, old, n_old);
    return finish(b);
}
