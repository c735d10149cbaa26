/* libhil: a controller in C for hil-runtime's plant, over ZeroMQ (protocol 2).
 *
 * The life of a controller:
 *
 *     hil_options opt;
 *     hil_options_init(&opt);                     defaults, as hil-controller's
 *     hil_options_from_env(&opt, err, sizeof err); HIL_ENDPOINT, HIL_OUT, ... (hil run sets them)
 *     hil_client *c = hil_open(&opt, err, sizeof err);
 *     int status = hil_run(c, &law);              handshake, clock sync, loop, bye
 *     int code = hil_finish(c, status);           controller.json, exit status
 *     hil_close(c);
 *
 * `hil_run` answers every state the plant sends: in lockstep as soon as it comes, in realtime
 * on absolute deadlines (the plant's tick + phase_offset of a period), skipping and counting
 * the cycles it overran. Gain requests (`hil gains`, relayed by the plant) are answered
 * between two controls through the law's callbacks. The lower-level calls below (handshake,
 * wait for a state, send a control, the fixed-rate schedule) let a lab write its own loop.
 *
 * Every call that can fail returns a hil_status; `hil_error(c)` says what went wrong and
 * what to do. Not thread-safe: one client per thread. */
#ifndef HIL_CLIENT_H
#define HIL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "hil_codec.h"

#define HIL_MAX_NAME 64
#define HIL_MAX_GAINS 32

typedef enum {
    HIL_OK = 0,
    HIL_ERR_USAGE,       /* a bad argument or option: the message names it (exit 2) */
    HIL_ERR_UNREACHABLE, /* no answer from the plant, or it went silent (exit 3) */
    HIL_ERR_REFUSED,     /* the plant refused us, or we refused its description (exit 4) */
    HIL_ERR_LAW,         /* the control law failed: nonzero return or a non-finite u (exit 1) */
    HIL_ERR_STOPPED,     /* stopped by a signal or hil_request_stop (exit 0 after a signal) */
    HIL_ERR_SYSTEM,      /* ZeroMQ, memory or file errors (exit 1) */
    HIL_ENDED            /* the plant ended the run (its bye): the normal end (exit 0) */
} hil_status;

typedef struct {
    const char *endpoint;    /* ZeroMQ endpoint of the plant: "tcp://127.0.0.1:5600" */
    const char *client_name; /* sent in the hello: "hil-c" */
    const char *out_dir;     /* run folder for controller.json; NULL: write none */
    const char *run_id;      /* controller.json's run_id; NULL: "" */
    const char *transport;   /* run.transport: "zmq", or "shm" (shared memory, one host) */
    const char *mode;        /* "realtime" or "lockstep": the welcome must say it; NULL: any */
    int connect_timeout_ms;  /* give up the handshake after this (5000) */
    int plant_timeout_ms;    /* the plant's silence ends the run after this (500) */
    double phase_offset;     /* realtime: wake this share of a period after a tick (0.3) */
    int spin_us;             /* realtime: busy-wait this long before each deadline (150) */
    double slew_limit_per_s; /* a control step faster than this is a slew hit (50000 /s) */
    int sched_priority;      /* SCHED_FIFO at this priority (1..99); 0: not asked (0) */
    int lock_memory;         /* mlockall (0) */
    int cpu;                 /* pin the loop to this CPU; -1: not asked (-1) */
    int record;              /* write controller.rec into out_dir, one row per control (1) */
    int clear_on_attach;     /* send `clear` when the welcome finds the plant latched safe (0) */
} hil_options;

/* The plant and the run, as its welcome describes them. Times on our clock. */
typedef struct {
    char name[HIL_MAX_NAME];
    int lockstep;            /* mode: 1 lockstep, 0 realtime */
    double rate_hz;
    int64_t period_ns;
    int64_t t0_ns;           /* the plant's first tick */
    double duration_s;
    int n_states;
    int n_inputs;
    char state_names[HIL_MAX_STATES][HIL_MAX_NAME];
    char state_units[HIL_MAX_STATES][HIL_MAX_NAME];
    char input_names[HIL_MAX_INPUTS][HIL_MAX_NAME];
    char input_units[HIL_MAX_INPUTS][HIL_MAX_NAME];
    double input_low[HIL_MAX_INPUTS];
    double input_high[HIL_MAX_INPUTS];
    int safe_state;          /* the plant is latched in its safe state */
} hil_description;

/* A state from the plant, newest first. */
typedef struct {
    int64_t seq;
    int64_t t_ns;            /* the plant's stamp, on our clock */
    int64_t rx_ns;           /* when it came, our clock */
    double t_s;              /* the law's time: lockstep seq * period, else since t0 */
    uint32_t flags;          /* HIL_FLAG_SAFE, HIL_FLAG_FINAL, ... */
    int n_states;
    double x[HIL_MAX_STATES];
} hil_state;

