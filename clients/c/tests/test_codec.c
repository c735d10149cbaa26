/* test_codec: libhil's codec and schedule driven line by line from stdin, for
 * tests/clients/test_c_client.py, which feeds it the golden vectors and checks every answer.
 *
 *   decode NAME HEX      -> NAME<TAB>ok<TAB>[kind, field, ...] as JSON<TAB>HEX re-encoded (or -)
 *                           NAME<TAB>reject<TAB>CODE<TAB>why
 *   rate T0 PERIOD NOW.. -> rate<TAB>deadline after each advance/skipped ... ;total skipped
 *   sleep EARLY_NS       -> sleep<TAB>how long after (deadline - EARLY_NS) hil_rate_sleep
 *                           woke, for a deadline 2 ms ahead, in ns (never negative)
 *   shm NAME NS NI SESSION SEQ STATE_SEQ RX SEND COMPUTE U.. HEX
 *                        -> NAME<TAB>the state read from the segment image HEX, as JSON<TAB>
 *                           the image after that control is written into it with its control
 *                           slot zeroed first, as HEX
 *
 * A message is re-encoded with libhil's encoders when it is a kind a controller sends and
 * its numbers are of the types libhil sends (u as floats): the bytes must be the vector's. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hil_internal.h"

#define MAX_LINE (4 * HIL_MAX_MESSAGE_BYTES + 256)

static void print_json(const msgpack_object *o);

static void print_str(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void print_float(double v)
{
    char text[40];
    if (isnan(v)) { fputs("NaN", stdout); return; }
    if (isinf(v)) { fputs(v > 0 ? "Infinity" : "-Infinity", stdout); return; }
    snprintf(text, sizeof text, "%.17g", v);
    fputs(text, stdout);
    if (!strpbrk(text, ".e")) fputs(".0", stdout); /* a float stays a float in JSON */
}

static void print_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", stdout); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", stdout); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: printf("%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: printf("%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: print_float(o->via.f64); break;
    case MSGPACK_OBJECT_STR: print_str(o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) putchar(',');
            print_json(&o->via.array.ptr[i]);
        }
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) putchar(',');
            print_json(&o->via.map.ptr[i].key);
            putchar(':');
            print_json(&o->via.map.ptr[i].val);
        }
        putchar('}');
        break;
    default: fputs("\"?\"", stdout);
    }
}

static int from_hex(const char *hex, char *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1])
            || sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (char)v;
    }
    *len = n / 2;
    return 0;
}

/* The numbers of an array, if every one is a float (what libhil sends); else -1. */
static int floats_of(const msgpack_object *list, double *out, int cap)
{
    if ((int)list->via.array.size > cap) return -1;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *v = &list->via.array.ptr[i];
        if (v->type != MSGPACK_OBJECT_FLOAT64) return -1;
        out[i] = v->via.f64;
    }
    return (int)list->via.array.size;
}

/* A str field as a C string (NULL if it holds a NUL byte: libhil's encoders take C strings). */
static const char *c_str(const msgpack_object *o, char *buf, size_t cap)
{
    if (o->via.str.size >= cap || memchr(o->via.str.ptr, 0, o->via.str.size)) return NULL;
    hil_str(o, buf, cap);
    return buf;
}

static int reencode_gains_reply(hil_buffer *b, const hil_message *m)
{
    static char text[HIL_MAX_GAINS + 1][HIL_MAX_STR_BYTES + 1];
    const char *names[HIL_MAX_GAINS];
    double values[HIL_MAX_GAINS], old[HIL_MAX_GAINS];
    const msgpack_object *list = &m->field[3];
    int n_values = floats_of(&m->field[4], values, HIL_MAX_GAINS);
    int n_old = floats_of(&m->field[5], old, HIL_MAX_GAINS);
    if (n_values < 0 || n_old < 0 || list->via.array.size > HIL_MAX_GAINS
        || !c_str(&m->field[2], text[HIL_MAX_GAINS], sizeof text[0]))
        return -1;
    for (uint32_t i = 0; i < list->via.array.size; i++)
        if (list->via.array.ptr[i].type != MSGPACK_OBJECT_STR
            || !(names[i] = c_str(&list->via.array.ptr[i], text[i], sizeof text[0])))
            return -1;
    return hil_encode_gains_reply(b, hil_int(&m->field[0]), m->field[1].via.boolean,
                                  text[HIL_MAX_GAINS], names, (int)list->via.array.size,
                                  values, n_values, old, n_old);
}

/* Re-encode `m` with libhil's encoders; -1 when libhil does not send it or not so. */
static int reencode(hil_buffer *b, const hil_message *m)
{
    static char text[HIL_MAX_STR_BYTES + 1];
    const msgpack_object *f = m->field;
    double u[HIL_MAX_INPUTS];
    int n;
    switch (m->kind) {
    case HIL_HELLO:
        return c_str(&f[1], text, sizeof text) ? hil_encode_hello(b, hil_int(&f[0]), text) : -1;
    case HIL_CONTROL:
        if ((n = floats_of(&f[2], u, HIL_MAX_INPUTS)) < 0) return -1;
        return hil_encode_control(b, hil_int(&f[0]), hil_int(&f[1]), u, n, hil_int(&f[3]),
                                  hil_int(&f[4]), hil_int(&f[5]));
    case HIL_SYNC: return hil_encode_sync(b, hil_int(&f[0]));
    case HIL_HEARTBEAT: return hil_encode_heartbeat(b, hil_int(&f[0]));
    case HIL_CLEAR: return hil_encode_clear(b);
    case HIL_BYE: return c_str(&f[0], text, sizeof text) ? hil_encode_bye(b, text) : -1;
    case HIL_GAINS_REPLY: return reencode_gains_reply(b, m);
    default: return -1;
    }
}

