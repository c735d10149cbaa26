/* libhil's client: options, the socket, stop signals, and the message pump (receive, decode,
 * dispatch: states to the intake, gain requests to the law, the plant's bye and faults). */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include <zmq.h>

#define HWM 100
#define MAX_MSG_BYTES (64 * 1024)
#define MAX_DRAIN 256
#define FAULT_LOG_EVERY_NS 1000000000LL

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signum)
{
    stop_signal = signum;
}

int hil_stop_requested(void) { return stop_signal != 0; }
int hil_stop_signal(void) { return (int)stop_signal; }

int64_t hil_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void hil_options_init(hil_options *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = "tcp://127.0.0.1:5600";
    o->client_name = "hil-c";
    o->transport = "zmq";
    o->connect_timeout_ms = 5000;
    o->plant_timeout_ms = 500;
    o->phase_offset = 0.3;
    o->spin_us = 150;
    o->slew_limit_per_s = 50000.0;
    o->cpu = -1;
    o->record = 1;
}

static int env_number(const char *name, double low, double high, double *value, char *err,
                      size_t err_size)
{
    const char *text = getenv(name);
    char *end;
    double v;
    if (text == NULL || *text == '\0') return 0;
    errno = 0;
    v = strtod(text, &end);
    if (errno || *end != '\0' || !(v >= low && v <= high)) {
        snprintf(err, err_size, "%s=%s: must be a number in [%g, %g]", name, text, low, high);
        return -1;
    }
    *value = v;
    return 0;
}

hil_status hil_options_from_env(hil_options *o, char *err, size_t err_size)
{
    const char *text;
    double phase = o->phase_offset, spin = o->spin_us, connect_s = o->connect_timeout_ms / 1e3;
    double silent_ms = o->plant_timeout_ms, slew = o->slew_limit_per_s;
    double priority = o->sched_priority, lock = o->lock_memory, cpu = o->cpu, record = o->record;
    double clear = o->clear_on_attach;
    if ((text = getenv("HIL_ENDPOINT")) && *text) o->endpoint = text;
    if ((text = getenv("HIL_OUT")) && *text) o->out_dir = text;
    if ((text = getenv("HIL_RUN_ID")) && *text) o->run_id = text;
    if ((text = getenv("HIL_TRANSPORT")) && *text) o->transport = text;
    if ((text = getenv("HIL_MODE")) && *text) o->mode = text;
    if ((text = getenv("HIL_KEYS_DIR")) && *text) {
        snprintf(err, err_size, "HIL_KEYS_DIR=%s: the plant wants CURVE (security.curve), "
                 "which libhil does not speak yet; run without security.curve, on loopback "
                 "or a lab network you trust", text);
        return HIL_ERR_USAGE;
    }
    if (env_number("HIL_PHASE_OFFSET", 0, 0.85, &phase, err, err_size)
        || env_number("HIL_SPIN_US", 0, 10000, &spin, err, err_size)
        || env_number("HIL_CONNECT_TIMEOUT_S", 0.01, 3600, &connect_s, err, err_size)
        || env_number("HIL_PLANT_TIMEOUT_MS", 1, 600000, &silent_ms, err, err_size)
        || env_number("HIL_SLEW_LIMIT_PER_S", 1e-3, 1e8, &slew, err, err_size)
        || env_number("HIL_SCHED_PRIORITY", 0, 99, &priority, err, err_size)
        || env_number("HIL_LOCK_MEMORY", 0, 1, &lock, err, err_size)
        || env_number("HIL_CPU", -1, 1023, &cpu, err, err_size)
        || env_number("HIL_RECORD", 0, 1, &record, err, err_size)
        || env_number("HIL_CLEAR_ON_ATTACH", 0, 1, &clear, err, err_size))
        return HIL_ERR_USAGE;
    o->slew_limit_per_s = slew;
    o->sched_priority = (int)priority;
    o->lock_memory = (int)lock;
    o->cpu = (int)cpu;
    o->record = (int)record;
    o->clear_on_attach = (int)clear;
    o->phase_offset = phase;
    o->spin_us = (int)spin;
    o->connect_timeout_ms = (int)(connect_s * 1e3 + 0.5);
    o->plant_timeout_ms = (int)(silent_ms + 0.5);
    return HIL_OK;
}

static int copy_option(char *dst, size_t size, const char *value, const char *name, char *err,
                       size_t err_size)
{
    if (value == NULL) value = "";
    if (strlen(value) >= size) {
        snprintf(err, err_size, "%s is %zu characters long; at most %zu", name, strlen(value),
                 size - 1);
        return -1;
    }
    strcpy(dst, value);
    return 0;
}

