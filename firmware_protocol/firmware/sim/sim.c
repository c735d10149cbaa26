/* sim.c - see sim.h. */
#include "sim.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"

sim_world sim;

void sim_config_default(sim_config *c)
{
    static const double initial[6] = {0.0, 0.1, -0.05, 0.0, 0.0, 0.0};
    memset(c, 0, sizeof *c);
    c->rig.rig_id = 0x48494C31u; /* "HIL1", as the Python emulator */
    c->rig.state_layout = HP_LAYOUT_DOUBLE_INVERTED_PENDULUM;
    c->rig.state_rate_hz = 500;
    c->rig.watchdog_ms = 50;
    dip_default_params(&c->params);
    rig_config_one_input(&c->rig, (float)c->params.max_force_n);
    memcpy(c->initial_state, initial, sizeof initial);
    c->track_limit_m = 1.0;
    c->clock_start_us = 0;
    c->substeps = 4;
}

/*
 * A decimal number: [sign] digits [. digits] [e [sign] digits]. Our own, not strtod: newlib's
 * strtod allocates (its big-integer fallback), and the firmware allocates nothing. Within
 * an ulp or two of strtod (exact for the settings a config holds: 0.1, 0.0081, 1e-4 ...
 * each one division by an exact power of ten); tests/firmware_protocol/test_fw_core.py
 * checks it against Python's float().
 */
static const char *scan_double(const char *s, double *out)
{
    uint64_t mant = 0;
    int exp10 = 0, digits = 0, neg = 0, eneg = 0, e = 0;
    double v, p = 10.0;
    if (*s == '+' || *s == '-') {
        neg = *s++ == '-';
    }
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (mant < 100000000000000000ULL) {
            mant = mant * 10u + (uint64_t)(*s - '0');
        } else {
            exp10++;
        }
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
            if (mant < 100000000000000000ULL) {
                mant = mant * 10u + (uint64_t)(*s - '0');
                exp10--;
            }
        }
    }
    if (digits == 0) {
        return NULL;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') {
            eneg = *s++ == '-';
        }
        if (!(*s >= '0' && *s <= '9')) {
            return NULL;
        }
        for (; *s >= '0' && *s <= '9'; s++) {
            if (e < 10000) {
                e = e * 10 + (*s - '0');
            }
        }
        exp10 += eneg ? -e : e;
    }
    v = (double)mant;
    if (exp10 < 0) {
        for (e = -exp10; e; e >>= 1, p *= p) {
            if (e & 1) {
                v /= p;
            }
        }
    } else {
        for (e = exp10; e; e >>= 1, p *= p) {
            if (e & 1) {
                v *= p;
            }
        }
    }
    *out = neg ? -v : v;
    return s;
}

static int parse_double(const char *s, double *out)
{
    const char *end = scan_double(s, out);
    if (end == NULL || *end != '\0' || !isfinite(*out)) {
        return -2;
    }
    return 0;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (end == s || *end != '\0' || *s == '-' || v > max) {
        return -2;
    }
    *out = (uint32_t)v;
    return 0;
}

static const struct {
    const char *name;
    size_t offset;
} param_fields[] = {
#define F(name) {#name, offsetof(dip_params, name)}
    F(cart_mass_kg), F(link1_mass_kg), F(link2_mass_kg), F(link1_length_m),
    F(link2_length_m), F(link1_com_m), F(link2_com_m), F(link1_inertia_kgm2),
    F(link2_inertia_kgm2), F(gravity_mps2), F(cart_friction_nspm),
    F(joint1_friction_nmsprad), F(joint2_friction_nmsprad), F(max_force_n),
#undef F
};

/*
 * Keys: rate_hz, watchdog_ms, rig_id, track_limit_m, clock_start_us, substeps,
 * initial_state (six comma-separated numbers), and every DIPParams field by its name.
 * max_force_n also sets the limits of the rig's one input (-max_force_n .. +max_force_n).
 */
