/* libhil's loops: lockstep (answer each state as it comes) and realtime (absolute deadlines
 * aligned to the plant's ticks, overruns skipped and counted), the answer to a state (law,
 * output check, control), the fixed-rate schedule, and how a run ends. */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* The share of a period kept free before the plant's next tick (as hil-controller's). */
#define GUARD 0.15

void hil_rate_init(hil_rate *r, int64_t first_deadline_ns, int64_t period_ns)
{
    r->t0_ns = first_deadline_ns;
    r->period_ns = period_ns > 0 ? period_ns : 1;
    r->index = 0;
    r->skipped = 0;
}

int64_t hil_rate_deadline(const hil_rate *r)
{
    return r->t0_ns + r->index * r->period_ns;
}

void hil_rate_sleep(const hil_rate *r, int64_t early_ns)
{
    int64_t wake = hil_rate_deadline(r) - early_ns;
    struct timespec ts = {(time_t)(wake / 1000000000LL), (long)(wake % 1000000000LL)};
    if (wake <= hil_now_ns()) return;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        if (hil_stop_requested()) return;
}

int64_t hil_rate_advance(hil_rate *r, int64_t now_ns)
{
    int64_t late, skipped = 0;
    r->index++;
    late = now_ns - hil_rate_deadline(r);
    if (late >= r->period_ns) {
        skipped = late / r->period_ns;
        r->index += skipped;
        r->skipped += skipped;
    }
    return skipped;
}

hil_status hil_abort(hil_client *c, hil_status status, const char *reason)
{
    hil_fail(c, status, "%s", reason);
    snprintf(c->end_reason, sizeof c->end_reason, "%s", reason);
    hil_bye(c, reason);
    return status;
}

void hil_bye(hil_client *c, const char *reason)
{
    if (c->bye_sent) return;
    c->bye_sent = 1;
    if (hil_encode_bye(&c->out, reason) == 0) hil_send(c);
}

/* Has the run ended: the plant's bye, or a stop (then our bye)? The status it ended with. */
static hil_status ended(hil_client *c)
{
    if (c->bye_received) {
        if (strncmp(c->bye_reason, "replaced", 8) == 0) {
            c->bye_sent = 1; /* the plant is another controller's now: no bye of ours */
            return hil_fail(c, HIL_ERR_REFUSED, "replaced by another controller: %s",
                            c->bye_reason);
        }
        snprintf(c->end_reason, sizeof c->end_reason, "plant ended the run: %s",
                 c->bye_reason);
        return HIL_ENDED;
    }
    if (hil_stop_requested()) {
        strcpy(c->end_reason, "stopped");
        hil_bye(c, c->end_reason); /* the plant goes safe on it */
        return hil_fail(c, HIL_ERR_STOPPED, "stopped");
    }
    return HIL_OK;
}

hil_status hil_wait_state(hil_client *c, int64_t deadline_ns, const hil_law *law,
                          hil_state *s)
{
    hil_status status;
    if (!c->handshaken) return hil_fail(c, HIL_ERR_USAGE, "hil_wait_state before the handshake");
    for (;;) {
        if (hil_pump(c, law, 1) && c->newest.seq > c->answered_seq) {
            *s = c->newest;
            return HIL_OK;
        }
        if ((status = ended(c)) != HIL_OK) return status;
        if (hil_now_ns() >= deadline_ns)
            return hil_fail(c, HIL_ERR_UNREACHABLE, "no new state from %s in time", c->endpoint);
        hil_poll(c, deadline_ns);
    }
}