/* The options, checked and copied into `c`; -1 with `err` naming the one that is wrong. */
static int take_options(hil_client *c, const hil_options *o, char *err, size_t n)
{
    if (copy_option(c->endpoint, sizeof c->endpoint, o->endpoint, "endpoint", err, n)
        || copy_option(c->client_name, sizeof c->client_name, o->client_name, "client_name", err, n)
        || copy_option(c->out_dir, sizeof c->out_dir, o->out_dir, "out_dir", err, n)
        || copy_option(c->run_id, sizeof c->run_id, o->run_id, "run_id", err, n)
        || copy_option(c->transport, sizeof c->transport, o->transport, "transport", err, n)
        || copy_option(c->mode, sizeof c->mode, o->mode, "mode", err, n))
        return -1;
    if (strcmp(c->transport, "zmq") != 0 && strcmp(c->transport, "shm") != 0) {
        snprintf(err, n, "transport %s: must be zmq or shm (run.transport)", c->transport);
        return -1;
    }
    if (c->mode[0] && strcmp(c->mode, "realtime") != 0 && strcmp(c->mode, "lockstep") != 0) {
        snprintf(err, n, "mode %s: must be realtime or lockstep (or unset: the plant's)", c->mode);
        return -1;
    }
    if (o->sched_priority < 0 || o->sched_priority > 99 || o->cpu < -1) {
        snprintf(err, n, "sched_priority must be 0 (not asked) .. 99 and cpu -1 (not asked) or "
                 "a CPU number; got %d, %d", o->sched_priority, o->cpu);
        return -1;
    }
    if (!(o->phase_offset >= 0 && o->phase_offset < 0.85) || o->spin_us < 0
        || o->connect_timeout_ms <= 0 || o->plant_timeout_ms <= 0 || !(o->slew_limit_per_s > 0)) {
        snprintf(err, n, "phase_offset must be in [0, 0.85), spin_us >= 0, connect_timeout_ms, "
                 "plant_timeout_ms and slew_limit_per_s > 0; got %g, %d, %d, %d, %g",
                 o->phase_offset, o->spin_us, o->connect_timeout_ms, o->plant_timeout_ms,
                 o->slew_limit_per_s);
        return -1;
    }
    c->opt = *o;
    return 0;
}

static int open_socket(hil_client *c, char *err, size_t n)
{
    int hwm = HWM, linger = 0;
    int64_t max_bytes = MAX_MSG_BYTES;
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (c->sock == NULL
        || zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger)
        || zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm)
        || zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max_bytes, sizeof max_bytes)) {
        snprintf(err, n, "cannot make a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        snprintf(err, n, "endpoint %s: %s (give a ZeroMQ endpoint such as "
                 "tcp://127.0.0.1:5600)", c->endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: a sleep ends at the signal */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

hil_client *hil_open(const hil_options *o, char *err, size_t err_size)
{
    hil_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_size, "out of memory for a client (%zu bytes)", sizeof *c);
        return NULL;
    }
    if (take_options(c, o, err, err_size) != 0) {
        hil_close(c);
        return NULL;
    }
    if (hil_decoder_init(&c->dec) != 0) {
        snprintf(err, err_size, "out of memory for the decoder");
        hil_close(c);
        return NULL;
    }
    c->decoder_ready = 1;
    hil_realtime_before_socket(c);
    if (open_socket(c, err, err_size) != 0) {
        hil_close(c);
        return NULL;
    }
    hil_realtime_after_socket(c);
    c->answered_seq = -1;
    c->newest.seq = -1;
    c->sync_rtt_ns = -1;
    c->last_fault_log_ns = -FAULT_LOG_EVERY_NS;
    strcpy(c->end_reason, "not started");
    c->wall_start_ns = hil_now_ns();
    c->cpu_start_ns = cpu_ns();
    install_stop_signals();
    return c;
}

void hil_close(hil_client *c)
{
    if (c == NULL) return;
    for (int i = c->early_next; i < c->n_early; i++) free(c->early[i].data);
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    if (c->decoder_ready) hil_decoder_destroy(&c->dec);
    hil_record_close(c); /* if hil_finish did not: the rows kept, the file closed */
    hil_stability_free(&c->stability);
    hil_shm_close(&c->shm);
    free(c);
}

const char *hil_error(const hil_client *c) { return c->error; }

void hil_request_stop(hil_client *c)
{
    (void)c;
    stop_signal = -1;
}

hil_status hil_fail(hil_client *c, hil_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, args);
    va_end(args);
    return status;
}