static void decode_line(hil_decoder *d, const char *name, const char *hex)
{
    static char data[2 * HIL_MAX_MESSAGE_BYTES];
    static hil_buffer out;
    size_t len;
    hil_message m;
    hil_rejection r;
    msgpack_object kind;
    if (from_hex(hex, data, sizeof data, &len) != 0) {
        printf("%s\tbad_hex\t-\t-\n", name);
        return;
    }
    if ((r = hil_decode(d, data, len, &m)) != HIL_DECODED) {
        printf("%s\treject\t%s\t%s\n", name, hil_rejection_name(r), d->why);
        return;
    }
    printf("%s\tok\t[", name);
    kind.type = MSGPACK_OBJECT_STR;
    kind.via.str.ptr = hil_kind_name(m.kind);
    kind.via.str.size = (uint32_t)strlen(kind.via.str.ptr);
    print_json(&kind);
    for (int i = 0; i < m.n_fields; i++) {
        putchar(',');
        print_json(&m.field[i]);
    }
    printf("]\t");
    if (reencode(&out, &m) == 0)
        for (size_t i = 0; i < out.len; i++) printf("%02x", (unsigned char)out.data[i]);
    else
        putchar('-');
    putchar('\n');
}

/* rate T0 PERIOD NOW...: the deadline after each advance at NOW, and what it skipped. */
static void rate_line(char *args)
{
    hil_rate r;
    char *word = strtok(args, " ");
    long long t0 = word ? atoll(word) : 0, period = (word = strtok(NULL, " ")) ? atoll(word) : 0;
    hil_rate_init(&r, t0, period);
    printf("rate");
    while ((word = strtok(NULL, " ")) != NULL) {
        long long skipped = (long long)hil_rate_advance(&r, atoll(word));
        printf("\t%lld/%lld", (long long)hil_rate_deadline(&r), skipped);
    }
    printf("\t;%lld\n", (long long)r.skipped);
}

static void print_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

/* A segment image (docs/protocol-vectors.json's `shm`): its state read by libhil's seqlock
 * reader, then its control slot cleared and the image's control written by libhil's writer. */
static void shm_line(char *args)
{
    static hil_client c;
    static uint64_t image[64]; /* 512 bytes, 8-aligned as a mapping is */
    long long f[8];
    double u[HIL_MAX_INPUTS], x[HIL_MAX_STATES];
    int64_t seq, t_ns, flags;
    size_t len = 0;
    char *name = strtok(args, " "), *word = NULL;
    for (int i = 0; i < 8 && (word = strtok(NULL, " ")); i++) f[i] = atoll(word);
    c.desc.n_states = (int)f[0];
    c.desc.n_inputs = (int)f[1];
    for (int i = 0; i < c.desc.n_inputs && (word = strtok(NULL, " ")); i++) u[i] = atof(word);
    if (!name || !word || !(word = strtok(NULL, " "))
        || from_hex(word, (char *)image, sizeof image, &len) != 0 || len != sizeof image) {
        printf("?\tbad shm line\n");
        return;
    }
    memset(&c.shm, 0, sizeof c.shm);
    c.shm.base = (unsigned char *)image;
    c.shm.session = f[2];
    printf("%s\t", name);
    if (hil_shm_take(&c, &seq, &t_ns, &flags, x)) {
        printf("{\"seq\": %lld, \"t_ns\": %lld, \"flags\": %lld, \"state\": [", (long long)seq,
               (long long)t_ns, (long long)flags);
        for (int i = 0; i < c.desc.n_states; i++) {
            fputs(i ? ", " : "", stdout);
            print_float(x[i]); /* 0.0 stays a float in JSON */
        }
        printf("]}\t");
    } else {
        printf("none\t");
    }
    memset((unsigned char *)image + 384, 0, 128);
    if (hil_shm_write_control(&c, f[3], f[4], u, f[5], f[6], f[7]) == HIL_OK)
        print_hex((const unsigned char *)image, sizeof image);
    else
        printf("refused: %s", c.error);
    putchar('\n');
}

static void sleep_line(const char *args)
{
    hil_rate r;
    long long early = atoll(args);
    hil_rate_init(&r, hil_now_ns() + 2000000, 1000000);
    hil_rate_sleep(&r, early);
    printf("sleep\t%lld\n", (long long)(hil_now_ns() - (hil_rate_deadline(&r) - early)));
}

int main(void)
{
    static char line[MAX_LINE];
    hil_decoder d;
    if (hil_decoder_init(&d) != 0) return 1;
    while (fgets(line, sizeof line, stdin)) {
        char *name, *hex;
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "rate ", 5) == 0) {
            rate_line(line + 5);
        } else if (strncmp(line, "sleep ", 6) == 0) {
            sleep_line(line + 6);
        } else if (strncmp(line, "shm ", 4) == 0) {
            shm_line(line + 4);
        } else if (strncmp(line, "decode ", 7) == 0 && (name = strtok(line + 7, " "))) {
            hex = strtok(NULL, " ");
            decode_line(&d, name, hex ? hex : "");
        } else if (line[0]) {
            printf("?\tunknown line\n");
        }
        fflush(stdout);
    }
    hil_decoder_destroy(&d);
    return 0;
}
