/*
 * hilproto_driver.c - test driver for the C reference codec; reads commands on stdin.
 *
 * Each command is one line; its output is zero or more lines followed by "end".
 *   encode TYPE SEQ FLAGS FIELDS...  -> the frame as lowercase hex, or "error"
 *   decode HEX                       -> one line per event, then a "stats" line
 *   flips N HEX                      -> "patterns P accepted A": every N-bit error (N 1..3)
 *   bursts L HEX                     -> "patterns P accepted A": every burst of 1..L bits
 * For flips and bursts HEX is one whole frame; each corrupted copy goes to a fresh decoder
 * followed by one extra 0x00, and A counts the frames it accepted. Bit k of a frame is bit
 * k % 8 (LSB first, the order a UART sends) of byte k / 8.
 *
 * FIELDS, per TYPE (integers decimal, floats as 8 hex digits of their binary32 bits):
 *   ESTOP, CLEAR          (none)
 *   HELLO                 nonce
 *   CAPABILITIES          rig_id fw_major fw_minor fw_patch layout encoding unit
 *                         state_rate_hz watchdog_ms angle_counts_per_rev cart_counts_per_m
 *                         nonce input_count (low high)...
 *   STATE                 timestamp_us count value...
 *   STATE_RAW             timestamp_us count count_value...
 *   CONTROL               state_seq count command...
 *   HEARTBEAT             timestamp_us
 *   FAULT                 code detail
 * Events: "frame TYPE SEQ FLAGS FIELDS...", "gap EXPECTED RECEIVED" or
 * "reset EXPECTED RECEIVED" before their frame, "duplicate TYPE SEQ FLAGS FIELDS...",
 * "reject REASON". Stats: "stats" and the hp_stats counters in declaration order.
 */
#include "hilproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_CHARS 65536
#define STREAM_MAX_BYTES (LINE_MAX_CHARS / 2)

static const struct {
    const char *name;
    uint8_t type;
} type_names[] = {
    {"HELLO", HP_HELLO},         {"CAPABILITIES", HP_CAPABILITIES},
    {"STATE", HP_STATE},         {"STATE_RAW", HP_STATE_RAW},
    {"CONTROL", HP_CONTROL},     {"HEARTBEAT", HP_HEARTBEAT},
    {"FAULT", HP_FAULT},         {"ESTOP", HP_ESTOP},
    {"CLEAR", HP_CLEAR},
};

static const char *reject_names[] = {"too_long", "cobs",  "length", "crc",
                                     "version",  "type",  "value"};

static char line[LINE_MAX_CHARS];
static uint8_t stream[STREAM_MAX_BYTES];

static const char *type_name(uint8_t type)
{
    size_t i;
    for (i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (type_names[i].type == type) {
            return type_names[i].name;
        }
    }
    return "?";
}

static unsigned long next_ulong(int base)
{
    const char *token = strtok(NULL, " \n");
    return token ? strtoul(token, NULL, base) : 0ul;
}

