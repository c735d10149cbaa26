/* libhil's internals, shared by its files (not part of the API). */
#ifndef HIL_INTERNAL_H
#define HIL_INTERNAL_H

#include <stdio.h>

#include "hil_client.h"

#define HIL_MAX_EARLY 64
#define HIL_MAX_EVENTS 64
#define HIL_SYNC_SAMPLES 16
#define HIL_SYNC_TIMEOUT_NS 200000000LL

/* A latency histogram: ~0.2 % buckets from 1 ns to ~18 min (values beyond go in the last). */
#define HIL_HIST_SUB 512
#define HIL_HIST_SHIFTS 32
#define HIL_HIST_BUCKETS (2 * HIL_HIST_SUB + HIL_HIST_SHIFTS * HIL_HIST_SUB)

typedef struct {
    uint32_t counts[HIL_HIST_BUCKETS];
    int64_t count;
    int64_t max_ns;
} hil_hist;

enum { FIG_STATE_TO_CONTROLLER, FIG_COMPUTE, FIG_LATENESS, FIG_COUNT };
enum { HIL_RT_FIFO, HIL_RT_MEMORY, HIL_RT_CPU, HIL_RT_COUNT };

typedef struct {
    double time_s;
    char who[80];
    double old[HIL_MAX_GAINS];
    double now[HIL_MAX_GAINS];
    int applied;
    char detail[160];
} hil_gain_event;

typedef struct {
    char *data;
    size_t len;
} hil_frame;

/* controller.rec (hil_record.c): rows buffered, written a chunk at a time. */
#define HIL_RECORD_CHUNK_ROWS 128
#define HIL_RECORD_MAX_COLUMNS (7 + HIL_MAX_STATES + HIL_MAX_INPUTS + 2)
typedef struct {
    int enabled, fd, columns, rows;
    uint32_t index;
    int64_t written, chunks, bytes, fsyncs;
    char error[160];
    unsigned char rows_buf[HIL_RECORD_CHUNK_ROWS * HIL_RECORD_MAX_COLUMNS * 8];
} hil_recorder;

/* The shared-memory data plane (hil_shm.c): the mapped segment and what it counted. */
typedef struct {
    unsigned char *base;
    char name[128];
    int64_t session, spin_ns;
    uint64_t seen; /* the state slot's counter last taken */
    int64_t overwritten, retries, sleeps, wakes;
} hil_shm;

/* The stability monitors (hil_stability.c), over the run and a window of `window` steps. */
typedef struct {
    int window, n_inputs;
    int64_t steps, evaluated, decreased, saturated_steps, slew_hits;
    double v_floor, v_prev, slew_per_step, max_change, sum_condition, max_condition;
    double max_surface;
    double low[HIL_MAX_INPUTS], high[HIL_MAX_INPUTS], prev_u[HIL_MAX_INPUTS];
    signed char *lyapunov, *saturated, *slewed; /* per step: 1, 0 (-1: not evaluated) */
    double *condition, *surface;
} hil_stability;

typedef struct {
    double decrease_ratio, window_decrease_ratio, v_last;
    double saturation_duty, window_saturation_duty;
    int window_slew_hits;
    double condition_last, condition_mean, condition_window_max;
    double surface_last, surface_window_max, surface_window_rms;
} hil_stability_figures_t;

struct hil_client {
    char endpoint[256], client_name[HIL_MAX_NAME], out_dir[1024], run_id[128];
    char transport[16], mode[16];
    hil_options opt;
    void *ctx, *sock;
    hil_decoder dec;
    int decoder_ready;
    hil_buffer out;
    hil_description desc;
    int handshaken;
    char error[512];
    /* the session */
    int64_t clock_offset_ns, sync_rtt_ns; /* plant - ours; -1: not synced */
    int same_clock, session_rejected;
    hil_frame early[HIL_MAX_EARLY];
    int n_early, early_next;
    /* the intake: the newest state and what happened to the others */
    hil_state newest;
    int64_t answered_seq, last_rx_ns;
    int64_t received, dropped, duplicates, while_safe, safe_latches, rejected;
    int plant_safe, n_final;
    double final_state[HIL_MAX_STATES];
    /* the loop */
    int64_t controls_sent, no_new_state, late_states, overruns;
    int bye_received, bye_sent;
    char bye_reason[256], end_reason[512];
    int64_t last_fault_log_ns, plant_errors, sends_dropped;
    hil_hist hist[FIG_COUNT];
    const hil_law *law;
    hil_gain_event events[HIL_MAX_EVENTS];
    int n_events, events_dropped;
    int64_t wall_start_ns, cpu_start_ns;
    hil_stability stability;
    double slew_limit_per_s;
    hil_shm shm;
    int use_shm;
    hil_recorder recorder;
    int64_t last_send_ns, lateness_ns;
    int rt_granted[HIL_RT_COUNT];
    char rt_refused[HIL_RT_COUNT][96];
};

/* hil_client.c */
hil_status hil_fail(hil_client *c, hil_status status, const char *fmt, ...);
hil_status hil_send(hil_client *c);
int hil_pump(hil_client *c, const hil_law *law, int stop_at_state);
int hil_poll(hil_client *c, int64_t until_ns);
void hil_wait_fd(hil_client *c, int64_t until_ns);
int hil_stop_requested(void);
int hil_stop_signal(void);

void hil_intake(hil_client *c, int64_t seq, int64_t plant_t_ns, int64_t flags, const double *x,
                int n, int64_t now);

/* hil_record.c */
void hil_record_open(hil_client *c, const char *law_name, double sigma_floor);
void hil_record_row(hil_client *c, const hil_state *s, const double *u, int64_t compute_ns,
                    double sigma, double condition);
void hil_record_close(hil_client *c);

/* hil_realtime.c */
void hil_realtime_before_socket(hil_client *c);
void hil_realtime_after_socket(hil_client *c);
void hil_realtime_leave(hil_client *c);

/* hil_shm.c */
hil_status hil_shm_open(hil_client *c, const msgpack_object *info);
void hil_shm_close(hil_shm *s);
int hil_shm_take(hil_client *c, int64_t *seq, int64_t *t_ns, int64_t *flags, double *x);
hil_status hil_shm_write_control(hil_client *c, int64_t seq, int64_t state_seq,
                                 const double *u, int64_t rx_ns, int64_t send_ns,
                                 int64_t compute_ns);
void hil_shm_wait(hil_client *c, int64_t until_ns, int64_t spin_first_ns);

/* hil_gains.c */
void hil_answer_gains(hil_client *c, const hil_law *law, const hil_message *m);

/* hil_stability.c */
int hil_stability_init(hil_stability *s, const hil_description *d, double slew_per_s,
                       double sigma_floor);
void hil_stability_free(hil_stability *s);
void hil_stability_update(hil_stability *s, double sigma, const double *u, double condition);
void hil_stability_figures(const hil_stability *s, hil_stability_figures_t *out);

/* hil_report.c */
void hil_hist_record(hil_hist *h, int64_t value_ns);
hil_status hil_write_report(hil_client *c, int exit_code);
void hil_json_str(FILE *f, const char *s);

#endif
