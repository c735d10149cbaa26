/* lqr_dip: an LQR controller for the default double inverted pendulum (configs/default.yaml),
 * in C on libhil: u = -K x, saturated at the plant's force limit.
 *
 * K is the Python `lqr` law's design for the default plant, pasted here: computed with
 *     .venv/bin/python -c "from hil.config import load_config; \
 *         from controller_client.main import law_from_config; \
 *         print(law_from_config(load_config('configs/default.yaml', \
 *             {'controller.name': 'lqr', 'controller.gains': None})).k.tolist())"
 * (the continuous Riccati equation of the plant linearised upright, Bryson weights
 * q = 10, 100, 100, 1, 1, 1 and r = 0.01: controller_client/controllers/lqr.py).
 * tests/clients/test_c_client.py checks these numbers against that design.
 *
 * Its gains are K's six entries (`hil gains` reads and sets them while it runs).
 * Run it in place of hil-controller:
 *     hil run --controller-cmd clients/c/build/lqr_dip --mode lockstep
 * hil run passes the endpoint, mode and run folder in HIL_* environment variables. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hil_client.h"

#define N_STATES 6

static const char *const GAIN_NAMES[N_STATES] = {"k_x", "k_theta1", "k_theta2",
                                                 "k_x_dot", "k_theta1_dot", "k_theta2_dot"};

typedef struct {
    double k[N_STATES];
    double max_force_n;
} lqr;

static int compute(void *user, const double *x, int n_states, double t_s, double *u,
                   int n_inputs)
{
    const lqr *law = user;
    double force = 0.0;
    (void)t_s;
    if (n_states != N_STATES || n_inputs != 1) return 1; /* checked at attach: see main */
    for (int i = 0; i < N_STATES; i++) force -= law->k[i] * x[i];
    u[0] = fmax(-law->max_force_n, fmin(law->max_force_n, force));
    return 0;
}

static void get_gains(void *user, double *values)
{
    memcpy(values, ((const lqr *)user)->k, sizeof(double) * N_STATES);
}

static int set_gains(void *user, const double *values, char *detail, size_t size)
{
    for (int i = 0; i < N_STATES; i++)
        if (!isfinite(values[i]) || fabs(values[i]) > 1e5) {
            snprintf(detail, size, "lqr_dip: %s = %g is out of range (|k| <= 1e5)",
                     GAIN_NAMES[i], values[i]);
            return 1;
        }
    memcpy(((lqr *)user)->k, values, sizeof(double) * N_STATES);
    return 0;
}

int main(void)
{
    lqr state = {{31.622776601682467, -633.6004984899071, 945.1194333259341,
                  46.97438065890091, -8.54468636235171, 131.22671271987562}, 150.0};
    hil_law law = {"lqr_dip.c", compute, N_STATES, GAIN_NAMES, get_gains, set_gains, &state};
    hil_options opt;
    hil_client *c;
    char err[512];
    int code;
    hil_status status;
    hil_options_init(&opt);
    opt.client_name = "lqr_dip.c";
    if (hil_options_from_env(&opt, err, sizeof err) != HIL_OK
        || (c = hil_open(&opt, err, sizeof err)) == NULL) {
        fprintf(stderr, "lqr_dip: %s\n", err);
        return 2;
    }
    status = hil_handshake(c);
    if (status == HIL_OK) {
        const hil_description *d = hil_get_description(c);
        if (d->n_states != N_STATES || d->n_inputs != 1) {
            snprintf(err, sizeof err, "lqr_dip: plant %s has %d states and %d inputs; this "
                     "example is for the double inverted pendulum (6 states, 1 input): run "
                     "it with plant.model dip", d->name, d->n_states, d->n_inputs);
            status = hil_abort(c, HIL_ERR_USAGE, err);
        }
        state.max_force_n = fmin(fabs(d->input_low[0]), fabs(d->input_high[0]));
    }
    if (status == HIL_OK) status = hil_run(c, &law);
    code = hil_finish(c, status);
    hil_close(c);
    return code;
}
