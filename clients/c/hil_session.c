/* libhil's session: hello -> welcome (or the plant's refusal), the description's checks, and
 * the clock sync (skipped when the plant reads this very clock: the welcome's clock_id). */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <stdlib.h>
#include <string.h>

#include <zmq.h>

/* The kernel's boot id: one per kernel, so one CLOCK_MONOTONIC ("" if unreadable). */
static void boot_id(char *dst, size_t size)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    dst[0] = '\0';
    if (f == NULL) return;
    if (fgets(dst, (int)size, f) == NULL) dst[0] = '\0';
    fclose(f);
    dst[strcspn(dst, "\r\n")] = '\0';
}

static int names_of(const msgpack_object *list, char names[][HIL_MAX_NAME], int limit)
{
    if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY) return -1;
    if ((int)list->via.array.size > limit) return (int)list->via.array.size;
    for (uint32_t i = 0; i < list->via.array.size; i++)
        hil_str(&list->via.array.ptr[i], names[i], HIL_MAX_NAME);
    return (int)list->via.array.size;
}

static int limits_of(hil_description *d, const msgpack_object *limits)
{
    if (limits == NULL || limits->type != MSGPACK_OBJECT_ARRAY
        || (int)limits->via.array.size != d->n_inputs)
        return -1;
    for (int i = 0; i < d->n_inputs; i++) {
        const msgpack_object *pair = &limits->via.array.ptr[i];
        if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2) return -1;
        for (int k = 0; k < 2; k++) {
            const msgpack_object *v = &pair->via.array.ptr[k];
            if (v->type != MSGPACK_OBJECT_FLOAT64 && v->type != MSGPACK_OBJECT_FLOAT32
                && v->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                && v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return -1;
        }
        d->input_low[i] = hil_num(&pair->via.array.ptr[0]);
        d->input_high[i] = hil_num(&pair->via.array.ptr[1]);
    }
    return 0;
}

