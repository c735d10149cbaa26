/*
 * rig.h - the portable rig core: PROTOCOL.md sections 9 and 10 as a state machine.
 *
 * Power-up SAFE with FAULT POWER_ON latched (and one CAPABILITIES, nonce 0); HELLO ->
 * CAPABILITIES echoing its nonce, and STATE streaming at state_rate_hz from the port's
 * timer tick; CLEAR arms (unless a limit switch or the e-stop input persists); CONTROL
 * with one command per input applied, each saturated within its limits, held
 * (zero-order), reloading the latching watchdog; a CONTROL with another number of commands
 * refused, counted, and (ARMED) FAULT CONTROL_COUNT; ESTOP (even with a repeated seq) and the e-stop input
 * latch SAFE with ESTOP_LATCHED; limit switches; HEARTBEAT when nothing else was sent for
 * 100 ms. Everything the rig does leaves through hal.h.
 *
 * The port calls, all from its main loop (never from an interrupt, never concurrently):
 *   rig_init(&rig, &config, now)      once, at power-up
 *   rig_rx_byte(&rig, byte, now)      for each byte the UART received, in order
 *   rig_tick(&rig, tick_time)         once per timer tick, with the tick's own timestamp
 *   rig_poll(&rig, now)               every pass of the main loop (watchdog, e-stop input,
 *                                     heartbeat); at least once per tick
 * No allocation; the rig struct is all the state (416 bytes on x86-64).
 */
#ifndef HIL_RIG_H
#define HIL_RIG_H

#include <stdint.h>

#include "hilproto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RIG_FIRMWARE_MAJOR 2u
#define RIG_FIRMWARE_MINOR 0u
#define RIG_FIRMWARE_PATCH 0u
#define RIG_LIVENESS_US 100000u /* PROTOCOL.md 9: some frame at least every 100 ms */

typedef struct {
    uint32_t rig_id;
    uint8_t state_layout;   /* HP_LAYOUT_*: 4 values (cart-pole), 6 (double pendulum), or
                               for HP_LAYOUT_DECLARED n_values */
    uint8_t n_values;       /* HP_LAYOUT_DECLARED only: STATE values, 1..8 */
    uint16_t state_rate_hz; /* the port's timer ticks at this rate */
    uint16_t watchdog_ms;
    uint8_t input_count;    /* 1..HP_MAX_INPUTS: commands per CONTROL */
    float input_low[HP_MAX_INPUTS];  /* per input, physical units (HP_UNIT_PHYSICAL), */
    float input_high[HP_MAX_INPUTS]; /* low < high; STATE in SI */
} rig_config;

/* One input, kept within -max_command .. +max_command: the pendulum rigs. */
static inline void rig_config_one_input(rig_config *cfg, float max_command)
{
    cfg->input_count = 1;
    cfg->input_low[0] = -max_command;
    cfg->input_high[0] = max_command;
}

typedef struct {
    uint32_t hellos, clears, estops, controls_applied, controls_ignored_safe, controls_stale;
    uint32_t controls_wrong_count;
    uint32_t watchdog_trips, limit_trips, button_trips, encoder_faults;
    uint32_t states_tx, heartbeats_tx, capabilities_tx, faults_tx, frames_tx, tx_dropped;
    uint32_t unexpected_frames, other_version_hellos, ticks, stalls;
} rig_counters;

typedef struct {
    rig_config cfg;
    hp_decoder dec;
    uint8_t dec_buf[HP_MAX_BODY_BYTES];
    uint8_t n_values;
    uint8_t armed;
    uint8_t estop_latched;
    uint8_t latched_code;   /* the FAULT code that latched SAFE; 0 while ARMED */
    uint8_t streaming;      /* a HELLO has been received: STATE every tick */
    uint8_t have_state;     /* a STATE has been sent (last_state_seq is valid) */
    uint8_t button_was;     /* the e-stop input at the last poll (edge detection) */
    uint16_t tx_seq;
    uint16_t last_state_seq;
    uint16_t stale_after;   /* CONTROL older than this many STATEs is refused */
    uint32_t watchdog_us;
    uint32_t watchdog_deadline_us;
    uint32_t last_tx_us;
    float commands[HP_MAX_INPUTS]; /* applied while ARMED, one per input */
    rig_counters n;
} rig;

/* 0, or -1 if the configuration is unusable (layout, value count, rate 0, watchdog 0,
   input count outside 1..HP_MAX_INPUTS, a limit not finite or low >= high). */
int rig_init(rig *r, const rig_config *cfg, uint32_t now_us);
void rig_rx_byte(rig *r, uint8_t byte, uint32_t now_us);
void rig_tick(rig *r, uint32_t tick_us);
void rig_poll(rig *r, uint32_t now_us);

/*
 * Emulators only: the port's own execution was suspended for stall_us (its process or
 * QEMU's vCPU was descheduled; its clock kept running). An armed watchdog's deadline moves
 * by stall_us: the port's stall is not the host's silence. A real MCU never calls it (its
 * loop cannot stop without its independent watchdog resetting it).
 */
void rig_stalled(rig *r, uint32_t stall_us);

/* The header flags of the frames the rig sends now (PROTOCOL.md section 8). */
uint8_t rig_flags(const rig *r);

#ifdef __cplusplus
}
#endif

#endif /* HIL_RIG_H */
