/* libhil's report: latency histograms and controller.json, with the keys hil-controller
 * writes and `hil report` reads (hil/reporting/report.py), so a C controller's run merges
 * like any other; and the exit status. */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const FIGURES[FIG_COUNT] = {"state_to_controller", "compute",
                                               "controller_lateness"};

static int bucket_of(int64_t v)
{
    int msb = 63, shift;
    if (v < 0) v = 0;
    if (v < 2 * HIL_HIST_SUB) return (int)v;
    while (!((uint64_t)v >> msb)) msb--;
    shift = msb - 9; /* v >> shift is in [HIL_HIST_SUB, 2 * HIL_HIST_SUB) */
    if (shift > HIL_HIST_SHIFTS) return HIL_HIST_BUCKETS - 1;
    return 2 * HIL_HIST_SUB + (shift - 1) * HIL_HIST_SUB + (int)((v >> shift) - HIL_HIST_SUB);
}

/* The highest value a bucket holds (as HDR histograms report it). */
static int64_t bucket_top(int index)
{
    int shift, sub;
    if (index < 2 * HIL_HIST_SUB) return index;
    shift = (index - 2 * HIL_HIST_SUB) / HIL_HIST_SUB + 1;
    sub = (index - 2 * HIL_HIST_SUB) % HIL_HIST_SUB + HIL_HIST_SUB;
    return ((int64_t)(sub + 1) << shift) - 1;
}

void hil_hist_record(hil_hist *h, int64_t value_ns)
{
    if (value_ns < 0) value_ns = 0;
    h->counts[bucket_of(value_ns)]++;
    h->count++;
    if (value_ns > h->max_ns) h->max_ns = value_ns;
}

/* The value at `percentile` in us (HDR's rule: the first bucket whose running count reaches
 * ceil(p * count)), capped at the maximum recorded. */
static double percentile_us(const hil_hist *h, double percentile)
{
    int64_t want = (int64_t)ceil(percentile / 100.0 * (double)h->count), seen = 0;
    if (want < 1) want = 1;
    for (int i = 0; i < HIL_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            int64_t top = bucket_top(i);
            return (double)(top < h->max_ns ? top : h->max_ns) / 1e3;
        }
    }
    return (double)h->max_ns / 1e3;
}

/* ------------------------------------------------------------------ JSON */

void hil_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", f);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

static void json_nums(FILE *f, const double *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        json_num(f, v[i]);
    }
    fputc(']', f);
}

static void json_names(FILE *f, const char *const *names, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        hil_json_str(f, names[i]);
    }
    fputc(']', f);
}

static void json_key(FILE *f, const char *key)
{
    fputs(",\n  ", f);
    hil_json_str(f, key);
    fputs(": ", f);
}

static void json_int_key(FILE *f, const char *key, int64_t v)
{
    json_key(f, key);
    fprintf(f, "%lld", (long long)v);
}

static void write_latency(FILE *f, const hil_client *c)
{
    static const double P[4] = {50.0, 90.0, 99.0, 99.9};
    static const char *const NAMES[4] = {"p50", "p90", "p99", "p999"};
    json_key(f, "latency_us");
    fputc('{', f);
    for (int k = 0; k < FIG_COUNT; k++) {
        const hil_hist *h = &c->hist[k];
        fprintf(f, "%s\n    ", k ? "," : "");
        hil_json_str(f, FIGURES[k]);
        fputs(": {", f);
        for (int i = 0; i < 4; i++) {
            fprintf(f, "\"%s\": ", NAMES[i]);
            if (h->count) json_num(f, percentile_us(h, P[i]));
            else fputs("null", f);
            fputs(", ", f);
        }
        fputs("\"max\": ", f);
        if (h->count) json_num(f, (double)h->max_ns / 1e3);
        else fputs("null", f);
        fprintf(f, ", \"count\": %lld}", (long long)h->count);
    }
    fputs("}", f);
}