int sim_config_set(sim_config *c, const char *key, const char *value)
{
    uint32_t u;
    size_t i;
    if (strcmp(key, "rate_hz") == 0) {
        if (parse_u32(value, 65535u, &u) || u == 0) {
            return -2;
        }
        c->rig.state_rate_hz = (uint16_t)u;
        return 0;
    }
    if (strcmp(key, "watchdog_ms") == 0) {
        if (parse_u32(value, 65535u, &u) || u == 0) {
            return -2;
        }
        c->rig.watchdog_ms = (uint16_t)u;
        return 0;
    }
    if (strcmp(key, "rig_id") == 0) {
        return parse_u32(value, 0xFFFFFFFFu, &c->rig.rig_id);
    }
    if (strcmp(key, "clock_start_us") == 0) {
        return parse_u32(value, 0xFFFFFFFFu, &c->clock_start_us);
    }
    if (strcmp(key, "substeps") == 0) {
        if (parse_u32(value, 1000u, &u) || u == 0) {
            return -2;
        }
        c->substeps = (int)u;
        return 0;
    }
    if (strcmp(key, "track_limit_m") == 0) {
        double v;
        if (parse_double(value, &v) || !(v > 0)) {
            return -2;
        }
        c->track_limit_m = v;
        return 0;
    }
    if (strcmp(key, "initial_state") == 0) {
        const char *s = value;
        for (i = 0; i < 6; i++) {
            double v = 0;
            const char *end = scan_double(s, &v);
            if (end == NULL || !isfinite(v) || (i < 5 ? *end != ',' : *end != '\0')) {
                return -2;
            }
            c->initial_state[i] = v;
            s = end + 1;
        }
        return 0;
    }
    for (i = 0; i < sizeof param_fields / sizeof param_fields[0]; i++) {
        if (strcmp(key, param_fields[i].name) == 0) {
            double v;
            if (parse_double(value, &v)) {
                return -2;
            }
            *(double *)(void *)((char *)&c->params + param_fields[i].offset) = v;
            if (strcmp(key, "max_force_n") == 0) {
                rig_config_one_input(&c->rig, (float)v);
            }
            return 0;
        }
    }
    return -1;
}

int sim_config_parse_line(sim_config *c, char *line)
{
    int index = 0;
    char *tok = line;
    while (*tok) {
        char *end, *eq;
        while (*tok == ' ') {
            tok++;
        }
        if (!*tok) {
            break;
        }
        end = tok;
        while (*end && *end != ' ') {
            end++;
        }
        if (*end) {
            *end++ = '\0';
        }
        if (index > 0) {
            eq = strchr(tok, '=');
            if (eq == NULL) {
                return index;
            }
            *eq = '\0';
            if (sim_config_set(c, tok, eq + 1) != 0) {
                return index;
            }
        }
        index++;
        tok = end;
    }
    return 0;
}

int sim_init(const sim_config *c)
{
    int i;
    memset(&sim, 0, sizeof sim);
    if (dip_pack(&c->params, &sim.p) != 0) {
        return -1;
    }
    for (i = 0; i < 6; i++) {
        sim.state[i] = (dip_real)c->initial_state[i];
    }
    sim.track_limit_m = (dip_real)c->track_limit_m;
    sim.max_step_us = 1000000u / c->rig.state_rate_hz;
    if (sim.max_step_us == 0) {
        sim.max_step_us = 1;
    }
    sim.substeps = c->substeps;
    return 0;
}

/* Integrate from sim.t_us to t_us (no-op for a time in the past). */
static void advance(uint32_t t_us)
{
    if (!sim.physics) {
        return;
    }
    while ((uint32_t)(t_us - sim.t_us) - 1u < 0x7FFFFFFFu) { /* t_us after sim.t_us */
        uint32_t dt = t_us - sim.t_us;
        if (dt > sim.max_step_us) {
            dt = sim.max_step_us;
        }
        dip_rk4_step(sim.state, sim.force, (dip_real)dt * (dip_real)1e-6, sim.substeps, &sim.p,
                     sim.state);
        sim.t_us += dt;
        sim.steps++;
    }
}

int hal_read_state(uint32_t t_us, float *values, uint8_t count)
{
    int i;
    advance(t_us);
    for (i = 0; i < count && i < 6; i++) {
        if (!isfinite(sim.state[i])) {
            return 0; /* a diverged model reads as a broken sensor */
        }
        values[i] = (float)sim.state[i];
    }
    return 1;
}

void hal_motor_enable(int on, uint32_t now_us)
{
    if (on && !sim.physics) {
        sim.physics = 1; /* the hand lets go at the first CLEAR */
        sim.t_us = now_us;
    }
    advance(now_us);
    sim.enabled = on;
    if (!on) {
        sim.force = 0;
    }
}

void hal_motor_set(const float *commands, uint8_t count, uint32_t now_us)
{
    advance(now_us);
    sim.force = sim.enabled && count > 0u ? (dip_real)commands[0] : (dip_real)0;
}

uint8_t hal_limit_switches(void)
{
    uint8_t s = 0;
    if (sim.state[0] <= -sim.track_limit_m) {
        s |= 1u;
    }
    if (sim.state[0] >= sim.track_limit_m) {
        s |= 2u;
    }
    return s;
}

int hal_estop_button(void)
{
    return 0;
}
