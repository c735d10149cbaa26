/*
 * rig.c - the rig's behaviour (PROTOCOL.md sections 9-10) over hilproto and hal.h.
 * See rig.h for the calling contract. C99, no allocation, no blocking.
 */
#include "rig.h"

#include <string.h>

#include "hal.h"

/* Time comparisons on the wrapping microsecond clock: true once `now` reaches `t`. */
static int reached(uint32_t now, uint32_t t)
{
    return (uint32_t)(now - t) < 0x80000000u;
}

uint8_t rig_flags(const rig *r)
{
    uint8_t f = 0;
    if (r->armed) {
        f |= HP_FLAG_MOTOR_ENABLED;
    } else {
        f |= HP_FLAG_FAULT_LATCHED;
    }
    if (r->estop_latched) {
        f |= HP_FLAG_ESTOP_LATCHED;
    }
    return f;
}

static void send(rig *r, hp_message *m, uint32_t now_us)
{
    uint8_t out[HP_MAX_FRAME_BYTES];
    size_t n;
    m->seq = r->tx_seq;
    m->flags = rig_flags(r);
    n = hp_encode(m, out, sizeof out);
    if (n == 0) {
        return; /* cannot happen for the frames built here; never send garbage */
    }
    /* The seq is spent even when the ring is full: the host sees the loss as a gap. */
    r->tx_seq = (uint16_t)(r->tx_seq + 1u);
    r->last_tx_us = now_us;
    if (hal_uart_write(out, n)) {
        r->n.frames_tx++;
    } else {
        r->n.tx_dropped++;
    }
}

/* CAPABILITIES answering the HELLO with `nonce` (0: unasked, at power-up). */
static void send_capabilities(rig *r, uint32_t nonce, uint32_t now_us)
{
    hp_message m;
    memset(&m, 0, sizeof m);
    m.type = HP_CAPABILITIES;
    m.body.capabilities.rig_id = r->cfg.rig_id;
    m.body.capabilities.firmware_version[0] = RIG_FIRMWARE_MAJOR;
    m.body.capabilities.firmware_version[1] = RIG_FIRMWARE_MINOR;
    m.body.capabilities.firmware_version[2] = RIG_FIRMWARE_PATCH;
    m.body.capabilities.state_layout = r->cfg.state_layout;
    m.body.capabilities.state_encoding = HP_ENCODING_FLOAT32_SI;
    m.body.capabilities.control_unit = HP_UNIT_PHYSICAL;
    m.body.capabilities.state_rate_hz = r->cfg.state_rate_hz;
    m.body.capabilities.watchdog_ms = r->cfg.watchdog_ms;
    m.body.capabilities.angle_counts_per_rev = 0;
    m.body.capabilities.cart_counts_per_m = 0;
    m.body.capabilities.nonce = nonce;
    m.body.capabilities.input_count = r->cfg.input_count;
    memcpy(m.body.capabilities.input_low, r->cfg.input_low, sizeof r->cfg.input_low);
    memcpy(m.body.capabilities.input_high, r->cfg.input_high, sizeof r->cfg.input_high);
    r->n.capabilities_tx++;
    send(r, &m, now_us);
}

static void zero_commands(rig *r, uint32_t now_us)
{
    memset(r->commands, 0, sizeof r->commands);
    hal_motor_set(r->commands, r->cfg.input_count, now_us);
}

static void motor_off(rig *r, uint32_t now_us)
{
    zero_commands(r, now_us);
    hal_motor_enable(0, now_us);
    hal_led(0);
}

/* SAFE for a fault: motor off first, then one FAULT frame with the code. */
static void enter_safe(rig *r, uint8_t code, uint16_t detail, int estop, uint32_t now_us)
{
    hp_message m;
    r->armed = 0;
    motor_off(r, now_us);
    r->latched_code = code;
    if (estop) {
        r->estop_latched = 1;
    }
    memset(&m, 0, sizeof m);
    m.type = HP_FAULT;
    m.body.fault.code = code;
    m.body.fault.detail = detail;
    r->n.faults_tx++;
    send(r, &m, now_us);
}