hil_status hil_send_control(hil_client *c, const hil_state *s, const double *u,
                            int64_t compute_ns)
{
    int n = c->desc.n_inputs;
    for (int i = 0; i < n; i++)
        if (!isfinite(u[i]))
            return hil_fail(c, HIL_ERR_LAW, "control law %s returned u[%d] = %g: every input "
                            "must be finite", c->law && c->law->name ? c->law->name : "?", i, u[i]);
    if (s->seq > c->answered_seq) c->answered_seq = s->seq;
    c->controls_sent++;
    c->last_send_ns = hil_now_ns();
    if (c->use_shm)
        return hil_shm_write_control(c, c->controls_sent, s->seq, u,
                                     s->rx_ns + c->clock_offset_ns,
                                     c->last_send_ns + c->clock_offset_ns, compute_ns);
    if (hil_encode_control(&c->out, c->controls_sent, s->seq, u, n,
                           s->rx_ns + c->clock_offset_ns, c->last_send_ns + c->clock_offset_ns,
                           compute_ns) != 0)
        return hil_fail(c, HIL_ERR_USAGE, "a control of %d inputs does not encode", n);
    return hil_send(c);
}

/* Call the law on the newest state and send its answer. */
static hil_status answer(hil_client *c, const hil_law *law)
{
    hil_state *s = &c->newest;
    double u[HIL_MAX_INPUTS] = {0};
    int64_t c0 = hil_now_ns(), c1;
    int rc = law->compute(law->user, s->x, s->n_states, s->t_s, u, c->desc.n_inputs);
    c1 = hil_now_ns();
    if (rc != 0)
        return hil_fail(c, HIL_ERR_LAW, "control law %s returned %d on state %lld: the run "
                        "ends, the plant was told to go safe", law->name, rc, (long long)s->seq);
    hil_status status;
    double sigma = NAN, condition = NAN;
    hil_hist_record(&c->hist[FIG_COMPUTE], c1 - c0);
    if ((status = hil_send_control(c, s, u, c1 - c0)) != HIL_OK) return status;
    if (law->figures != NULL) law->figures(law->user, &sigma, &condition);
    hil_stability_update(&c->stability, sigma, u, condition); /* after the send */
    hil_record_row(c, s, u, c1 - c0, sigma, condition);
    return HIL_OK;
}

static int fresh(const hil_client *c)
{
    return c->newest.seq > c->answered_seq;
}

static hil_status silent(hil_client *c)
{
    snprintf(c->end_reason, sizeof c->end_reason, "plant silent for %d ms at %s",
             c->opt.plant_timeout_ms, c->endpoint);
    return hil_fail(c, HIL_ERR_UNREACHABLE, "%s", c->end_reason);
}

static hil_status run_lockstep(hil_client *c, const hil_law *law)
{
    int64_t timeout_ns = (int64_t)c->opt.plant_timeout_ms * 1000000;
    for (;;) {
        hil_state s;
        hil_status status = hil_wait_state(c, c->last_rx_ns + timeout_ns, law, &s);
        if (status == HIL_ERR_UNREACHABLE) return silent(c);
        if (status != HIL_OK) return status;
        if ((status = answer(c, law)) != HIL_OK) return status;
    }
}

/* The first deadline: the plant's first tick + phase_offset of a period, or, attached
 * mid-run, the next one on that grid. */
static int64_t first_deadline(const hil_client *c)
{
    int64_t period = c->desc.period_ns, now = hil_now_ns();
    int64_t first = c->desc.t0_ns + (int64_t)llround(c->opt.phase_offset * (double)period);
    if (now > first) first += ((now - first + period - 1) / period) * period;
    return first;
}

static void overrun(hil_client *c, int64_t skipped, int64_t *last_log_ns)
{
    int64_t now = hil_now_ns();
    c->overruns += skipped;
    if (now - *last_log_ns >= 1000000000LL) { /* at most once a second */
        *last_log_ns = now;
        fprintf(stderr, "libhil: overrun: %lld cycles skipped (%lld in all)\n",
                (long long)skipped, (long long)c->overruns);
    }
}

/* The state is late: wait for it, but no later than GUARD of the period before the plant's
 * next tick (answering late beats not answering). */
static void wait_late_state(hil_client *c, const hil_law *law, int64_t until_ns)
{
    while (!fresh(c) && !c->bye_received && !hil_stop_requested() && hil_now_ns() < until_ns) {
        hil_wait_fd(c, until_ns);
        hil_pump(c, law, 0);
    }
    if (fresh(c)) c->late_states++;
}

