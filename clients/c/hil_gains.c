/* libhil's gains relay: `hil gains`, relayed by the plant, answered between two controls
 * through the law's get_gains / set_gains; every request to set gains is kept as an event for
 * controller.json (applied or not), as hil-controller does (controller_client/gains_relay.py). */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <math.h>
#include <string.h>

static const char *law_name(const hil_law *law)
{
    return law != NULL && law->name != NULL ? law->name : "c_law";
}

static int find_gain(const hil_law *law, const msgpack_object *name)
{
    for (int i = 0; i < law->n_gains; i++)
        if (hil_str_is(name, law->gain_names[i])) return i;
    return -1;
}

/* The full gain vector a request asks for, into `now` (starting from `old`): `values` alone,
 * or `old` with the named gains replaced. 0, or -1 with `detail` saying what is wrong. */
static int requested(const hil_law *law, const msgpack_object *names,
                     const msgpack_object *values, double *now, char *detail, size_t size)
{
    uint32_t n = values->via.array.size, k = names->via.array.size;
    if (k == 0 && (int)n != law->n_gains) {
        snprintf(detail, size, "%s has %d gains, %u values given", law_name(law), law->n_gains, n);
        return -1;
    }
    if (k != 0 && k != n) {
        snprintf(detail, size, "%u names for %u values", k, n);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *v = &values->via.array.ptr[i];
        int at = k == 0 ? (int)i : find_gain(law, &names->via.array.ptr[i]);
        if (at < 0) {
            char name[64];
            size_t used;
            hil_str(&names->via.array.ptr[i], name, sizeof name);
            snprintf(detail, size, "no gain named '%s'; the law's gains:", name);
            for (int g = 0; g < law->n_gains && (used = strlen(detail)) < size; g++)
                snprintf(detail + used, size - used, "%s %s", g ? "," : "", law->gain_names[g]);
            return -1;
        }
        if (v->type != MSGPACK_OBJECT_FLOAT64 && v->type != MSGPACK_OBJECT_FLOAT32
            && v->type != MSGPACK_OBJECT_POSITIVE_INTEGER
            && v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            snprintf(detail, size, "values[%u] is not a number", i);
            return -1;
        }
        now[at] = hil_num(v);
        if (!isfinite(now[at])) {
            snprintf(detail, size, "values[%u] is not finite", i);
            return -1;
        }
    }
    return 0;
}

/* (applied, detail, the gains now in `now`) for a gains_set. */
static int apply(const hil_law *law, const hil_message *m, const double *old, double *now,
                 char *detail, size_t size)
{
    double wanted[HIL_MAX_GAINS];
    memcpy(now, old, sizeof(double) * (size_t)law->n_gains);
    memcpy(wanted, old, sizeof(double) * (size_t)law->n_gains);
    if (law->set_gains == NULL) {
        snprintf(detail, size, "%s cannot change its gains while running (no set_gains)",
                 law_name(law));
        return 0;
    }
    if (requested(law, &m->field[2], &m->field[3], wanted, detail, size) != 0) return 0;
    detail[0] = '\0';
    if (law->set_gains(law->user, wanted, detail, size) != 0) {
        if (detail[0] == '\0') snprintf(detail, size, "%s refused the gains", law_name(law));
        return 0;
    }
    law->get_gains(law->user, now);
    snprintf(detail, size, "applied before the next control");
    return 1;
}

static void keep_event(hil_client *c, const hil_message *m, const double *old,
                       const double *now, int applied, const char *detail)
{
    hil_gain_event *e;
    int n = c->law != NULL ? c->law->n_gains : 0;
    if (c->n_events >= HIL_MAX_EVENTS) {
        c->events_dropped++;
        return;
    }
    e = &c->events[c->n_events++];
    e->time_s = c->desc.lockstep
                    ? (double)(c->answered_seq + 1) * (double)c->desc.period_ns * 1e-9
                    : (double)(hil_now_ns() - c->desc.t0_ns) * 1e-9;
    hil_str(&m->field[1], e->who, sizeof e->who);
    memcpy(e->old, old, sizeof(double) * (size_t)n);
    memcpy(e->now, now, sizeof(double) * (size_t)n);
    e->applied = applied;
    snprintf(e->detail, sizeof e->detail, "%s", detail);
    fprintf(stderr, "libhil: gains %s by %s: %s\n", applied ? "changed" : "refused", e->who,
            detail);
}

void hil_answer_gains(hil_client *c, const hil_law *law, const hil_message *m)
{
    static const hil_law none = {.name = "c_law"};
    double old[HIL_MAX_GAINS], now[HIL_MAX_GAINS];
    char detail[160] = "current gains";
    int ok = 1;
    if (law == NULL) law = &none;
    if (law->n_gains > 0) law->get_gains(law->user, old);
    memcpy(now, old, sizeof(double) * (size_t)law->n_gains);
    if (m->kind == HIL_GAINS_SET) {
        ok = apply(law, m, old, now, detail, sizeof detail);
        keep_event(c, m, old, now, ok, detail);
    }
    if (hil_encode_gains_reply(&c->out, hil_int(&m->field[0]), ok, detail, law->gain_names,
                               law->n_gains, now, law->n_gains, old, law->n_gains) == 0)
        hil_send(c);
}
