/*
 * dip_check.c - the DIP model of sim/dip.c on stdin/stdout, for the numerical check against
 * hil/dynamics/dip.py (tests/firmware_protocol/test_fw_dynamics.py). Built twice: double
 * (the host port's precision) and -DDIP_REAL_FLOAT (the QEMU port's). One command a line:
 *   step DT SUBSTEPS FORCE S0..S5   -> six numbers, the state after one dip_rk4_step
 *   deriv FORCE S0..S5              -> six numbers, dip_derivatives
 *   run DT SUBSTEPS STEPS FORCE S0..S5 -> six numbers after STEPS steps
 * Output numbers are printed with 17 significant digits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dip.h"

int main(void)
{
    static char line[4096];
    dip_params params;
    dip_packed p;
    dip_default_params(&params);
    if (dip_pack(&params, &p) != 0) {
        return 1;
    }
    while (fgets(line, sizeof line, stdin)) {
        char *cmd = strtok(line, " \t\r\n");
        dip_real s[6], out[6];
        double dt = 0, force;
        long substeps = 1, steps = 1, k;
        int i;
        if (cmd == NULL) {
            continue;
        }
        if (strcmp(cmd, "step") == 0 || strcmp(cmd, "run") == 0) {
            dt = strtod(strtok(NULL, " "), NULL);
            substeps = strtol(strtok(NULL, " "), NULL, 10);
            if (strcmp(cmd, "run") == 0) {
                steps = strtol(strtok(NULL, " "), NULL, 10);
            }
        } else if (strcmp(cmd, "deriv") != 0) {
            printf("error\n");
            continue;
        }
        force = strtod(strtok(NULL, " "), NULL);
        for (i = 0; i < 6; i++) {
            s[i] = (dip_real)strtod(strtok(NULL, " \n"), NULL);
        }
        if (strcmp(cmd, "deriv") == 0) {
            dip_derivatives(s, (dip_real)force, &p, out);
        } else {
            memcpy(out, s, sizeof s);
            for (k = 0; k < steps; k++) {
                dip_rk4_step(out, (dip_real)force, (dip_real)dt, (int)substeps, &p, out);
            }
        }
        printf("%.17g %.17g %.17g %.17g %.17g %.17g\n", (double)out[0], (double)out[1],
               (double)out[2], (double)out[3], (double)out[4], (double)out[5]);
        fflush(stdout);
    }
    return 0;
}