/* Wait for `deadline_ns`, taking messages as they come (states are timestamped on arrival,
 * older ones dropped and counted); sleep on the socket, then spin the last `spin_ns`. */
static void wait_deadline(hil_client *c, const hil_law *law, int64_t deadline_ns,
                          int64_t spin_ns)
{
    for (;;) {
        int64_t now;
        hil_pump(c, law, 0);
        now = hil_now_ns();
        if (now >= deadline_ns || hil_stop_requested()) return;
        if (deadline_ns - now > spin_ns) hil_wait_fd(c, deadline_ns - spin_ns);
    }
}

static hil_status run_realtime(hil_client *c, const hil_law *law)
{
    int64_t period = c->desc.period_ns, spin_ns = (int64_t)c->opt.spin_us * 1000;
    int64_t late_ns = llround((1.0 - c->opt.phase_offset - GUARD) * (double)period);
    int64_t timeout_ns = (int64_t)c->opt.plant_timeout_ms * 1000000, last_log_ns = 0;
    hil_rate rate;
    hil_rate_init(&rate, first_deadline(c), period);
    if (c->last_rx_ns < c->desc.t0_ns) c->last_rx_ns = c->desc.t0_ns; /* silence from t0 */
    for (;;) {
        int64_t deadline = hil_rate_deadline(&rate), now, skipped;
        hil_status status;
        wait_deadline(c, law, deadline, spin_ns);
        now = hil_now_ns();
        c->lateness_ns = now - deadline;
        hil_hist_record(&c->hist[FIG_LATENESS], now - deadline);
        if (!fresh(c)) wait_late_state(c, law, deadline + late_ns);
        if (fresh(c)) {
            if ((status = answer(c, law)) != HIL_OK) return status;
        } else {
            c->no_new_state++;
        }
        if ((status = ended(c)) != HIL_OK) return status;
        if (now - c->last_rx_ns > timeout_ns) return silent(c);
        if ((skipped = hil_rate_advance(&rate, hil_now_ns())) > 0)
            overrun(c, skipped, &last_log_ns);
    }
}

static hil_status check_law(hil_client *c, const hil_law *law)
{
    if (law == NULL || law->compute == NULL)
        return hil_fail(c, HIL_ERR_USAGE, "hil_run needs a law with a compute function");
    if (law->n_gains < 0 || law->n_gains > HIL_MAX_GAINS
        || (law->n_gains > 0 && (law->gain_names == NULL || law->get_gains == NULL)))
        return hil_fail(c, HIL_ERR_USAGE, "law %s: n_gains must be 0 .. %d, with gain_names "
                        "and get_gains when > 0; got %d", law->name ? law->name : "?",
                        HIL_MAX_GAINS, law->n_gains);
    return HIL_OK;
}

hil_status hil_run(hil_client *c, const hil_law *law)
{
    hil_status status = check_law(c, law);
    if (status != HIL_OK) return status;
    c->law = law;
    if ((status = hil_handshake(c)) != HIL_OK) {
        snprintf(c->end_reason, sizeof c->end_reason, "%s", c->error);
        return status;
    }
    if (hil_stability_init(&c->stability, &c->desc, c->opt.slew_limit_per_s,
                           law->sigma_floor) != 0)
        return hil_abort(c, HIL_ERR_SYSTEM, "out of memory for the stability monitors");
    if (c->opt.record && c->out_dir[0])
        hil_record_open(c, law->name != NULL ? law->name : c->client_name, law->sigma_floor);
    strcpy(c->end_reason, "running");
    status = c->desc.lockstep ? run_lockstep(c, law) : run_realtime(c, law);
    if (status == HIL_ERR_LAW || status == HIL_ERR_SYSTEM || status == HIL_ERR_USAGE
        || status == HIL_ERR_REFUSED)
        snprintf(c->end_reason, sizeof c->end_reason, "%s", c->error);
    hil_bye(c, c->end_reason); /* once, and never after a replacement */
    return status;
}
