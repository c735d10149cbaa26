/* The cart-pole FMU for FMI 3.0 (model exchange and co-simulation): cartpole_model.h behind
 * the FMI 3 functions the runtime calls; the rest are stubs that fail (fmi3stubs.c, written by
 * tests/fmu/fmubuild.py). Value references as in cartpole.c. */
#include "fmi3Functions.h"

#ifndef MODEL_TOKEN
#define MODEL_TOKEN "{hil-cartpole-1}"
#endif

#define MODEL_CALLBACKS fmi3LogMessageCallback log; fmi3InstanceEnvironment env;
#define LOG(m, status, text) say((m), (status), (text))
typedef struct Model Model;
static void say(Model *m, int status, const char *text);
#include "cartpole_model.h"

static void say(Model *m, int status, const char *text) {
    if (m->log) m->log(m->env, (fmi3Status)status, "logStatusError", text);
}

const char *fmi3GetVersion(void) { return fmi3Version; }
fmi3Status fmi3SetDebugLogging(fmi3Instance c, fmi3Boolean on, size_t n,
                               const fmi3String cats[]) {
    (void)c; (void)on; (void)n; (void)cats;
    return fmi3OK;
}

static Model *instantiate(fmi3String name, fmi3String token, fmi3InstanceEnvironment env,
                          fmi3LogMessageCallback log) {
    Model *m;
    char text[200];
    if (strcmp(token, MODEL_TOKEN) != 0) {
        snprintf(text, sizeof text, "instantiationToken %s does not match this binary's %s",
                 token, MODEL_TOKEN);
        if (log) log(env, fmi3Error, "logStatusError", text);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    m->log = log;
    m->env = env;
    snprintf(m->name, sizeof m->name, "%s", name);
    memcpy(m->par, DEFAULTS, sizeof DEFAULTS);
    return m;
}

fmi3Instance fmi3InstantiateModelExchange(fmi3String name, fmi3String token,
                                          fmi3String resources, fmi3Boolean visible,
                                          fmi3Boolean logging, fmi3InstanceEnvironment env,
                                          fmi3LogMessageCallback log) {
    (void)resources; (void)visible; (void)logging;
    return instantiate(name, token, env, log);
}

fmi3Instance fmi3InstantiateCoSimulation(
    fmi3String name, fmi3String token, fmi3String resources, fmi3Boolean visible,
    fmi3Boolean logging, fmi3Boolean event_mode, fmi3Boolean early_return,
    const fmi3ValueReference required[], size_t n_required, fmi3InstanceEnvironment env,
    fmi3LogMessageCallback log, fmi3IntermediateUpdateCallback update) {
    (void)resources; (void)visible; (void)logging; (void)event_mode; (void)early_return;
    (void)required; (void)n_required; (void)update;
    return instantiate(name, token, env, log);
}

void fmi3FreeInstance(fmi3Instance c) { free(c); }

fmi3Status fmi3EnterInitializationMode(fmi3Instance c, fmi3Boolean tol_defined, fmi3Float64 tol,
                                       fmi3Float64 start, fmi3Boolean stop_defined,
                                       fmi3Float64 stop) {
    (void)tol_defined; (void)tol; (void)stop_defined; (void)stop;
    ((Model *)c)->time = start;
    return fmi3OK;
}

fmi3Status fmi3ExitInitializationMode(fmi3Instance c) {
    Model *m = c;
    char text[160];
    if (!(m->par[P_C] > 0 && m->par[P_C] <= m->par[P_L])) {
        snprintf(text, sizeof text, "pole_com_m = %g must be in (0, pole_length_m = %g]",
                 m->par[P_C], m->par[P_L]);
        say(m, fmi3Error, text);
        return fmi3Error;
    }
    m->x[0] = m->par[P_X0]; m->x[1] = m->par[P_TH0];
    m->x[2] = m->par[P_V0]; m->x[3] = m->par[P_W0];
    m->initialised = 1;
    return fmi3OK;
}

fmi3Status fmi3Terminate(fmi3Instance c) { (void)c; return fmi3OK; }
fmi3Status fmi3Reset(fmi3Instance c) {
    Model *m = c;
    memcpy(m->par, DEFAULTS, sizeof DEFAULTS);
    m->initialised = 0;
    return fmi3OK;
}

fmi3Status fmi3GetFloat64(fmi3Instance c, const fmi3ValueReference vr[], size_t n,
                          fmi3Float64 value[], size_t n_values) {
    Model *m = c;
    double dx[NX];
    size_t i;
    if (n_values != n) return fmi3Error;
    derivatives(m, m->x, dx);
    for (i = 0; i < n; i++) {
        unsigned r = vr[i];
        if (r < NX) value[i] = m->x[r];
        else if (r < VR_F) value[i] = dx[r - VR_DER];
        else if (r == VR_F || r == VR_TAU) value[i] = m->u[r - VR_F];
        else if (r == VR_ENERGY) value[i] = energy(m);
        else if (r >= VR_PAR && r < VR_PAR + NPAR) value[i] = m->par[r - VR_PAR];
        else return fmi3Error;
    }
    return fmi3OK;
}

fmi3Status fmi3SetFloat64(fmi3Instance c, const fmi3ValueReference vr[], size_t n,
                          const fmi3Float64 value[], size_t n_values) {
    Model *m = c;
    size_t i;
    if (n_values != n) return fmi3Error;
    for (i = 0; i < n; i++) {
        unsigned r = vr[i];
        if (r == VR_F || r == VR_TAU) m->u[r - VR_F] = value[i];
        else if (r >= VR_PAR && r < VR_PAR + NPAR && !m->initialised) m->par[r - VR_PAR] = value[i];
        else return fmi3Error;
    }
    return fmi3OK;
}

/* Model exchange */
fmi3Status fmi3EnterEventMode(fmi3Instance c) { (void)c; return fmi3OK; }
fmi3Status fmi3UpdateDiscreteStates(fmi3Instance c, fmi3Boolean *update, fmi3Boolean *terminate,
                                    fmi3Boolean *nominals, fmi3Boolean *values,
                                    fmi3Boolean *time_defined, fmi3Float64 *next) {
    (void)c;
    *update = *terminate = *nominals = *values = *time_defined = fmi3False;
    *next = 0;
    return fmi3OK;
}
fmi3Status fmi3EnterContinuousTimeMode(fmi3Instance c) { (void)c; return fmi3OK; }
fmi3Status fmi3CompletedIntegratorStep(fmi3Instance c, fmi3Boolean no_set, fmi3Boolean *event,
                                       fmi3Boolean *terminate) {
    (void)no_set;
    *event = event_due((Model *)c) ? fmi3True : fmi3False;
    *terminate = fmi3False;
    return fmi3OK;
}
fmi3Status fmi3SetTime(fmi3Instance c, fmi3Float64 t) { ((Model *)c)->time = t; return fmi3OK; }
fmi3Status fmi3SetContinuousStates(fmi3Instance c, const fmi3Float64 x[], size_t n) {
    Model *m = c;
    if (n != NX) return fmi3Error;
    memcpy(m->x, x, sizeof m->x);
    return fmi3OK;
}
fmi3Status fmi3GetContinuousStateDerivatives(fmi3Instance c, fmi3Float64 dx[], size_t n) {
    Model *m = c;
    if (n != NX || failing(m, "fmi3GetContinuousStateDerivatives")) return fmi3Error;
    derivatives(m, m->x, dx);
    return fmi3OK;
}
fmi3Status fmi3GetContinuousStates(fmi3Instance c, fmi3Float64 x[], size_t n) {
    Model *m = c;
    if (n != NX) return fmi3Error;
    memcpy(x, m->x, sizeof m->x);
    return fmi3OK;
}
fmi3Status fmi3GetNominalsOfContinuousStates(fmi3Instance c, fmi3Float64 x[], size_t n) {
    size_t i;
    (void)c;
    for (i = 0; i < n; i++) x[i] = 1.0;
    return fmi3OK;
}
fmi3Status fmi3GetEventIndicators(fmi3Instance c, fmi3Float64 z[], size_t n) {
    (void)c; (void)z; return n ? fmi3Error : fmi3OK; }
fmi3Status fmi3GetNumberOfEventIndicators(fmi3Instance c, size_t *n) { (void)c; *n = 0; return fmi3OK; }
fmi3Status fmi3GetNumberOfContinuousStates(fmi3Instance c, size_t *n) { (void)c; *n = NX; return fmi3OK; }

/* Co-simulation: one classic RK4 step of the communication step, the inputs held. */
fmi3Status fmi3EnterStepMode(fmi3Instance c) { (void)c; return fmi3OK; }
fmi3Status fmi3DoStep(fmi3Instance c, fmi3Float64 t, fmi3Float64 h, fmi3Boolean no_set,
                      fmi3Boolean *event, fmi3Boolean *terminate, fmi3Boolean *early,
                      fmi3Float64 *last) {
    Model *m = c;
    (void)no_set;
    *event = *terminate = *early = fmi3False;
    m->time = t;
    *last = t;
    if (failing(m, "fmi3DoStep")) return fmi3Error;
    rk4(m, h);
    m->time = t + h;
    *last = m->time;
    return fmi3OK;
}