/* 0 for the -x end, 1 for the +x end, -1 if no limit switch is pressed. */
static int limit_side(void)
{
    uint8_t s = hal_limit_switches();
    if (s & 1u) {
        return 0;
    }
    if (s & 2u) {
        return 1;
    }
    return -1;
}

/* The STATE values of the layout, or 0 if the configuration is unusable. */
static uint8_t config_values(const rig_config *cfg)
{
    unsigned i;
    if (cfg->state_rate_hz == 0 || cfg->watchdog_ms == 0 || cfg->input_count < 1u ||
        cfg->input_count > HP_MAX_INPUTS) {
        return 0;
    }
    for (i = 0; i < cfg->input_count; i++) {
        float low = cfg->input_low[i];
        float high = cfg->input_high[i];
        /* finite, low < high: false for NaN, and an infinity has no finite partner above */
        if (!(low < high) || !(low > -3.4028235e38f) || !(high < 3.4028235e38f)) {
            return 0;
        }
    }
    switch (cfg->state_layout) {
    case HP_LAYOUT_CART_POLE:
        return 4;
    case HP_LAYOUT_DOUBLE_INVERTED_PENDULUM:
        return 6;
    case HP_LAYOUT_DECLARED:
        return cfg->n_values <= HP_MAX_STATE_VALUES ? cfg->n_values : 0;
    default:
        return 0;
    }
}

int rig_init(rig *r, const rig_config *cfg, uint32_t now_us)
{
    uint32_t stale;
    memset(r, 0, sizeof *r);
    r->n_values = config_values(cfg);
    if (r->n_values == 0) {
        return -1;
    }
    r->cfg = *cfg;
    (void)hp_decoder_init(&r->dec, r->dec_buf, sizeof r->dec_buf);
    r->watchdog_us = (uint32_t)cfg->watchdog_ms * 1000u;
    stale = (uint32_t)cfg->watchdog_ms * cfg->state_rate_hz / 1000u;
    r->stale_after = (uint16_t)(stale < 1u ? 1u : (stale > 32767u ? 32767u : stale));
    r->latched_code = HP_FAULT_POWER_ON;
    motor_off(r, now_us);
    r->button_was = (uint8_t)(hal_estop_button() != 0);
    send_capabilities(r, 0, now_us); /* once, at power-up, answering no HELLO (section 9) */
    return 0;
}

static void on_clear(rig *r, uint32_t now_us)
{
    int side;
    r->n.clears++;
    if (r->armed) {
        return; /* in ARMED, CLEAR does nothing */
    }
    side = limit_side();
    if (side >= 0) {
        r->n.limit_trips++;
        enter_safe(r, HP_FAULT_LIMIT_SWITCH, (uint16_t)side, 0, now_us);
        return;
    }
    if (hal_estop_button()) {
        enter_safe(r, HP_FAULT_ESTOP, 1, 1, now_us);
        return;
    }
    r->armed = 1;
    r->latched_code = 0;
    r->estop_latched = 0;
    zero_commands(r, now_us);
    hal_motor_enable(1, now_us);
    hal_led(1);
    r->watchdog_deadline_us = now_us + r->watchdog_us;
}

static void on_control(rig *r, const hp_control *c, uint32_t now_us)
{
    unsigned i;
    if (c->count != r->cfg.input_count) { /* another plant's host: never applied (section 10) */
        r->n.controls_wrong_count++;
        if (r->armed) {
            enter_safe(r, HP_FAULT_CONTROL_COUNT, c->count, 0, now_us);
        }
        return;
    }
    if (!r->armed) {
        r->n.controls_ignored_safe++;
        return;
    }
    if (!r->have_state ||
        (uint16_t)(r->last_state_seq - c->state_seq) > r->stale_after) {
        r->n.controls_stale++; /* answers a state too old: no reload (section 10) */
        return;
    }
    for (i = 0; i < c->count; i++) {
        float u = c->commands[i]; /* finite: the decoder rejects NaN and infinities (VALUE) */
        if (u > r->cfg.input_high[i]) {
            u = r->cfg.input_high[i];
        } else if (u < r->cfg.input_low[i]) {
            u = r->cfg.input_low[i];
        }
        r->commands[i] = u;
    }
    hal_motor_set(r->commands, r->cfg.input_count, now_us);
    r->watchdog_deadline_us = now_us + r->watchdog_us;
    r->n.controls_applied++;
}