/* A control law. `compute` fills u[0 .. n_inputs-1] and returns 0, or nonzero to end the run
 * (the plant is told to go safe). Gains are optional (n_gains 0, callbacks NULL): `get_gains`
 * fills values[0 .. n_gains-1]; `set_gains` gets the full vector and returns 0 when it applied
 * it, else writes why into `detail` (the old gains stay). `figures` (optional) gives, after
 * each compute, the law's sigma (V = sigma^2 / 2 its Lyapunov function) and the mass matrix's
 * condition number (NaN when it has none) for the stability monitors; steps with |sigma| <=
 * `sigma_floor` are not judged. */
typedef struct {
    const char *name;
    int (*compute)(void *user, const double *x, int n_states, double t_s, double *u,
                   int n_inputs);
    int n_gains;
    const char *const *gain_names;
    void (*get_gains)(void *user, double *values);
    int (*set_gains)(void *user, const double *values, char *detail, size_t detail_size);
    void *user;
    void (*figures)(void *user, double *sigma, double *mass_condition);
    double sigma_floor;
} hil_law;

/* A fixed-rate schedule on absolute deadlines: tick k is due at t0_ns + k * period_ns. */
typedef struct {
    int64_t t0_ns;
    int64_t period_ns;
    int64_t index;
    int64_t skipped;
} hil_rate;

typedef struct hil_client hil_client;

void hil_options_init(hil_options *o);
/* Options from hil run's environment (HIL_ENDPOINT, HIL_OUT, HIL_RUN_ID, HIL_TRANSPORT,
 * HIL_MODE, HIL_PHASE_OFFSET, HIL_SPIN_US, HIL_SLEW_LIMIT_PER_S, HIL_SCHED_PRIORITY,
 * HIL_LOCK_MEMORY, HIL_CPU, HIL_RECORD, HIL_CLEAR_ON_ATTACH, HIL_CONNECT_TIMEOUT_S, HIL_PLANT_TIMEOUT_MS); unset ones
 * keep their value. HIL_ERR_USAGE naming the variable when one is malformed. */
hil_status hil_options_from_env(hil_options *o, char *err, size_t err_size);

/* A client on a fresh DEALER socket connected to o->endpoint; NULL with `err` filled when
 * an option is bad or ZeroMQ refuses. SIGINT and SIGTERM then request a stop. */
hil_client *hil_open(const hil_options *o, char *err, size_t err_size);
const char *hil_error(const hil_client *c);
void hil_request_stop(hil_client *c);
void hil_close(hil_client *c);

/* Hello, welcome (or the plant's refusal, in words), the description's checks, clock sync. */
hil_status hil_handshake(hil_client *c);
const hil_description *hil_get_description(const hil_client *c);

/* The whole run: handshake (unless done), the loop the welcome's mode asks for, bye. */
hil_status hil_run(hil_client *c, const hil_law *law);

/* Lower level. Wait until `deadline_ns` (our clock) for a state newer than the last one
 * answered, handling gain requests and the plant's bye meanwhile: HIL_OK with *s filled,
 * HIL_ERR_UNREACHABLE at the deadline (c stays usable), or the run's end (stop, bye). */
hil_status hil_wait_state(hil_client *c, int64_t deadline_ns, const hil_law *law,
                          hil_state *s);
/* Send u (n_inputs numbers, each finite) answering state `s`. */
hil_status hil_send_control(hil_client *c, const hil_state *s, const double *u,
                            int64_t compute_ns);
/* Tell the plant we leave (once; it goes safe). */
void hil_bye(hil_client *c, const char *reason);
/* End the run for `reason` (a sentence naming the problem and the fix): it becomes the error
 * and the end reason, the plant gets our bye; returns `status` for hil_finish. */
hil_status hil_abort(hil_client *c, hil_status status, const char *reason);

/* Write controller.json into o->out_dir (if set) and return the process exit status for
 * `status`; prints the error to stderr when there is one. */
int hil_finish(hil_client *c, hil_status status);

/* CLOCK_MONOTONIC in ns: the clock hil-plant stamps its states with. */
int64_t hil_now_ns(void);
void hil_rate_init(hil_rate *r, int64_t first_deadline_ns, int64_t period_ns);
int64_t hil_rate_deadline(const hil_rate *r);
/* Sleep (clock_nanosleep, absolute) until the current deadline minus `early_ns`. */
void hil_rate_sleep(const hil_rate *r, int64_t early_ns);
/* Move to the next tick; ticks whose deadlines `now_ns` has passed entirely are skipped and
 * counted (never caught up in a burst). How many were skipped. */
int64_t hil_rate_advance(hil_rate *r, int64_t now_ns);

#endif
