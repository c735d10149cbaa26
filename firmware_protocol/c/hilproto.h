/*
 * hilproto.h - C99 reference codec of the hil-runtime rig protocol, version 2.
 *
 * The byte-level specification is ../PROTOCOL.md; ../vectors.json holds frames this codec
 * and the Python package must both reproduce. Portable C99: no dynamic allocation, no
 * floating-point arithmetic (float fields are copied bit for bit), byte order explicit so
 * it runs unchanged on little- and big-endian targets. Not thread-safe per object: use one
 * hp_decoder per receiving link, owned by one context (e.g. the UART receive handler).
 *
 *   Sending:   n = hp_encode(&msg, out, sizeof out);    write n bytes, n == 0 on misuse
 *   Receiving: for each byte b from the UART:
 *                  switch (hp_decoder_push(&dec, b, &msg)) { case HP_FRAME: ... }
 */
#ifndef HILPROTO_H
#define HILPROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HP_PROTOCOL_VERSION 2u
#define HP_HEADER_BYTES 5u      /* version u8, type u8, seq u16, flags u8 */
#define HP_CRC_BYTES 4u         /* CRC-32/ISO-HDLC of header + payload, little-endian */
#define HP_MAX_STATE_VALUES 8u
#define HP_MAX_INPUTS 8u        /* commands per CONTROL, input limits per CAPABILITIES */
#define HP_CAPABILITIES_HEAD_BYTES 27u /* CAPABILITIES before its input_count limit pairs */
#define HP_MAX_PAYLOAD_BYTES 91u /* CAPABILITIES with 8 inputs: 27 + 8 * 8 */
#define HP_MAX_BODY_BYTES (HP_HEADER_BYTES + HP_MAX_PAYLOAD_BYTES + HP_CRC_BYTES) /* 100 */
#define HP_MAX_ENCODED_BYTES (HP_MAX_BODY_BYTES + 1u) /* 101: COBS adds 1 byte below 254 */
#define HP_MAX_FRAME_BYTES (HP_MAX_ENCODED_BYTES + 1u) /* 102 with the 0x00 delimiter */

/* Message types: header byte 1. */
enum {
    HP_HELLO = 0x01,
    HP_CAPABILITIES = 0x02,
    HP_STATE = 0x10,
    HP_STATE_RAW = 0x11,
    HP_CONTROL = 0x20,
    HP_HEARTBEAT = 0x30,
    HP_FAULT = 0x40,
    HP_ESTOP = 0x41,
    HP_CLEAR = 0x42
};

/* Header flags (byte 4): the sender's status. The host sends 0. */
enum {
    HP_FLAG_MOTOR_ENABLED = 0x01,
    HP_FLAG_FAULT_LATCHED = 0x02,
    HP_FLAG_ESTOP_LATCHED = 0x04
};

/* DECLARED: the host's plant model names the STATE values (PROTOCOL.md section 6). */
enum { HP_LAYOUT_DECLARED = 0, HP_LAYOUT_CART_POLE = 1, HP_LAYOUT_DOUBLE_INVERTED_PENDULUM = 2 };
enum { HP_ENCODING_FLOAT32_SI = 0, HP_ENCODING_ENCODER_COUNTS = 1 };
/* PHYSICAL: each input in its physical unit (version 1 called it FORCE_N). */
enum { HP_UNIT_PHYSICAL = 0, HP_UNIT_FORCE_N = 0, HP_UNIT_DUTY = 1 };

/* FAULT codes; 0x80-0xFF are free for rig-specific faults. */
enum {
    HP_FAULT_POWER_ON = 1,
    HP_FAULT_WATCHDOG = 2,
    HP_FAULT_ESTOP = 3,
    HP_FAULT_LIMIT_SWITCH = 4,
    HP_FAULT_OVERCURRENT = 5,
    HP_FAULT_ENCODER = 6,
    HP_FAULT_SUPPLY = 7,
    HP_FAULT_CONTROL_COUNT = 8 /* detail: the number of commands the CONTROL carried */
};

typedef struct {
    uint32_t nonce; /* nonzero; echoed by the CAPABILITIES that answer this HELLO */
} hp_hello;

typedef struct {
    uint32_t rig_id;
    uint8_t firmware_version[3]; /* major, minor, patch */
    uint8_t state_layout;        /* HP_LAYOUT_* */
    uint8_t state_encoding;      /* HP_ENCODING_* */
    uint8_t control_unit;        /* HP_UNIT_* */
    uint16_t state_rate_hz;
    uint16_t watchdog_ms;
    uint32_t angle_counts_per_rev;
    uint32_t cart_counts_per_m;
    uint32_t nonce;              /* the HELLO's nonce this answers; 0 if sent unasked */
    uint8_t input_count;         /* 1..HP_MAX_INPUTS: commands per CONTROL */
    float input_low[HP_MAX_INPUTS];  /* per input, low < high, finite */
    float input_high[HP_MAX_INPUTS];
} hp_capabilities;