static void on_frame(rig *r, const hp_message *m, uint32_t now_us)
{
    switch (m->type) {
    case HP_HELLO:
        r->n.hellos++;
        if (r->armed) { /* a session always starts disarmed; no fault is raised */
            r->armed = 0;
            motor_off(r, now_us);
            r->latched_code = HP_FAULT_POWER_ON;
        }
        r->streaming = 1;
        send_capabilities(r, m->body.hello.nonce, now_us);
        break;
    case HP_CLEAR:
        on_clear(r, now_us);
        break;
    case HP_ESTOP:
        r->n.estops++;
        enter_safe(r, HP_FAULT_ESTOP, 0, 1, now_us);
        break;
    case HP_CONTROL:
        on_control(r, &m->body.control, now_us);
        break;
    case HP_HEARTBEAT:
        break; /* liveness only: never feeds the watchdog */
    default:
        r->n.unexpected_frames++; /* rig -> host types sent to the rig */
        break;
    }
}

void rig_rx_byte(rig *r, uint8_t byte, uint32_t now_us)
{
    hp_message m;
    hp_result res = hp_decoder_push(&r->dec, byte, &m);
    switch (res) {
    case HP_FRAME:
    case HP_FRAME_GAP:
    case HP_FRAME_RESET:
        on_frame(r, &m, now_us);
        break;
    case HP_ERR_VERSION:
        /* A HELLO of another version gets our CAPABILITIES, in our version (section 9). */
        if (m.type == HP_HELLO) {
            r->n.other_version_hellos++;
            send_capabilities(r, 0, now_us); /* its nonce cannot be read: 0 */
        }
        break;
    default:
        break; /* duplicates and rejects are counted by the decoder */
    }
}

static void check_watchdog(rig *r, uint32_t now_us)
{
    if (r->armed && reached(now_us, r->watchdog_deadline_us)) {
        r->n.watchdog_trips++;
        enter_safe(r, HP_FAULT_WATCHDOG, r->cfg.watchdog_ms, 0, now_us);
    }
}

void rig_tick(rig *r, uint32_t tick_us)
{
    hp_message m;
    int side;
    r->n.ticks++;
    check_watchdog(r, tick_us);
    memset(&m, 0, sizeof m);
    if (!hal_read_state(tick_us, m.body.state.values, r->n_values)) {
        r->n.encoder_faults++;
        if (r->armed) {
            enter_safe(r, HP_FAULT_ENCODER, 0, 0, tick_us);
        }
        return;
    }
    if (r->armed) {
        side = limit_side();
        if (side >= 0) {
            r->n.limit_trips++;
            enter_safe(r, HP_FAULT_LIMIT_SWITCH, (uint16_t)side, 0, tick_us);
        }
    }
    if (!r->streaming) {
        return;
    }
    m.type = HP_STATE;
    m.body.state.timestamp_us = tick_us;
    m.body.state.count = r->n_values;
    r->last_state_seq = r->tx_seq;
    r->have_state = 1;
    r->n.states_tx++;
    send(r, &m, tick_us);
}

void rig_poll(rig *r, uint32_t now_us)
{
    int button = hal_estop_button() != 0;
    if (button && !r->button_was) {
        r->n.button_trips++;
        enter_safe(r, HP_FAULT_ESTOP, 1, 1, now_us);
    }
    r->button_was = (uint8_t)button;
    check_watchdog(r, now_us);
    if (reached(now_us, r->last_tx_us + RIG_LIVENESS_US)) {
        hp_message m;
        memset(&m, 0, sizeof m);
        m.type = HP_HEARTBEAT;
        m.body.heartbeat.timestamp_us = now_us;
        r->n.heartbeats_tx++;
        send(r, &m, now_us);
    }
}

void rig_stalled(rig *r, uint32_t stall_us)
{
    r->n.stalls++;
    if (r->armed) {
        r->watchdog_deadline_us += stall_us;
    }
}