static void write_gains(FILE *f, const hil_client *c, const hil_law *law)
{
    double now[HIL_MAX_GAINS];
    int n = law != NULL ? law->n_gains : 0;
    if (n > 0) law->get_gains(law->user, now);
    json_key(f, "gains");
    json_nums(f, now, n);
    json_key(f, "gain_changes");
    fputc('[', f);
    for (int i = 0; i < c->n_events; i++) {
        const hil_gain_event *e = &c->events[i];
        fprintf(f, "%s\n    {\"time\": ", i ? "," : "");
        json_num(f, e->time_s);
        fputs(", \"who\": ", f);
        hil_json_str(f, e->who);
        fputs(", \"names\": ", f);
        json_names(f, law->gain_names, n);
        fputs(", \"old\": ", f);
        json_nums(f, e->old, n);
        fputs(", \"new\": ", f);
        if (e->applied) json_nums(f, e->now, n);
        else fputs("null", f);
        fprintf(f, ", \"applied\": %s, \"detail\": ", e->applied ? "true" : "false");
        hil_json_str(f, e->detail);
        fputc('}', f);
    }
    fputc(']', f);
}

static void write_law(FILE *f, const hil_client *c, const hil_law *law, const char *name)
{
    double budget_us = (1.0 - c->opt.phase_offset - 0.15) * (double)c->desc.period_ns / 1e3;
    const hil_hist *compute = &c->hist[FIG_COMPUTE];
    double p99 = compute->count ? percentile_us(compute, 99.0) : NAN;
    json_key(f, "law");
    fputs("{\"name\": ", f);
    hil_json_str(f, name);
    fputs(", \"language\": \"C\", \"library\": \"libhil\", \"gain_names\": ", f);
    json_names(f, law != NULL ? law->gain_names : NULL, law != NULL ? law->n_gains : 0);
    fputc('}', f);
    json_key(f, "law_timing");
    fputs("{\"law\": ", f);
    hil_json_str(f, name);
    fputs(", \"budget_us\": ", f);
    json_num(f, round(budget_us * 10) / 10);
    fputs(", \"compute_p99_us\": ", f);
    json_num(f, p99);
    fprintf(f, ", \"overruns\": %lld, \"too_slow\": %s}", (long long)c->overruns,
            isfinite(p99) && p99 > budget_us ? "true" : "false");
}

/* A Vm* figure of this process from /proc/self/status in MB, or NaN. */
static double vm_mb(const char *field)
{
    char line[256];
    double mb = NAN;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return mb;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') mb = atof(line + n + 1) / 1024.0;
    fclose(f);
    return round(mb * 100) / 100;
}