static float next_float(void)
{
    uint32_t bits = (uint32_t)next_ulong(16);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* Parse "TYPE SEQ FLAGS FIELDS..." from strtok's position into m; 0 on an unknown TYPE. */
static int parse_message(hp_message *m)
{
    const char *name = strtok(NULL, " \n");
    unsigned i;
    size_t t;
    memset(m, 0, sizeof *m);
    m->type = 0;
    for (t = 0; name && t < sizeof type_names / sizeof type_names[0]; t++) {
        if (strcmp(name, type_names[t].name) == 0) {
            m->type = type_names[t].type;
        }
    }
    if (m->type == 0) {
        return 0;
    }
    m->seq = (uint16_t)next_ulong(10);
    m->flags = (uint8_t)next_ulong(10);
    switch (m->type) {
    case HP_CAPABILITIES: {
        hp_capabilities *c = &m->body.capabilities;
        c->rig_id = (uint32_t)next_ulong(10);
        for (i = 0; i < 3; i++) {
            c->firmware_version[i] = (uint8_t)next_ulong(10);
        }
        c->state_layout = (uint8_t)next_ulong(10);
        c->state_encoding = (uint8_t)next_ulong(10);
        c->control_unit = (uint8_t)next_ulong(10);
        c->state_rate_hz = (uint16_t)next_ulong(10);
        c->watchdog_ms = (uint16_t)next_ulong(10);
        c->angle_counts_per_rev = (uint32_t)next_ulong(10);
        c->cart_counts_per_m = (uint32_t)next_ulong(10);
        c->nonce = (uint32_t)next_ulong(10);
        c->input_count = (uint8_t)next_ulong(10);
        for (i = 0; i < c->input_count && i < HP_MAX_INPUTS; i++) {
            c->input_low[i] = next_float();
            c->input_high[i] = next_float();
        }
        break;
    }
    case HP_HELLO:
        m->body.hello.nonce = (uint32_t)next_ulong(10);
        break;
    case HP_STATE:
        m->body.state.timestamp_us = (uint32_t)next_ulong(10);
        m->body.state.count = (uint8_t)next_ulong(10);
        for (i = 0; i < m->body.state.count && i < HP_MAX_STATE_VALUES; i++) {
            m->body.state.values[i] = next_float();
        }
        break;
    case HP_STATE_RAW:
        m->body.state_raw.timestamp_us = (uint32_t)next_ulong(10);
        m->body.state_raw.count = (uint8_t)next_ulong(10);
        for (i = 0; i < m->body.state_raw.count && i < HP_MAX_STATE_VALUES; i++) {
            const char *token = strtok(NULL, " \n");
            m->body.state_raw.counts[i] = token ? (int32_t)strtol(token, NULL, 10) : 0;
        }
        break;
    case HP_CONTROL:
        m->body.control.state_seq = (uint16_t)next_ulong(10);
        m->body.control.count = (uint8_t)next_ulong(10);
        for (i = 0; i < m->body.control.count && i < HP_MAX_INPUTS; i++) {
            m->body.control.commands[i] = next_float();
        }
        break;
    case HP_HEARTBEAT:
        m->body.heartbeat.timestamp_us = (uint32_t)next_ulong(10);
        break;
    case HP_FAULT:
        m->body.fault.code = (uint8_t)next_ulong(10);
        m->body.fault.detail = (uint16_t)next_ulong(10);
        break;
    default:
        break;
    }
    return 1;
}

static void print_message(const char *event, const hp_message *m)
{
    unsigned i;
    printf("%s %s %u %u", event, type_name(m->type), (unsigned)m->seq, (unsigned)m->flags);
    switch (m->type) {
    case HP_CAPABILITIES: {
        const hp_capabilities *c = &m->body.capabilities;
        printf(" %lu %u %u %u %u %u %u %u %u %lu %lu %lu %u", (unsigned long)c->rig_id,
               (unsigned)c->firmware_version[0], (unsigned)c->firmware_version[1],
               (unsigned)c->firmware_version[2], (unsigned)c->state_layout,
               (unsigned)c->state_encoding, (unsigned)c->control_unit,
               (unsigned)c->state_rate_hz, (unsigned)c->watchdog_ms,
               (unsigned long)c->angle_counts_per_rev, (unsigned long)c->cart_counts_per_m,
               (unsigned long)c->nonce, (unsigned)c->input_count);
        for (i = 0; i < c->input_count; i++) {
            printf(" %08lx %08lx", (unsigned long)bits_of(c->input_low[i]),
                   (unsigned long)bits_of(c->input_high[i]));
        }
        break;
    }
    case HP_STATE:
        printf(" %lu %u", (unsigned long)m->body.state.timestamp_us,
               (unsigned)m->body.state.count);
        for (i = 0; i < m->body.state.count; i++) {
            printf(" %08lx", (unsigned long)bits_of(m->body.state.values[i]));
        }
        break;
    case HP_STATE_RAW:
        printf(" %lu %u", (unsigned long)m->body.state_raw.timestamp_us,
               (unsigned)m->body.state_raw.count);
        for (i = 0; i < m->body.state_raw.count; i++) {
            printf(" %ld", (long)m->body.state_raw.counts[i]);
        }
        break;
    case HP_HELLO:
        printf(" %lu", (unsigned long)m->body.hello.nonce);
        break;
    case HP_CONTROL:
        printf(" %u %u", (unsigned)m->body.control.state_seq, (unsigned)m->body.control.count);
        for (i = 0; i < m->body.control.count; i++) {
            printf(" %08lx", (unsigned long)bits_of(m->body.control.commands[i]));
        }
        break;
    case HP_HEARTBEAT:
        printf(" %lu", (unsigned long)m->body.heartbeat.timestamp_us);
        break;
    case HP_FAULT:
        printf(" %u %u", (unsigned)m->body.fault.code, (unsigned)m->body.fault.detail);
        break;
    default:
        break;
    }
    printf("\n");
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Parse the next token as hex into stream; its byte count, or -1 if it is not hex. */
static long next_hex(void)
{
    const char *token = strtok(NULL, " \n");
    size_t n = 0;
    if (token == NULL) {
        return 0;
    }
    for (; token[0] && token[1]; token += 2) {
        int hi = hex_value(token[0]);
        int lo = hex_value(token[1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        stream[n++] = (uint8_t)(hi * 16 + lo);
    }
    return token[0] ? -1 : (long)n;
}

static void command_encode(void)
{
    hp_message m;
    uint8_t out[HP_MAX_FRAME_BYTES];
    size_t n;
    size_t i;
    if (!parse_message(&m) || (n = hp_encode(&m, out, sizeof out)) == 0) {
        printf("error\n");
        return;
    }
    for (i = 0; i < n; i++) {
        printf("%02x", (unsigned)out[i]);
    }
    printf("\n");
}

static void command_decode(size_t n)
{
    uint8_t buf[HP_MAX_BODY_BYTES];
    hp_decoder dec;
    hp_message m;
    const hp_stats *s = &dec.stats;
    size_t i;
    hp_decoder_init(&dec, buf, sizeof buf);
    for (i = 0; i < n; i++) {
        hp_result r = hp_decoder_push(&dec, stream[i], &m);
        switch (r) {
        case HP_NONE:
            break;
        case HP_FRAME_GAP:
        case HP_FRAME_RESET:
            printf("%s %u %u\n", r == HP_FRAME_GAP ? "gap" : "reset",
                   (unsigned)dec.last_expected, (unsigned)m.seq);
            print_message("frame", &m);
            break;
        case HP_FRAME:
            print_message("frame", &m);
            break;
        case HP_DUPLICATE:
            print_message("duplicate", &m);
            break;
        default:
            printf("reject %s\n", reject_names[r - HP_ERR_TOO_LONG]);
            break;
        }
    }
    printf("stats %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu\n",
           (unsigned long)s->bytes_received, (unsigned long)s->frames_ok,
           (unsigned long)s->too_long_errors, (unsigned long)s->cobs_errors,
           (unsigned long)s->length_errors, (unsigned long)s->crc_errors,
           (unsigned long)s->version_errors, (unsigned long)s->type_errors,
           (unsigned long)s->value_errors, (unsigned long)s->sequence_gaps,
           (unsigned long)s->frames_missed, (unsigned long)s->duplicates,
           (unsigned long)s->sequence_resets);
}

/* Feed a corrupted frame and one extra delimiter to a fresh decoder: frames accepted. */
static unsigned long accepted(const uint8_t *frame, size_t n)
{
    uint8_t buf[HP_MAX_BODY_BYTES];
    hp_decoder dec;
    hp_message m;
    unsigned long count = 0;
    size_t i;
    hp_decoder_init(&dec, buf, sizeof buf);
    for (i = 0; i <= n; i++) {
        hp_result r = hp_decoder_push(&dec, i < n ? frame[i] : 0u, &m);
        if (r == HP_FRAME || r == HP_FRAME_GAP || r == HP_FRAME_RESET || r == HP_DUPLICATE) {
            count++;
        }
    }
    return count;
}

static void flip(uint8_t *frame, size_t bit)
{
    frame[bit / 8] = (uint8_t)(frame[bit / 8] ^ (1u << (bit % 8)));
}

/* Every way to flip `left` more bits at positions >= first; tallies patterns and accepts. */
static void flips(uint8_t *frame, size_t n, unsigned left, size_t first,
                  unsigned long *patterns, unsigned long *accepts)
{
    size_t bit;
    for (bit = first; bit < n * 8; bit++) {
        flip(frame, bit);
        if (left == 1) {
            ++*patterns;
            *accepts += accepted(frame, n);
        } else {
            flips(frame, n, left - 1, bit + 1, patterns, accepts);
        }
        flip(frame, bit);
    }
}

/* Every burst of 1..max_len bits: first and last bit flipped, any pattern between. */
static void bursts(uint8_t *frame, size_t n, unsigned max_len,
                   unsigned long *patterns, unsigned long *accepts)
{
    size_t start;
    size_t len;
    for (start = 0; start < n * 8; start++) {
        for (len = 1; len <= max_len && start + len <= n * 8; len++) {
            unsigned long inner = len > 2 ? 1ul << (len - 2) : 1ul;
            unsigned long mask;
            flip(frame, start);
            if (len > 1) {
                flip(frame, start + len - 1);
            }
            for (mask = 0; mask < inner; mask++) {
                size_t k;
                for (k = 0; k + 2 < len; k++) {
                    if (mask & (1ul << k)) {
                        flip(frame, start + 1 + k);
                    }
                }
                ++*patterns;
                *accepts += accepted(frame, n);
                for (k = 0; k + 2 < len; k++) {
                    if (mask & (1ul << k)) {
                        flip(frame, start + 1 + k);
                    }
                }
            }
            flip(frame, start);
            if (len > 1) {
                flip(frame, start + len - 1);
            }
        }
    }
}

static void command_errors(int burst)
{
    unsigned long size = next_ulong(10);
    long n = next_hex();
    unsigned long patterns = 0;
    unsigned long accepts = 0;
    if (n <= 0 || size < 1 || (burst ? size > 24 : size > 3)) {
        printf("error\n");
        return;
    }
    if (burst) {
        bursts(stream, (size_t)n, (unsigned)size, &patterns, &accepts);
    } else {
        flips(stream, (size_t)n, (unsigned)size, 0, &patterns, &accepts);
    }
    printf("patterns %lu accepted %lu\n", patterns, accepts);
}

int main(void)
{
    while (fgets(line, sizeof line, stdin) != NULL) {
        const char *command;
        if (strchr(line, '\n') == NULL && !feof(stdin)) {
            fprintf(stderr, "input line longer than %d characters\n", LINE_MAX_CHARS - 1);
            return 2;
        }
        command = strtok(line, " \n");
        if (command == NULL) {
            continue;
        }
        if (strcmp(command, "encode") == 0) {
            command_encode();
        } else if (strcmp(command, "decode") == 0) {
            long n = next_hex();
            if (n < 0) {
                printf("error\n");
            } else {
                command_decode((size_t)n);
            }
        } else if (strcmp(command, "flips") == 0) {
            command_errors(0);
        } else if (strcmp(command, "bursts") == 0) {
            command_errors(1);
        } else {
            printf("error\n");
        }
        printf("end\n");
        fflush(stdout);
    }
    return 0;
}
