/*
 * enc_check.c - the encoder estimator (core/encoders.c) and the settings parser of the
 * simulated ports (sim/sim.c) on stdin/stdout, for tests/firmware_protocol/test_fw_core.py.
 *   enc N CUTOFF_HZ SCALE... OFFSET...   enc_init
 *   upd T_US COUNT...                    enc_update -> 2N numbers
 *   set KEY VALUE                        sim_config_set -> "ok", "unknown" or "bad", then the
 *                                        parsed settings: rate watchdog rig_id max_force
 *                                        track substeps clock_start initial_state[6] params[14]
 *   line TEXT...                         sim_config_parse_line -> the failing index (0 = ok)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoders.h"
#include "sim.h"

static void print_config(const sim_config *c)
{
    const double *p = &c->params.cart_mass_kg;
    int i;
    printf("%u %u %lu %.9g %.17g %d %lu", (unsigned)c->rig.state_rate_hz,
           (unsigned)c->rig.watchdog_ms, (unsigned long)c->rig.rig_id,
           (double)c->rig.input_high[0], c->track_limit_m, c->substeps,
           (unsigned long)c->clock_start_us);
    for (i = 0; i < 6; i++) {
        printf(" %.17g", c->initial_state[i]);
    }
    for (i = 0; i < 14; i++) {
        printf(" %.17g", p[i]);
    }
    printf("\n");
}

int main(void)
{
    static char line[4096];
    enc_estimator e;
    sim_config c;
    memset(&e, 0, sizeof e);
    sim_config_default(&c);
    while (fgets(line, sizeof line, stdin)) {
        char *cmd = strtok(line, " \r\n");
        if (cmd == NULL) {
            continue;
        }
        if (strcmp(cmd, "enc") == 0) {
            int n = atoi(strtok(NULL, " ")), i;
            float cutoff = strtof(strtok(NULL, " "), NULL);
            float scale[ENC_MAX_CHANNELS];
            int32_t offset[ENC_MAX_CHANNELS];
            for (i = 0; i < n; i++) {
                scale[i] = strtof(strtok(NULL, " \n"), NULL);
            }
            for (i = 0; i < n; i++) {
                offset[i] = (int32_t)strtol(strtok(NULL, " \n"), NULL, 10);
            }
            enc_init(&e, (uint8_t)n, scale, offset, cutoff);
            printf("ok\n");
        } else if (strcmp(cmd, "upd") == 0) {
            uint32_t t = (uint32_t)strtoul(strtok(NULL, " "), NULL, 10);
            int32_t counts[ENC_MAX_CHANNELS];
            float out[2 * ENC_MAX_CHANNELS];
            int i;
            for (i = 0; i < e.n; i++) {
                counts[i] = (int32_t)strtol(strtok(NULL, " \n"), NULL, 10);
            }
            enc_update(&e, counts, t, out);
            for (i = 0; i < 2 * e.n; i++) {
                printf(i ? " %.9g" : "%.9g", (double)out[i]);
            }
            printf("\n");
        } else if (strcmp(cmd, "set") == 0) {
            char *key = strtok(NULL, " \n"), *value = strtok(NULL, " \n");
            int r;
            sim_config_default(&c);
            r = sim_config_set(&c, key, value ? value : "");
            printf("%s ", r == 0 ? "ok" : (r == -1 ? "unknown" : "bad"));
            print_config(&c);
        } else if (strcmp(cmd, "line") == 0) {
            char *rest = strtok(NULL, "\n");
            static char buf[4096];
            snprintf(buf, sizeof buf, "prog %s", rest ? rest : "");
            sim_config_default(&c);
            printf("%d ", sim_config_parse_line(&c, buf));
            print_config(&c);
        } else {
            printf("error\n");
        }
        fflush(stdout);
    }
    return 0;
}