static int is_number(const msgpack_object *o)
{
    return o != NULL && (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32
                         || o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                         || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
}

/* The welcome's description into c->desc; a refusal by this controller when it does not fit
 * (more states or inputs than the link carries, another transport or mode). */
static hil_status take_description(hil_client *c, const msgpack_object *map, char *clock_id,
                                   size_t clock_id_size)
{
    hil_description *d = &c->desc;
    const msgpack_object *mode = hil_map_get(map, "mode"), *o;
    char offered[32] = "zmq";
    hil_str(hil_map_get(map, "name"), d->name, sizeof d->name);
    hil_str(hil_map_get(map, "clock_id"), clock_id, clock_id_size);
    if ((o = hil_map_get(map, "transport")) != NULL) hil_str(o, offered, sizeof offered);
    if (strcmp(offered, c->transport) != 0)
        return hil_fail(c, HIL_ERR_REFUSED, "the plant serves run.transport %s, this controller "
                        "is set to %s: use the same config for both (transport_mismatch)",
                        offered, c->transport);
    if (mode == NULL || (!hil_str_is(mode, "lockstep") && !hil_str_is(mode, "realtime"))
        || !is_number(hil_map_get(map, "period_ns")) || !is_number(hil_map_get(map, "t0_ns")))
        return hil_fail(c, HIL_ERR_REFUSED, "the plant's welcome lacks mode, period_ns or "
                        "t0_ns: is it hil-plant of protocol %d? (bad_description)",
                        HIL_PROTOCOL_VERSION);
    d->lockstep = hil_str_is(mode, "lockstep");
    if (c->mode[0] && strcmp(c->mode, d->lockstep ? "lockstep" : "realtime") != 0)
        return hil_fail(c, HIL_ERR_REFUSED, "the plant runs %s, this controller was started "
                        "for %s: use the same config for both (mode_mismatch)",
                        d->lockstep ? "lockstep" : "realtime", c->mode);
    d->period_ns = hil_int(hil_map_get(map, "period_ns"));
    d->t0_ns = hil_int(hil_map_get(map, "t0_ns"));
    d->rate_hz = is_number(o = hil_map_get(map, "rate_hz")) ? hil_num(o) : 1e9 / (double)d->period_ns;
    d->duration_s = is_number(o = hil_map_get(map, "duration_s")) ? hil_num(o) : 0.0;
    d->safe_state = (o = hil_map_get(map, "safe_state")) && o->type == MSGPACK_OBJECT_BOOLEAN
                    && o->via.boolean;
    d->n_states = names_of(hil_map_get(map, "state_names"), d->state_names, HIL_MAX_STATES);
    d->n_inputs = names_of(hil_map_get(map, "input_names"), d->input_names, HIL_MAX_INPUTS);
    names_of(hil_map_get(map, "state_units"), d->state_units, HIL_MAX_STATES);
    names_of(hil_map_get(map, "input_units"), d->input_units, HIL_MAX_INPUTS);
    if (d->n_states < 1 || d->n_states > HIL_MAX_STATES)
        return hil_fail(c, HIL_ERR_REFUSED, "the plant %s has %d states; the link carries 1 .. "
                        "%d (too_many_states)", d->name, d->n_states, HIL_MAX_STATES);
    if (d->n_inputs < 1 || d->n_inputs > HIL_MAX_INPUTS || limits_of(d, hil_map_get(map, "input_limits")))
        return hil_fail(c, HIL_ERR_REFUSED, "the plant %s describes %d inputs without one "
                        "[low, high] each in input_limits; the link carries 1 .. %d "
                        "(bad_description)", d->name, d->n_inputs, HIL_MAX_INPUTS);
    if (strcmp(offered, "shm") == 0) {
        hil_status status = hil_shm_open(c, hil_map_get(map, "shm"));
        c->use_shm = status == HIL_OK;
        return status;
    }
    return HIL_OK;
}

/* The next frame on the socket into `frame` within `until_ns`; 1, or 0 at the deadline or a
 * stop (zmq_poll at most 100 ms at a time, so a stop is seen). */
static int recv_until(hil_client *c, zmq_msg_t *frame, int64_t until_ns)
{
    while (zmq_msg_recv(frame, c->sock, ZMQ_DONTWAIT) < 0) {
        zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
        int64_t remaining_ms = (until_ns - hil_now_ns() + 999999) / 1000000;
        if (hil_stop_requested() || remaining_ms <= 0) return 0;
        zmq_poll(&item, 1, (long)(remaining_ms < 100 ? remaining_ms : 100));
    }
    return 1;
}

/* Wait for the welcome (or a refusal); anything else before it is ignored. */
static hil_status welcome(hil_client *c, char *clock_id, size_t clock_id_size)
{
    int64_t give_up = hil_now_ns() + (int64_t)c->opt.connect_timeout_ms * 1000000;
    zmq_msg_t frame;
    hil_message m;
    hil_status status = HIL_ERR_UNREACHABLE;
    zmq_msg_init(&frame);
    hil_fail(c, status, "no answer from the plant at %s within %g s: is hil-plant running "
             "there?", c->endpoint, c->opt.connect_timeout_ms / 1e3);
    while (recv_until(c, &frame, give_up)) {
        if (hil_decode(&c->dec, zmq_msg_data(&frame), zmq_msg_size(&frame), &m) != HIL_DECODED) {
            c->session_rejected++;
        } else if (m.kind == HIL_WELCOME) {
            status = take_description(c, &m.field[1], clock_id, clock_id_size);
            break;
        } else if (m.kind == HIL_REFUSE) {
            char code[64], reason[300];
            hil_str(&m.field[0], code, sizeof code);
            hil_str(&m.field[1], reason, sizeof reason);
            status = hil_fail(c, HIL_ERR_REFUSED, "refused by the plant at %s: %s (%s)",
                              c->endpoint, reason, code);
            break;
        }
    }
    if (status == HIL_ERR_UNREACHABLE && hil_stop_requested())
        status = hil_fail(c, HIL_ERR_STOPPED, "stopped while waiting for the plant's answer");
    zmq_msg_close(&frame);
    return status;
}

/* Keep a frame that came during the clock sync for the loop's first drain. */
static void keep_early(hil_client *c, zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    char *copy;
    if (c->n_early >= HIL_MAX_EARLY || (copy = malloc(len ? len : 1)) == NULL) return;
    memcpy(copy, zmq_msg_data(frame), len);
    c->early[c->n_early].data = copy;
    c->early[c->n_early].len = len;
    c->n_early++;
}

/* One sync round trip: its round trip time, or -1 when no reply came in time. */
static int64_t sync_once(hil_client *c, int64_t *offset_ns)
{
    int64_t t1 = hil_now_ns(), give_up = t1 + HIL_SYNC_TIMEOUT_NS, rtt = -1;
    zmq_msg_t frame;
    hil_message m;
    zmq_msg_init(&frame);
    if (hil_encode_sync(&c->out, t1) != 0 || hil_send(c) != HIL_OK) return -1;
    while (recv_until(c, &frame, give_up)) {
        if (hil_decode(&c->dec, zmq_msg_data(&frame), zmq_msg_size(&frame), &m) != HIL_DECODED) {
            c->session_rejected++;
        } else if (m.kind != HIL_SYNC_REPLY) {
            keep_early(c, &frame);
        } else if (hil_int(&m.field[0]) == t1) {
            int64_t t3 = hil_now_ns();
            rtt = t3 - t1;
            *offset_ns = hil_int(&m.field[1]) - (t1 + (t3 - t1) / 2);
            break;
        }
    }
    zmq_msg_close(&frame);
    return rtt;
}

/* offset = t_plant - (t_sent + t_received) / 2 of the exchange with the shortest round trip
 * (NTP-style; its error is at most half that round trip). */
static void sync_clock(hil_client *c)
{
    for (int i = 0; i < HIL_SYNC_SAMPLES; i++) {
        int64_t offset = 0, rtt = sync_once(c, &offset);
        if (rtt < 0) break;
        if (c->sync_rtt_ns < 0 || rtt < c->sync_rtt_ns) {
            c->sync_rtt_ns = rtt;
            c->clock_offset_ns = offset;
        }
    }
    if (c->sync_rtt_ns < 0)
        fprintf(stderr, "libhil: the plant did not answer clock sync; assuming one shared "
                "clock\n");
}

hil_status hil_handshake(hil_client *c)
{
    char theirs[64], ours[64];
    hil_status status;
    if (c->handshaken) return HIL_OK;
    if (hil_encode_hello(&c->out, HIL_PROTOCOL_VERSION, c->client_name) != 0)
        return hil_fail(c, HIL_ERR_USAGE, "client_name is too long for a hello");
    if ((status = hil_send(c)) != HIL_OK) return status;
    if ((status = welcome(c, theirs, sizeof theirs)) != HIL_OK) {
        snprintf(c->end_reason, sizeof c->end_reason, "%s", c->error);
        if (status == HIL_ERR_REFUSED && strncmp(c->error, "refused by", 10) != 0)
            hil_bye(c, c->error); /* we refused the plant's description: it may go safe */
        return status;
    }
    boot_id(ours, sizeof ours);
    c->same_clock = ours[0] != '\0' && strcmp(ours, theirs) == 0;
    if (!c->same_clock) sync_clock(c);
    c->desc.t0_ns -= c->clock_offset_ns; /* the plant's first tick, our clock */
    c->last_rx_ns = hil_now_ns();
    c->handshaken = 1;
    if (c->desc.safe_state) {
        fprintf(stderr, "libhil: the plant is latched in its safe state%s\n",
                c->opt.clear_on_attach ? "; clearing it (clear_on_attach)" : " (hil clear)");
        if (c->opt.clear_on_attach && hil_encode_clear(&c->out) == 0) hil_send(c);
    }
    return HIL_OK;
}

const hil_description *hil_get_description(const hil_client *c)
{
    return c->handshaken ? &c->desc : NULL;
}