/* Send c->out without blocking: a full queue drops it (only the newest matters). */
hil_status hil_send(hil_client *c)
{
    if (c->out.overflow)
        return hil_fail(c, HIL_ERR_USAGE, "a message over %d bytes: shorten its text",
                        HIL_MAX_MESSAGE_BYTES);
    if (zmq_send(c->sock, c->out.data, c->out.len, ZMQ_DONTWAIT) >= 0) return HIL_OK;
    if (zmq_errno() != EAGAIN)
        return hil_fail(c, HIL_ERR_SYSTEM, "send to %s: %s", c->endpoint,
                        zmq_strerror(zmq_errno()));
    c->sends_dropped++; /* the queue to the plant is full (or not connected yet) */
    return HIL_OK;
}

/* The next message waiting (the early ones first) into `m`; 1, or 0 when none waits, -1 when
 * one was rejected (counted). */
static int next_message(hil_client *c, zmq_msg_t *frame, hil_message *m)
{
    const char *data;
    size_t len;
    if (c->early_next < c->n_early) {
        hil_frame *f = &c->early[c->early_next++];
        hil_rejection r = hil_decode(&c->dec, f->data, f->len, m);
        free(f->data);
        f->data = NULL;
        if (c->early_next == c->n_early) c->early_next = c->n_early = 0;
        return r == HIL_DECODED ? 1 : (c->rejected++, -1);
    }
    if (zmq_msg_recv(frame, c->sock, ZMQ_DONTWAIT) < 0) return 0;
    data = zmq_msg_data(frame);
    len = zmq_msg_size(frame);
    if (zmq_msg_more(frame)) { /* one frame per message: a multipart one is `malformed` */
        zmq_msg_t part;
        zmq_msg_init(&part);
        while (zmq_msg_more(frame) && zmq_msg_recv(&part, c->sock, ZMQ_DONTWAIT) >= 0
               && zmq_msg_more(&part))
            ;
        zmq_msg_close(&part);
        c->rejected++;
        return -1;
    }
    if (hil_decode(&c->dec, data, len, m) != HIL_DECODED) {
        c->rejected++;
        return -1;
    }
    return 1;
}

/* A state into the intake (its stamp on the plant's clock): the newest kept, the others
 * counted; the final state kept, not to be answered. */
void hil_intake(hil_client *c, int64_t seq, int64_t plant_t_ns, int64_t flags, const double *x,
                int n, int64_t now)
{
    hil_state *s = &c->newest;
    c->last_rx_ns = now;
    if (seq <= s->seq) {
        c->duplicates++;
        return;
    }
    c->received++;
    if (s->seq > c->answered_seq) c->dropped++;
    s->seq = seq;
    s->t_ns = plant_t_ns - c->clock_offset_ns;
    s->rx_ns = now;
    s->flags = (uint32_t)flags;
    s->n_states = n;
    memcpy(s->x, x, sizeof(double) * (size_t)n);
    s->t_s = c->desc.lockstep ? (double)seq * (double)c->desc.period_ns * 1e-9
                              : (double)(s->t_ns - c->desc.t0_ns) * 1e-9;
    if ((s->flags & HIL_FLAG_SAFE) && !c->plant_safe) {
        c->safe_latches++;
        fprintf(stderr, "libhil: the plant holds its safe state: controls are ignored until a "
                "clear (hil clear); state %lld\n", (long long)seq);
    }
    c->while_safe += (s->flags & HIL_FLAG_SAFE) != 0;
    c->plant_safe = (s->flags & HIL_FLAG_SAFE) != 0;
    hil_hist_record(&c->hist[FIG_STATE_TO_CONTROLLER], now - s->t_ns);
    if (s->flags & HIL_FLAG_FINAL) { /* the run's last state: kept, not to be answered */
        c->n_final = n;
        memcpy(c->final_state, x, sizeof(double) * (size_t)n);
        c->answered_seq = seq;
    }
}

static void take_state(hil_client *c, const hil_message *m, int64_t now)
{
    const msgpack_object *list = &m->field[2];
    double x[HIL_MAX_STATES];
    int n = (int)list->via.array.size;
    for (int i = 0; i < n; i++) x[i] = hil_num(&list->via.array.ptr[i]);
    hil_intake(c, hil_int(&m->field[0]), hil_int(&m->field[1]), hil_int(&m->field[3]), x, n, now);
}