typedef struct {
    uint32_t timestamp_us;
    uint8_t count; /* 1..HP_MAX_STATE_VALUES */
    float values[HP_MAX_STATE_VALUES];
} hp_state;

typedef struct {
    uint32_t timestamp_us;
    uint8_t count; /* 1..HP_MAX_STATE_VALUES */
    int32_t counts[HP_MAX_STATE_VALUES];
} hp_state_raw;

typedef struct {
    uint16_t state_seq;
    uint8_t count; /* 1..HP_MAX_INPUTS, one command per input */
    float commands[HP_MAX_INPUTS];
} hp_control;

typedef struct {
    uint32_t timestamp_us;
} hp_heartbeat;

typedef struct {
    uint8_t code;
    uint16_t detail;
} hp_fault;

/* One frame. ESTOP and CLEAR have no payload. */
typedef struct {
    uint8_t version; /* set by the decoder (HP_ERR_VERSION: the peer's); hp_encode ignores it */
    uint8_t type; /* HP_HELLO .. HP_CLEAR */
    uint16_t seq;
    uint8_t flags;
    union {
        hp_hello hello;
        hp_capabilities capabilities;
        hp_state state;
        hp_state_raw state_raw;
        hp_control control;
        hp_heartbeat heartbeat;
        hp_fault fault;
    } body;
} hp_message;

/* What hp_decoder_push made of a byte. */
typedef enum {
    HP_NONE = 0,        /* nothing complete yet */
    HP_FRAME,           /* *msg holds a valid frame, in sequence */
    HP_FRAME_GAP,       /* *msg is valid; frames before it were lost (see last_expected) */
    HP_FRAME_RESET,     /* *msg is valid; its seq went backwards, tracking re-anchored */
    HP_DUPLICATE,       /* *msg repeats the previous seq and should be dropped */
    HP_ERR_TOO_LONG,    /* > HP_MAX_ENCODED_BYTES without delimiter; skipping to next 0x00 */
    HP_ERR_COBS,        /* a COBS block runs past the delimiter */
    HP_ERR_LENGTH,      /* too short, wrong payload length for the type, or count 0 / > 8 */
    HP_ERR_CRC,         /* CRC mismatch */
    HP_ERR_VERSION,     /* CRC valid, other protocol version: msg->version, type, seq set */
    HP_ERR_TYPE,        /* CRC valid, unknown type */
    HP_ERR_VALUE        /* out of its set: enum, NaN, infinity, nonce 0, low >= high */
} hp_result;

typedef struct {
    uint32_t bytes_received;
    uint32_t frames_ok;
    uint32_t too_long_errors;
    uint32_t cobs_errors;
    uint32_t length_errors;
    uint32_t crc_errors;
    uint32_t version_errors;
    uint32_t type_errors;
    uint32_t value_errors;
    uint32_t sequence_gaps;
    uint32_t frames_missed;
    uint32_t duplicates;
    uint32_t sequence_resets;
} hp_stats;

typedef struct {
    uint8_t *buf;          /* caller's buffer for the decoded body */
    size_t len;            /* decoded bytes in buf */
    size_t encoded_len;    /* wire bytes since the last delimiter */
    uint8_t block_code;    /* code byte of the current COBS block; 0 before the first */
    uint8_t block_left;    /* data bytes still due in the current block */
    uint8_t skipping;      /* frame too long: dropping bytes up to the next delimiter */
    uint8_t anchored;      /* a frame has set next_seq */
    uint16_t next_seq;     /* the seq the next frame should carry */
    uint16_t last_expected; /* the seq expected for the frame just returned */
    hp_stats stats;
} hp_decoder;

/* CRC-32/ISO-HDLC: poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF, check 0xCBF43926. */
uint32_t hp_crc32(const uint8_t *data, size_t len);

/*
 * Encode msg into out as a whole wire frame, delimiter included. Returns the number of
 * bytes written, or 0 if out_size is too small or msg cannot be encoded (unknown type,
 * count outside 1..8, enum out of range, non-finite float, HELLO nonce 0, a limit with
 * low >= high).
 */
size_t hp_encode(const hp_message *msg, uint8_t *out, size_t out_size);

/*
 * Prepare a decoder using the caller's buffer of buf_size >= HP_MAX_BODY_BYTES bytes.
 * Returns 0, or -1 if the buffer is too small.
 */
int hp_decoder_init(hp_decoder *dec, uint8_t *buf, size_t buf_size);

/*
 * Feed one received byte. On HP_FRAME, HP_FRAME_GAP, HP_FRAME_RESET and HP_DUPLICATE,
 * *msg holds the frame. An ESTOP is returned as HP_FRAME even if it repeats the previous
 * seq (it is still counted as a duplicate): act on every ESTOP.
 */
hp_result hp_decoder_push(hp_decoder *dec, uint8_t byte, hp_message *msg);

#ifdef __cplusplus
}
#endif

#endif /* HILPROTO_H */