static void write_process(FILE *f, const hil_client *c)
{
    struct timespec ts;
    double wall_s = (double)(hil_now_ns() - c->wall_start_ns) * 1e-9, cpu_s;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    cpu_s = (double)((int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - c->cpu_start_ns) * 1e-9;
    json_key(f, "cpu");
    fputs("{\"wall_s\": ", f);
    json_num(f, wall_s);
    fputs(", \"cpu_s\": ", f);
    json_num(f, cpu_s);
    fputs(", \"ratio\": ", f);
    json_num(f, wall_s > 0 ? cpu_s / wall_s : NAN);
    fputs("}", f);
    json_key(f, "resources");
    fputs("{\"rss_mb_at_end\": ", f);
    json_num(f, vm_mb("VmRSS"));
    fputs(", \"rss_mb_peak\": ", f);
    json_num(f, vm_mb("VmHWM"));
    fputs("}", f);
}

static void json_field(FILE *f, const char *key, double v, int first)
{
    fprintf(f, "%s\"%s\": ", first ? "" : ", ", key);
    json_num(f, v);
}

/* The `stability` section, as hil/runtime/stability.py's summary(). */
static void write_stability(FILE *f, const hil_stability *s)
{
    hil_stability_figures_t g;
    int none = s->steps == 0;
    hil_stability_figures(s, &g);
    json_key(f, "stability");
    fprintf(f, "{\"window\": %d,\n    \"lyapunov\": {\"steps\": %lld, \"evaluated_steps\": %lld, "
            "\"decreased_steps\": %lld", s->window, (long long)s->steps,
            (long long)s->evaluated, (long long)s->decreased);
    json_field(f, "decrease_ratio", g.decrease_ratio, 0);
    json_field(f, "window_decrease_ratio", g.window_decrease_ratio, 0);
    json_field(f, "v_last", g.v_last, 0);
    fprintf(f, "},\n    \"actuator\": {\"steps\": %lld, \"saturated_steps\": %lld",
            (long long)s->steps, (long long)s->saturated_steps);
    json_field(f, "saturation_duty", g.saturation_duty, 0);
    json_field(f, "window_saturation_duty", g.window_saturation_duty, 0);
    fprintf(f, ", \"slew_hits\": %lld, \"window_slew_hits\": %d", (long long)s->slew_hits,
            g.window_slew_hits);
    json_field(f, "max_step_change_n", s->max_change, 0);
    fprintf(f, "},\n    \"mass_matrix_condition\": {\"steps\": %lld", (long long)s->steps);
    json_field(f, "last", none ? NAN : g.condition_last, 0);
    json_field(f, "max", none ? NAN : s->max_condition, 0);
    json_field(f, "mean", none ? NAN : g.condition_mean, 0);
    json_field(f, "window_max", none ? NAN : g.condition_window_max, 0);
    fprintf(f, "},\n    \"surface\": {\"steps\": %lld", (long long)s->steps);
    json_field(f, "abs_last", none ? NAN : g.surface_last, 0);
    json_field(f, "abs_max", none ? NAN : s->max_surface, 0);
    json_field(f, "window_abs_max", none ? NAN : g.surface_window_max, 0);
    json_field(f, "window_rms", none ? NAN : g.surface_window_rms, 0);
    fputs("}}", f);
}

static void write_counters(FILE *f, const hil_client *c)
{
    json_int_key(f, "controls_sent", c->controls_sent);
    json_int_key(f, "states_received", c->received);
    json_int_key(f, "states_dropped", c->dropped);
    json_int_key(f, "states_while_safe", c->while_safe);
    json_int_key(f, "safe_latches", c->safe_latches);
    json_key(f, "final_state");
    json_nums(f, c->final_state, c->n_final);
    json_int_key(f, "no_new_state", c->no_new_state);
    json_int_key(f, "late_states", c->late_states);
    json_int_key(f, "overruns", c->overruns);
    json_int_key(f, "rejected_messages", c->rejected + c->duplicates + c->session_rejected);
    json_int_key(f, "errors_from_plant", c->plant_errors);
    json_int_key(f, "sends_dropped", c->sends_dropped);
    json_key(f, "clock");
    fprintf(f, "{\"offset_ns\": %lld, \"sync_rtt_ns\": ", (long long)c->clock_offset_ns);
    if (c->sync_rtt_ns >= 0) fprintf(f, "%lld", (long long)c->sync_rtt_ns);
    else fputs("null", f);
    fprintf(f, ", \"same_clock\": %s}", c->same_clock ? "true" : "false");
}

/* `recording`, as hil/recording's RecorderStatistics (a row is never dropped: it waits in
 * the chunk buffer, not in a queue that can fill). */
static void write_recording(FILE *f, const hil_recorder *r)
{
    json_key(f, "recording");
    fprintf(f, "{\"rows_written\": %lld, \"rows_dropped\": 0, \"rows_rejected\": 0, "
            "\"chunks_written\": %lld, \"bytes_written\": %lld, \"max_queue_depth\": %d, "
            "\"fsyncs\": %lld, \"error\": ", (long long)r->written, (long long)r->chunks,
            (long long)r->bytes, HIL_RECORD_CHUNK_ROWS, (long long)r->fsyncs);
    if (r->error[0]) hil_json_str(f, r->error);
    else fputs("null", f);
    fputc('}', f);
}

/* `realtime`: what was asked for and granted or refused, as hil-controller's. */
static void write_realtime(FILE *f, const hil_client *c)
{
    static const char *const NAMES[HIL_RT_COUNT] = {"sched_fifo", "lock_memory", "cpu"};
    const int asked[HIL_RT_COUNT] = {c->opt.sched_priority > 0, c->opt.lock_memory,
                                     c->opt.cpu >= 0};
    const int value[HIL_RT_COUNT] = {c->opt.sched_priority, 1, c->opt.cpu};
    int first = 1;
    json_key(f, "realtime");
    fputs("{\"granted\": {", f);
    for (int i = 0; i < HIL_RT_COUNT; i++)
        if (asked[i] && c->rt_granted[i]) {
            fprintf(f, "%s\"%s\": ", first ? "" : ", ", NAMES[i]);
            if (i == HIL_RT_MEMORY) fputs("true", f);
            else fprintf(f, "%d", value[i]);
            first = 0;
        }
    fputs("}, \"refused\": {", f);
    first = 1;
    for (int i = 0; i < HIL_RT_COUNT; i++)
        if (asked[i] && !c->rt_granted[i]) {
            fprintf(f, "%s\"%s\": ", first ? "" : ", ", NAMES[i]);
            hil_json_str(f, c->rt_refused[i]);
            first = 0;
        }
    fputs("}}", f);
}

static void write_body(FILE *f, const hil_client *c, int exit_code)
{
    const hil_law *law = c->law;
    const char *name = law != NULL && law->name != NULL ? law->name : c->client_name;
    fputs("{\n  \"process\": \"controller\"", f);
    json_key(f, "end_reason");
    hil_json_str(f, c->end_reason);
    json_key(f, "controller");
    hil_json_str(f, name);
    json_key(f, "run_id");
    hil_json_str(f, c->run_id);
    json_int_key(f, "exit_code", exit_code);
    if (hil_stop_signal() > 0) {
        json_key(f, "signal");
        hil_json_str(f, hil_stop_signal() == 2 ? "SIGINT" : "SIGTERM");
    }
    json_key(f, "endpoint");
    hil_json_str(f, c->endpoint);
    json_key(f, "client");
    fprintf(f, "{\"library\": \"libhil\", \"language\": \"C\", \"protocol\": %d}",
            HIL_PROTOCOL_VERSION);
    write_realtime(f, c);
    json_key(f, "transport");
    if (c->use_shm) {
        fputs("{\"kind\": \"shm\", \"segment\": ", f);
        hil_json_str(f, c->shm.name);
        fprintf(f, ", \"spin_us\": %g, \"states_overwritten\": %lld, \"read_retries\": %lld, "
                "\"sleeps\": %lld, \"wakes_sent\": %lld}", (double)c->shm.spin_ns / 1e3,
                (long long)c->shm.overwritten, (long long)c->shm.retries,
                (long long)c->shm.sleeps, (long long)c->shm.wakes);
    } else {
        fputs("{\"kind\": \"zmq\"}", f);
    }
    write_gains(f, c, law);
    write_latency(f, c);
    write_counters(f, c);
    write_law(f, c, law, name);
    if (c->stability.window > 0) write_stability(f, &c->stability);
    if (c->recorder.enabled) write_recording(f, &c->recorder);
    write_process(f, c);
    fputs("\n}\n", f);
}

/* controller.json in out_dir, written atomically (a temporary file, then a rename). */
hil_status hil_write_report(hil_client *c, int exit_code)
{
    char path[1100], tmp[1110];
    FILE *f;
    if (c->out_dir[0] == '\0') return HIL_OK;
    snprintf(path, sizeof path, "%s/controller.json", c->out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((f = fopen(tmp, "w")) == NULL)
        return hil_fail(c, HIL_ERR_SYSTEM, "cannot write %s: give a writable out_dir (HIL_OUT)",
                        tmp);
    write_body(f, c, exit_code);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return hil_fail(c, HIL_ERR_SYSTEM, "cannot write %s (disk full?)", path);
    return HIL_OK;
}

static int exit_code_of(hil_status status)
{
    switch (status) {
    case HIL_OK:
    case HIL_ENDED: return 0;
    case HIL_ERR_STOPPED: return hil_stop_signal() > 0 ? 0 : 1;
    case HIL_ERR_USAGE: return 2;
    case HIL_ERR_UNREACHABLE: return 3;
    case HIL_ERR_REFUSED: return 4;
    default: return 1;
    }
}

int hil_finish(hil_client *c, hil_status status)
{
    int code = exit_code_of(status);
    hil_realtime_leave(c); /* the recording's end and the report at normal priority */
    hil_record_close(c);
    if (code != 0) fprintf(stderr, "libhil: %s\n", c->error);
    if (hil_write_report(c, code) != HIL_OK) {
        fprintf(stderr, "libhil: %s\n", c->error);
        if (code == 0) code = 1;
    }
    return code;
}
