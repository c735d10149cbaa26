/*
 * hilproto.c - C99 reference codec of the hil-runtime rig protocol, version 2.
 * See hilproto.h for the interface and ../PROTOCOL.md for the specification.
 */
#include "hilproto.h"

#include <string.h>

/* Float fields are copied as IEEE-754 binary32 bit patterns: float must be 4 bytes. */
typedef char hp_float_must_be_32_bits[(sizeof(float) == 4u) ? 1 : -1];

#define HP_INVALID (-1)

/* CRC-32/ISO-HDLC, reflected poly 0xEDB88320, four bits at a time (64-byte table). */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
    0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu
};

uint32_t hp_crc32(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return crc ^ 0xFFFFFFFFu;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Two's complement int32 from its bit pattern, without implementation-defined casts. */
static int32_t int32_from_bits(uint32_t u)
{
    if (u <= 0x7FFFFFFFu) {
        return (int32_t)u;
    }
    return -(int32_t)(~u) - 1;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Finite unless the exponent is all ones (infinity or NaN); integer arithmetic only. */
static int bits_finite(uint32_t u)
{
    return (u & 0x7F800000u) != 0x7F800000u;
}

/* A total order on finite binary32 bit patterns, as integers: -0 and +0 are equal. */
static uint32_t order_key(uint32_t u)
{
    if (u == 0x80000000u) {
        u = 0;
    }
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The enums in their sets; 1..8 limits, each finite with low < high. */
static int capabilities_valid(const hp_capabilities *c)
{
    unsigned i;
    if (c->state_layout > HP_LAYOUT_DOUBLE_INVERTED_PENDULUM ||
        c->state_encoding > HP_ENCODING_ENCODER_COUNTS || c->control_unit > HP_UNIT_DUTY) {
        return 0;
    }
    for (i = 0; i < c->input_count; i++) {
        uint32_t low = float_bits(c->input_low[i]);
        uint32_t high = float_bits(c->input_high[i]);
        if (!bits_finite(low) || !bits_finite(high) || order_key(low) >= order_key(high)) {
            return 0;
        }
    }
    return 1;
}

static int count_valid(uint8_t count)
{
    return count >= 1u && count <= HP_MAX_INPUTS;
}

static int pack_capabilities(const hp_capabilities *c, uint8_t *p)
{
    unsigned i;
    if (!count_valid(c->input_count) || !capabilities_valid(c)) {
        return HP_INVALID;
    }
    put_u32(p, c->rig_id);
    p[4] = c->firmware_version[0];
    p[5] = c->firmware_version[1];
    p[6] = c->firmware_version[2];
    p[7] = c->state_layout;
    p[8] = c->state_encoding;
    p[9] = c->control_unit;
    put_u16(p + 10, c->state_rate_hz);
    put_u16(p + 12, c->watchdog_ms);
    put_u32(p + 14, c->angle_counts_per_rev);
    put_u32(p + 18, c->cart_counts_per_m);
    put_u32(p + 22, c->nonce);
    p[26] = c->input_count;
    for (i = 0; i < c->input_count; i++) {
        put_u32(p + HP_CAPABILITIES_HEAD_BYTES + 8 * i, float_bits(c->input_low[i]));
        put_u32(p + HP_CAPABILITIES_HEAD_BYTES + 8 * i + 4, float_bits(c->input_high[i]));
    }
    return (int)HP_CAPABILITIES_HEAD_BYTES + 8 * (int)c->input_count;
}

static int pack_control(const hp_control *c, uint8_t *p)
{
    unsigned i;
    if (!count_valid(c->count)) {
        return HP_INVALID;
    }
    put_u16(p, c->state_seq);
    p[2] = c->count;
    for (i = 0; i < c->count; i++) {
        uint32_t bits = float_bits(c->commands[i]);
        if (!bits_finite(bits)) {
            return HP_INVALID;
        }
        put_u32(p + 3 + 4 * i, bits);
    }
    return 3 + 4 * (int)c->count;
}

/* Payload of m into p; its length, or HP_INVALID if m cannot be encoded. */
static int pack_payload(const hp_message *m, uint8_t *p)
{
    unsigned i;
    switch (m->type) {
    case HP_ESTOP:
    case HP_CLEAR:
        return 0;
    case HP_HELLO:
        if (m->body.hello.nonce == 0u) {
            return HP_INVALID;
        }
        put_u32(p, m->body.hello.nonce);
        return 4;
    case HP_CAPABILITIES:
        return pack_capabilities(&m->body.capabilities, p);
    case HP_STATE: {
        const hp_state *s = &m->body.state;
        if (s->count < 1u || s->count > HP_MAX_STATE_VALUES) {
            return HP_INVALID;
        }
        put_u32(p, s->timestamp_us);
        p[4] = s->count;
        for (i = 0; i < s->count; i++) {
            uint32_t bits = float_bits(s->values[i]);
            if (!bits_finite(bits)) {
                return HP_INVALID;
            }
            put_u32(p + 5 + 4 * i, bits);
        }
        return 5 + 4 * (int)s->count;
    }
    case HP_STATE_RAW: {
        const hp_state_raw *s = &m->body.state_raw;
        if (s->count < 1u || s->count > HP_MAX_STATE_VALUES) {
            return HP_INVALID;
        }
        put_u32(p, s->timestamp_us);
        p[4] = s->count;
        for (i = 0; i < s->count; i++) {
            put_u32(p + 5 + 4 * i, (uint32_t)s->counts[i]);
        }
        return 5 + 4 * (int)s->count;
    }
    case HP_CONTROL:
        return pack_control(&m->body.control, p);
    case HP_HEARTBEAT:
        put_u32(p, m->body.heartbeat.timestamp_us);
        return 4;
    case HP_FAULT:
        p[0] = m->body.fault.code;
        put_u16(p + 1, m->body.fault.detail);
        return 3;
    default:
        return HP_INVALID;
    }
}

/* COBS-encode len bytes of in to out (len + 1 + len / 254 bytes, no 0x00); returns size. */
static size_t cobs_encode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t code_at = 0;
    size_t o = 1;
    size_t i;
    uint8_t code = 1;
    for (i = 0; i < len; i++) {
        if (in[i] == 0u) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            code++;
            if (code == 0xFFu && i + 1u < len) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

size_t hp_encode(const hp_message *msg, uint8_t *out, size_t out_size)
{
    uint8_t body[HP_MAX_BODY_BYTES];
    int payload;
    size_t n;
    size_t wire;
    if (msg == NULL || out == NULL) {
        return 0;
    }
    payload = pack_payload(msg, body + HP_HEADER_BYTES);
    if (payload == HP_INVALID) {
        return 0;
    }
    body[0] = (uint8_t)HP_PROTOCOL_VERSION;
    body[1] = msg->type;
    put_u16(body + 2, msg->seq);
    body[4] = msg->flags;
    n = HP_HEADER_BYTES + (size_t)payload;
    put_u32(body + n, hp_crc32(body, n));
    n += HP_CRC_BYTES;
    if (out_size < n + 2u) { /* bodies are < 254 bytes: one COBS byte, one delimiter */
        return 0;
    }
    wire = cobs_encode(body, n, out);
    out[wire] = 0;
    return wire + 1u;
}

int hp_decoder_init(hp_decoder *dec, uint8_t *buf, size_t buf_size)
{
    if (dec == NULL || buf == NULL || buf_size < HP_MAX_BODY_BYTES) {
        return -1;
    }
    memset(dec, 0, sizeof *dec);
    dec->buf = buf;
    return 0;
}

static hp_result expect_length(size_t len, size_t want)
{
    return len == want ? HP_FRAME : HP_ERR_LENGTH;
}

static hp_result unpack_capabilities(hp_capabilities *c, const uint8_t *p, size_t len)
{
    unsigned i;
    if (len < HP_CAPABILITIES_HEAD_BYTES || !count_valid(p[26]) ||
        len != HP_CAPABILITIES_HEAD_BYTES + 8u * p[26]) {
        return HP_ERR_LENGTH;
    }
    c->rig_id = get_u32(p);
    c->firmware_version[0] = p[4];
    c->firmware_version[1] = p[5];
    c->firmware_version[2] = p[6];
    c->state_layout = p[7];
    c->state_encoding = p[8];
    c->control_unit = p[9];
    c->state_rate_hz = get_u16(p + 10);
    c->watchdog_ms = get_u16(p + 12);
    c->angle_counts_per_rev = get_u32(p + 14);
    c->cart_counts_per_m = get_u32(p + 18);
    c->nonce = get_u32(p + 22);
    c->input_count = p[26];
    for (i = 0; i < c->input_count; i++) {
        c->input_low[i] = float_from_bits(get_u32(p + HP_CAPABILITIES_HEAD_BYTES + 8 * i));
        c->input_high[i] = float_from_bits(get_u32(p + HP_CAPABILITIES_HEAD_BYTES + 8 * i + 4));
    }
    return capabilities_valid(c) ? HP_FRAME : HP_ERR_VALUE;
}

static hp_result unpack_control(hp_control *c, const uint8_t *p, size_t len)
{
    unsigned i;
    int finite = 1;
    if (len < 3u || !count_valid(p[2]) || len != 3u + 4u * p[2]) {
        return HP_ERR_LENGTH;
    }
    c->state_seq = get_u16(p);
    c->count = p[2];
    for (i = 0; i < c->count; i++) {
        uint32_t bits = get_u32(p + 3 + 4 * i);
        finite = finite && bits_finite(bits);
        c->commands[i] = float_from_bits(bits);
    }
    return finite ? HP_FRAME : HP_ERR_VALUE;
}

/* Check and copy a payload: HP_FRAME if m now holds it, or the reason it is rejected. */
static hp_result unpack_payload(hp_message *m, const uint8_t *p, size_t len)
{
    unsigned i;
    switch (m->type) {
    case HP_ESTOP:
    case HP_CLEAR:
        return expect_length(len, 0);
    case HP_HELLO:
        if (len != 4u) {
            return HP_ERR_LENGTH;
        }
        m->body.hello.nonce = get_u32(p);
        return m->body.hello.nonce != 0u ? HP_FRAME : HP_ERR_VALUE;
    case HP_CAPABILITIES:
        return unpack_capabilities(&m->body.capabilities, p, len);
    case HP_STATE:
    case HP_STATE_RAW: {
        uint8_t count;
        if (len < 5u) {
            return HP_ERR_LENGTH;
        }
        count = p[4];
        if (count < 1u || count > HP_MAX_STATE_VALUES || len != 5u + 4u * count) {
            return HP_ERR_LENGTH;
        }
        if (m->type == HP_STATE_RAW) {
            m->body.state_raw.timestamp_us = get_u32(p);
            m->body.state_raw.count = count;
            for (i = 0; i < count; i++) {
                m->body.state_raw.counts[i] = int32_from_bits(get_u32(p + 5 + 4 * i));
            }
            return HP_FRAME;
        }
        m->body.state.timestamp_us = get_u32(p);
        m->body.state.count = count;
        for (i = 0; i < count; i++) {
            uint32_t bits = get_u32(p + 5 + 4 * i);
            if (!bits_finite(bits)) {
                return HP_ERR_VALUE;
            }
            m->body.state.values[i] = float_from_bits(bits);
        }
        return HP_FRAME;
    }
    case HP_CONTROL:
        return unpack_control(&m->body.control, p, len);
    case HP_HEARTBEAT:
        if (len != 4u) {
            return HP_ERR_LENGTH;
        }
        m->body.heartbeat.timestamp_us = get_u32(p);
        return HP_FRAME;
    case HP_FAULT:
        if (len != 3u) {
            return HP_ERR_LENGTH;
        }
        m->body.fault.code = p[0];
        m->body.fault.detail = get_u16(p + 1);
        return HP_FRAME;
    default:
        return HP_ERR_TYPE;
    }
}

/* Sequence rules (PROTOCOL.md, "Sequence numbers") for a frame that passed every check. */
static hp_result sequence(hp_decoder *d, const hp_message *m)
{
    uint16_t ahead;
    if (!d->anchored || m->type == HP_HELLO || m->type == HP_CAPABILITIES) {
        d->anchored = 1;
        d->last_expected = m->seq;
        d->next_seq = (uint16_t)(m->seq + 1u);
        return HP_FRAME;
    }
    d->last_expected = d->next_seq;
    ahead = (uint16_t)(m->seq - d->next_seq);
    if (ahead == 0xFFFFu) { /* the previous seq again */
        d->stats.duplicates++;
        return m->type == HP_ESTOP ? HP_FRAME : HP_DUPLICATE;
    }
    d->next_seq = (uint16_t)(m->seq + 1u);
    if (ahead == 0u) {
        return HP_FRAME;
    }
    if (ahead < 0x8000u) {
        d->stats.sequence_gaps++;
        d->stats.frames_missed += ahead;
        return HP_FRAME_GAP;
    }
    d->stats.sequence_resets++;
    return HP_FRAME_RESET;
}

/* The decoded body is complete (its COBS blocks closed): check it in the order of the spec. */
static hp_result finish_frame(hp_decoder *d, hp_message *m)
{
    const uint8_t *b = d->buf;
    size_t n = d->len;
    hp_result r;
    if (n < HP_HEADER_BYTES + HP_CRC_BYTES) {
        return HP_ERR_LENGTH;
    }
    n -= HP_CRC_BYTES;
    if (hp_crc32(b, n) != get_u32(b + n)) {
        return HP_ERR_CRC;
    }
    m->version = b[0];
    m->type = b[1];
    m->seq = get_u16(b + 2);
    m->flags = b[4];
    if (b[0] != HP_PROTOCOL_VERSION) {
        return HP_ERR_VERSION;
    }
    r = unpack_payload(m, b + HP_HEADER_BYTES, n - HP_HEADER_BYTES);
    return r == HP_FRAME ? sequence(d, m) : r;
}

static void count_result(hp_stats *s, hp_result r)
{
    switch (r) {
    case HP_FRAME:
    case HP_FRAME_GAP:
    case HP_FRAME_RESET:
        s->frames_ok++;
        break;
    case HP_ERR_TOO_LONG:
        s->too_long_errors++;
        break;
    case HP_ERR_COBS:
        s->cobs_errors++;
        break;
    case HP_ERR_LENGTH:
        s->length_errors++;
        break;
    case HP_ERR_CRC:
        s->crc_errors++;
        break;
    case HP_ERR_VERSION:
        s->version_errors++;
        break;
    case HP_ERR_TYPE:
        s->type_errors++;
        break;
    case HP_ERR_VALUE:
        s->value_errors++;
        break;
    case HP_NONE:
    case HP_DUPLICATE: /* counted by sequence() */
        break;
    }
}

static void start_frame(hp_decoder *d)
{
    d->len = 0;
    d->encoded_len = 0;
    d->block_code = 0;
    d->block_left = 0;
}

hp_result hp_decoder_push(hp_decoder *d, uint8_t byte, hp_message *msg)
{
    hp_result r;
    d->stats.bytes_received++;
    if (byte == 0u) {
        if (d->skipping || d->encoded_len == 0u) { /* end of an over-long frame, or idle */
            d->skipping = 0;
            start_frame(d);
            return HP_NONE;
        }
        r = d->block_left != 0u ? HP_ERR_COBS : finish_frame(d, msg);
        start_frame(d);
        count_result(&d->stats, r);
        return r;
    }
    if (d->skipping) {
        return HP_NONE;
    }
    if (d->encoded_len == HP_MAX_ENCODED_BYTES) {
        d->skipping = 1;
        count_result(&d->stats, HP_ERR_TOO_LONG);
        return HP_ERR_TOO_LONG;
    }
    d->encoded_len++;
    if (d->block_left == 0u) { /* a code byte: close the previous block, open the next */
        if (d->block_code != 0u && d->block_code != 0xFFu) {
            d->buf[d->len++] = 0;
        }
        d->block_code = byte;
        d->block_left = (uint8_t)(byte - 1u);
    } else {
        d->buf[d->len++] = byte;
        d->block_left--;
    }
    return HP_NONE;
}
