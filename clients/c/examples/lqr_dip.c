/* lqr_dip: an LQR controller for the default double inverted pendulum (configs/default.yaml),
 * in C on libhil: u = -K x, saturated at the plant's force limit.
 *
 * K and the Riccati solution P are the Python `lqr` law's design for the default plant,
 * pasted here: computed with
 *     .venv/bin/python -c "from hil.config import load_config; \
 *         from controller_client.main import law_from_config; \
 *         law = law_from_config(load_config('configs/default.yaml', \
 *             {'controller.name': 'lqr', 'controller.gains': None})); \
 *         print(law.k.tolist(), law.p_matrix.ravel().tolist())"
 * (the continuous Riccati equation of the plant linearised upright, Bryson weights
 * q = 10, 100, 100, 1, 1, 1 and r = 0.01: controller_client/controllers/lqr.py).
 * tests/clients/test_c_client.py checks these numbers against that design. As the Python law,
 * it reports sigma = sqrt(x' P x) (V = sigma^2 / 2 is the Lyapunov function the design
 * certifies) to the stability monitors.
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
    double sigma;
} lqr;

/* The Riccati solution of the design, row-major. */
static const double P[N_STATES * N_STATES] = {
    14.917849008992818, -9.956457022841676, 47.730706742669625, 10.626910952755406,
    4.02795434273876, 7.342629590407357, -9.956457022841676, 180.3856908982458,
    -314.32666400929384, -17.92452242578125, -2.915250187883747, -44.13028452987794,
    47.730706742669625, -314.32666400929384, 704.62724521456, 62.95574033548006,
    18.728824023503364, 99.34278460410829, 10.626910952755406, -17.92452242578125,
    62.95574033548006, 11.998779194488506, 4.469421956156221, 9.579861829530586,
    4.02795434273876, -2.915250187883747, 18.728824023503364, 4.469421956156221,
    1.8351440785959914, 2.9348379860686657, 7.342629590407357, -44.13028452987794,
    99.34278460410829, 9.579861829530586, 2.9348379860686657, 14.270455405352504};

static int compute(void *user, const double *x, int n_states, double t_s, double *u,
                   int n_inputs)
{
    lqr *law = user;
    double force = 0.0, v = 0.0;
    (void)t_s;
    if (n_states != N_STATES || n_inputs != 1) return 1; /* checked at attach: see main */
    for (int i = 0; i < N_STATES; i++) {
        double row = 0.0;
        for (int j = 0; j < N_STATES; j++) row += P[N_STATES * i + j] * x[j];
        v += x[i] * row;
        force -= law->k[i] * x[i];
    }
    law->sigma = sqrt(fmax(v, 0.0));
    u[0] = fmax(-law->max_force_n, fmin(law->max_force_n, force));
    return 0;
}

static void figures(void *user, double *sigma, double *mass_condition)
{
    *sigma = ((const lqr *)user)->sigma;
    *mass_condition = NAN; /* not computed here (the Python law gives cond M(q)) */
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
                  46.97438065890091, -8.54468636235171, 131.22671271987562}, 150.0, 0.0};
    hil_law law = {.name = "lqr_dip.c", .compute = compute, .n_gains = N_STATES,
                   .gain_names = GAIN_NAMES, .get_gains = get_gains, .set_gains = set_gains,
                   .user = &state, .figures = figures, .sigma_floor = 1e-3};
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
