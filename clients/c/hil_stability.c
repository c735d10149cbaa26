/* libhil's stability monitors, as hil/runtime/stability.py's (the `stability` section of
 * controller.json, which gates.stability_min / stability_max turn into gates): the Lyapunov
 * decrease of V = sigma^2 / 2 of the law's sigma, the actuator's saturation duty and slew
 * hits, the mass matrix's condition number and the surface |sigma|, over the run and over a
 * window of the last `window` steps (one second of the plant's rate). A law that gives no
 * sigma (NaN) is never evaluated: its decrease ratio is 1, as for any such Python law. */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 1e-9

int hil_stability_init(hil_stability *s, const hil_description *d, double slew_per_s,
                       double sigma_floor)
{
    int window = (int)llround(d->rate_hz);
    memset(s, 0, sizeof *s);
    s->window = window < 1 ? 1 : window;
    s->v_floor = 0.5 * sigma_floor * sigma_floor;
    s->v_prev = NAN;
    s->slew_per_step = slew_per_s / d->rate_hz;
    s->max_condition = -INFINITY;
    s->n_inputs = d->n_inputs;
    for (int i = 0; i < d->n_inputs; i++) {
        s->low[i] = d->input_low[i] + MARGIN * fabs(d->input_low[i]);
        s->high[i] = d->input_high[i] - MARGIN * fabs(d->input_high[i]);
        s->prev_u[i] = NAN;
    }
    s->lyapunov = malloc((size_t)s->window);
    s->saturated = malloc((size_t)s->window);
    s->slewed = malloc((size_t)s->window);
    s->condition = malloc(sizeof(double) * (size_t)s->window);
    s->surface = malloc(sizeof(double) * (size_t)s->window);
    return s->lyapunov && s->saturated && s->slewed && s->condition && s->surface ? 0 : -1;
}

void hil_stability_free(hil_stability *s)
{
    free(s->lyapunov);
    free(s->saturated);
    free(s->slewed);
    free(s->condition);
    free(s->surface);
    memset(s, 0, sizeof *s);
}

static void update_lyapunov(hil_stability *s, double sigma, int at)
{
    double v = 0.5 * sigma * sigma;
    if (s->v_prev > s->v_floor) { /* false for the first step (NaN) */
        int down = v < s->v_prev;
        s->evaluated++;
        s->decreased += down;
        s->lyapunov[at] = (signed char)down;
    } else {
        s->lyapunov[at] = -1; /* not evaluated */
    }
    s->v_prev = v;
}

static void update_actuator(hil_stability *s, const double *u, int at)
{
    int saturated = 0;
    double change = 0.0;
    for (int i = 0; i < s->n_inputs; i++) {
        double d = fabs(u[i] - s->prev_u[i]); /* NaN on the first step: no slew */
        saturated |= !(s->low[i] < u[i] && u[i] < s->high[i]);
        if (d > change) change = d;
        s->prev_u[i] = u[i];
    }
    s->saturated_steps += saturated;
    s->saturated[at] = (signed char)saturated;
    s->slew_hits += change > s->slew_per_step;
    s->slewed[at] = (signed char)(change > s->slew_per_step);
    if (change > s->max_change) s->max_change = change;
}

void hil_stability_update(hil_stability *s, double sigma, const double *u, double condition)
{
    int at;
    if (s->window == 0) return;
    at = (int)(s->steps % s->window);
    update_lyapunov(s, sigma, at);
    update_actuator(s, u, at);
    s->sum_condition += condition;
    if (condition > s->max_condition) s->max_condition = condition;
    s->condition[at] = condition;
    if (fabs(sigma) > s->max_surface) s->max_surface = fabs(sigma);
    s->surface[at] = fabs(sigma);
    s->steps++;
}

/* Over the window's doubles: the largest (NaN if any is NaN, as NumPy's max) and the RMS. */
static void window_figures(const double *v, int n, double *max, double *rms)
{
    double top = -INFINITY, squares = 0.0;
    int has_nan = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) has_nan = 1;
        else if (v[i] > top) top = v[i];
        squares += v[i] * v[i];
    }
    *max = has_nan || n == 0 ? NAN : top;
    *rms = n ? sqrt(squares / n) : NAN;
}

static void counts(const signed char *v, int n, int *positive, int *non_negative)
{
    *positive = *non_negative = 0;
    for (int i = 0; i < n; i++) {
        *positive += v[i] > 0;
        *non_negative += v[i] >= 0;
    }
}

void hil_stability_figures(const hil_stability *s, hil_stability_figures_t *out)
{
    int n = (int)(s->steps < s->window ? s->steps : s->window), down, evaluated, sat, any;
    double rms;
    int last = (int)((s->steps + s->window - 1) % (s->window ? s->window : 1));
    memset(out, 0, sizeof *out);
    counts(s->lyapunov, n, &down, &evaluated);
    out->decrease_ratio = s->evaluated ? (double)s->decreased / (double)s->evaluated : 1.0;
    out->window_decrease_ratio = evaluated ? (double)down / evaluated : 1.0;
    out->v_last = isnan(s->v_prev) ? 0.0 : s->v_prev;
    counts(s->saturated, n, &sat, &any);
    out->saturation_duty = s->steps ? (double)s->saturated_steps / (double)s->steps : 0.0;
    out->window_saturation_duty = n ? (double)sat / n : 0.0;
    counts(s->slewed, n, &out->window_slew_hits, &any);
    window_figures(s->condition, n, &out->condition_window_max, &rms);
    window_figures(s->surface, n, &out->surface_window_max, &out->surface_window_rms);
    out->condition_last = n ? s->condition[last] : NAN;
    out->condition_mean = s->steps ? s->sum_condition / (double)s->steps : NAN;
    out->surface_last = n ? s->surface[last] : NAN;
}
