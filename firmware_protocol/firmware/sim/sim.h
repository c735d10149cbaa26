/*
 * sim.h - the simulated pendulum behind the HAL, shared by the host and QEMU ports: it
 * implements hal_read_state, hal_motor_enable, hal_motor_set, hal_limit_switches and
 * hal_estop_button over the DIP model (dip.h), and parses the key=value settings both
 * ports take (the host on its command line, QEMU through semihosting).
 *
 * As plant_server/rig_emulator.py does: the pendulum is held at its initial state until the
 * motor is first enabled (the first CLEAR: a hand lets go), then integrated piecewise
 * between commands, each command acting from the moment it was applied; the limit switches
 * close at +-track_limit_m. No e-stop button is wired in the simulation.
 */
#ifndef HIL_SIM_H
#define HIL_SIM_H

#include <stdint.h>

#include "dip.h"
#include "rig.h"

typedef struct {
    rig_config rig;
    dip_params params;
    double initial_state[6];
    double track_limit_m;
    uint32_t clock_start_us;
    int substeps;
} sim_config;

typedef struct {
    dip_packed p;
    dip_real state[6];
    dip_real force;
    dip_real track_limit_m;
    uint32_t t_us;          /* the time `state` is at */
    uint32_t max_step_us;   /* one period: each RK4 step covers at most this */
    int substeps;
    int physics;            /* started at the first motor enable */
    int enabled;
    uint32_t steps;
} sim_world;

extern sim_world sim;

void sim_config_default(sim_config *c);
/* 0 if applied; -1 unknown key; -2 bad value. Keys: see sim.c. */
int sim_config_set(sim_config *c, const char *key, const char *value);
/* Parse "key=value" tokens separated by spaces (QEMU's semihosting command line); the
   first token (the program name) is skipped. Returns 0 or the failing token's index. */
int sim_config_parse_line(sim_config *c, char *line);
/* 0, or -1 if the parameters are invalid. */
int sim_init(const sim_config *c);

#endif /* HIL_SIM_H */
