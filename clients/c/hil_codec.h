/* hil_codec: the link protocol's messages (protocol 2) on msgpack-c, sans I/O.
 *
 * Every message is a msgpack array whose first element is its kind (a str); the fields that
 * follow are positional and exactly typed by one schema table (hil_codec.c), the same table
 * as hil/link/messages.py. `hil_decode` checks the size, the unpacking limits, the kind, the
 * arity and every field's type before anything else looks at a message, and names the rule
 * broken (the same rejection kinds as the Python codec: oversized, malformed, unknown_kind,
 * bad_arity, bad_type, bad_shape, non_finite). The encoders write into a caller's fixed
 * buffer: nothing is allocated on the hot path. */
#ifndef HIL_CODEC_H
#define HIL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define HIL_PROTOCOL_VERSION 2
#define HIL_MAX_MESSAGE_BYTES (16 * 1024)
#define HIL_MAX_STATES 32
#define HIL_MAX_INPUTS 8
#define HIL_MAX_STR_BYTES 8192
#define HIL_MAX_ARRAY_LEN 4096
#define HIL_MAX_MAP_LEN 1024
#define HIL_MAX_FIELDS 11

/* State flags (bit field of `state`). */
#define HIL_FLAG_SAFE 1u
#define HIL_FLAG_WATCHDOG 2u
#define HIL_FLAG_SAFETY 4u
#define HIL_FLAG_FINAL 8u

typedef enum {
    HIL_HELLO, HIL_WELCOME, HIL_REFUSE, HIL_STATE, HIL_CONTROL, HIL_HEARTBEAT, HIL_FAULT,
    HIL_CLEAR, HIL_BYE, HIL_SYNC, HIL_SYNC_REPLY, HIL_ESTOP, HIL_OPERATOR_CLEAR, HIL_ACK,
    HIL_GAINS_GET, HIL_GAINS_SET, HIL_GAINS_REPLY, HIL_OBSERVE, HIL_OBSERVING,
    HIL_OBSERVATION, HIL_ERROR, HIL_PUSH, HIL_KIND_COUNT
} hil_kind;

/* Why a message was rejected; HIL_DECODED (0) when it was not. */
typedef enum {
    HIL_DECODED = 0, HIL_OVERSIZED, HIL_MALFORMED, HIL_UNKNOWN_KIND, HIL_BAD_ARITY,
    HIL_BAD_TYPE, HIL_BAD_SHAPE, HIL_NON_FINITE
} hil_rejection;

/* A decoded, validated message: its kind and its fields (views into the decoder's zone,
 * valid until the decoder's next decode). */
typedef struct {
    hil_kind kind;
    int n_fields;
    msgpack_object field[HIL_MAX_FIELDS];
} hil_message;

typedef struct {
    msgpack_zone zone;
    char why[160]; /* the last rejection in words: "control.u[0] is nan" */
} hil_decoder;

/* A fixed output buffer for the encoders; `overflow` is set when a message did not fit. */
typedef struct {
    char data[HIL_MAX_MESSAGE_BYTES];
    size_t len;
    int overflow;
} hil_buffer;

const char *hil_kind_name(hil_kind kind);
const char *hil_rejection_name(hil_rejection rejection);
int hil_decoder_init(hil_decoder *d);
void hil_decoder_destroy(hil_decoder *d);
hil_rejection hil_decode(hil_decoder *d, const char *data, size_t len, hil_message *out);

/* Field readers (the field's type is already checked by hil_decode). An int field takes
 * -2^63 .. 2^64-1 (docs/protocol.md, section 3): hil_int wraps one above INT64_MAX. */
int64_t hil_int(const msgpack_object *o);
double hil_num(const msgpack_object *o);
/* A str field into `dst` (NUL-terminated, cut to at most `size` - 1 bytes between two UTF-8
 * characters). */
void hil_str(const msgpack_object *o, char *dst, size_t size);
int hil_str_is(const msgpack_object *o, const char *text);
/* The value of `key` in a map object, or NULL. */
const msgpack_object *hil_map_get(const msgpack_object *map, const char *key);

/* Encoders: 0 on success, -1 if the message does not fit (or a vector is too long). */
int hil_encode_hello(hil_buffer *b, int64_t protocol, const char *client);
int hil_encode_control(hil_buffer *b, int64_t seq, int64_t state_seq, const double *u,
                       int n_inputs, int64_t t_state_rx_ns, int64_t t_send_ns,
                       int64_t compute_ns);
int hil_encode_sync(hil_buffer *b, int64_t t_ns);
int hil_encode_heartbeat(hil_buffer *b, int64_t t_ns);
int hil_encode_bye(hil_buffer *b, const char *reason);
int hil_encode_clear(hil_buffer *b);
int hil_encode_gains_reply(hil_buffer *b, int64_t request_id, int ok, const char *detail,
                           const char *const *names, int n_names, const double *values,
                           int n_values, const double *old, int n_old);

#endif