/* The shared-memory slot's newest state, if one is new. */
static void take_shared_state(hil_client *c)
{
    int64_t seq, t_ns, flags;
    double x[HIL_MAX_STATES];
    if (hil_shm_take(c, &seq, &t_ns, &flags, x))
        hil_intake(c, seq, t_ns, flags, x, c->desc.n_states, hil_now_ns());
}

/* A `fault` (another peer's e-stop) or an `error` (the plant rejected one of our messages):
 * logged at most once a second. */
static void on_notice(hil_client *c, const hil_message *m, int64_t now)
{
    char code[64], detail[300];
    if (m->kind == HIL_ERROR) c->plant_errors++;
    if (now - c->last_fault_log_ns < FAULT_LOG_EVERY_NS) return;
    c->last_fault_log_ns = now;
    hil_str(&m->field[0], code, sizeof code);
    hil_str(&m->field[1], detail, sizeof detail);
    fprintf(stderr, "libhil: %s %s: %s\n", m->kind == HIL_ERROR ? "the plant rejected our "
            "message:" : "plant fault", code, detail);
}

/* Handle what waits (at most MAX_DRAIN messages); with `stop_at_state`, return as soon as a
 * state newer than the last answered one came (lockstep answers it at once). 1 when a new
 * state waits or the plant said bye. */
int hil_pump(hil_client *c, const hil_law *law, int stop_at_state)
{
    zmq_msg_t frame;
    hil_message m;
    if (c->use_shm) take_shared_state(c);
    zmq_msg_init(&frame);
    for (int i = 0; i < MAX_DRAIN; i++) {
        int got = next_message(c, &frame, &m);
        int64_t now = hil_now_ns();
        if (got == 0) break;
        if (got < 0) continue;
        if (m.kind == HIL_STATE) {
            take_state(c, &m, now);
            if (stop_at_state && c->newest.seq > c->answered_seq) break;
        } else if (m.kind == HIL_BYE) {
            c->bye_received = 1;
            hil_str(&m.field[0], c->bye_reason, sizeof c->bye_reason);
        } else if (m.kind == HIL_FAULT || m.kind == HIL_ERROR) {
            on_notice(c, &m, now);
        } else if (m.kind == HIL_GAINS_GET || m.kind == HIL_GAINS_SET) {
            hil_answer_gains(c, law, &m);
        }
    }
    zmq_msg_close(&frame);
    return c->newest.seq > c->answered_seq || c->bye_received;
}

/* Wait until a message may wait or `until_ns` (our clock), at most 100 ms at a time so a stop
 * is seen; 1 if readable. zmq_poll's timeout is in ms: rounded up, the deadline bounds it. */
int hil_poll(hil_client *c, int64_t until_ns)
{
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    int64_t remaining = until_ns - hil_now_ns();
    long timeout_ms;
    if (c->early_next < c->n_early) return 1;
    if (c->use_shm) { /* lockstep: spin the plant's spin_us for the answer, then the bell */
        hil_shm_wait(c, until_ns, c->shm.spin_ns);
        return 1;
    }
    if (remaining <= 0) return zmq_poll(&item, 1, 0) > 0;
    timeout_ms = (long)((remaining + 999999) / 1000000);
    if (timeout_ms > 100) timeout_ms = 100;
    return zmq_poll(&item, 1, timeout_ms) > 0;
}

/* Sleep until a message may wait or `until_ns`, in pselect() on ZeroMQ's file descriptor:
 * nanosecond timeouts (zmq_poll's are milliseconds), and a state wakes the loop as it comes,
 * so it is timestamped on arrival. ZeroMQ's FD is edge-triggered: ZMQ_EVENTS is asked first,
 * so no edge is lost; a missed wake-up could only delay the loop to `until_ns`. */
void hil_wait_fd(hil_client *c, int64_t until_ns)
{
    int events = 0, fd = -1;
    size_t size = sizeof events;
    int64_t remaining;
    fd_set readable;
    struct timespec ts;
    if (c->early_next < c->n_early) return;
    if (c->use_shm) {
        hil_shm_wait(c, until_ns, 0);
        return;
    }
    if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN))
        return;
    if ((remaining = until_ns - hil_now_ns()) <= 0) return;
    size = sizeof fd;
    if (zmq_getsockopt(c->sock, ZMQ_FD, &fd, &size) != 0 || fd < 0 || fd >= FD_SETSIZE) {
        hil_poll(c, until_ns);
        return;
    }
    FD_ZERO(&readable);
    FD_SET(fd, &readable);
    ts.tv_sec = (time_t)(remaining / 1000000000LL);
    ts.tv_nsec = (long)(remaining % 1000000000LL);
    pselect(fd + 1, &readable, NULL, NULL, &ts, NULL);
}
