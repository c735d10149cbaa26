/* A cart-pole FMU (FMI 2.0, model exchange and co-simulation) for hil-runtime's tests.
 *
 * The model (cartpole_model.h) has the same equations as hil/dynamics/cartpole.py
 * (M(q) q'' = [F, tau] - bias, Cramer's rule, the same constants), so that the runtime's RK4
 * over these derivatives (model exchange) and this FMU's doStep (co-simulation: one classic
 * RK4 step of the step size) match the built-in numba model to rounding. Built by
 * tests/fmu/fmubuild.py; a modelDescription.xml that declares `tau` (a torque on the pole's
 * joint) as a second input makes the two-input variant.
 *
 * Value references (the modelDescription.xml the tests write names them):
 *   0..3  x, theta, x_dot, theta_dot        continuous states (outputs)
 *   4..7  their derivatives
 *   8     F (N)   input;  9 tau (N m) input (TWO_INPUTS)
 *   10    energy_J output (kinetic + potential, zero at the pivot's height)
 *   20..  parameters: cart_mass_kg, pole_mass_kg, pole_length_m, pole_com_m,
 *         pole_inertia_kgm2, gravity_mps2, cart_friction_nspm, joint_friction_nmsprad,
 *         x0, theta0, x_dot0, theta_dot0 (the initial state), fail_at_s (doStep and
 *         fmi2GetDerivatives fail from this time on; < 0: never), event_at_s (from this
 *         time on fmi2CompletedIntegratorStep asks for an event; < 0: never)
 */
#include "fmi2Functions.h"

#ifndef MODEL_GUID
#define MODEL_GUID "{hil-cartpole-1}"
#endif

#define MODEL_CALLBACKS fmi2CallbackFunctions cb;
#define LOG(m, status, text) say((m), (status), "logStatusError", (text))
typedef struct Model Model;
static void say(Model *m, fmi2Status status, const char *category, const char *text);
#include "cartpole_model.h"

static void say(Model *m, fmi2Status status, const char *category, const char *text) {
    if (m->cb.logger) m->cb.logger(m->cb.componentEnvironment, m->name, status, category, "%s",
                                   text);
}

const char *fmi2GetTypesPlatform(void) { return fmi2TypesPlatform; }
const char *fmi2GetVersion(void) { return fmi2Version; }

fmi2Component fmi2Instantiate(fmi2String name, fmi2Type type, fmi2String guid,
                              fmi2String resources, const fmi2CallbackFunctions *cb,
                              fmi2Boolean visible, fmi2Boolean logging) {
    Model *m;
    (void)type; (void)resources; (void)visible; (void)logging;
    if (strcmp(guid, MODEL_GUID) != 0) {
        if (cb && cb->logger)
            cb->logger(cb->componentEnvironment, name, fmi2Error, "logStatusError",
                       "GUID %s does not match this binary's %s", guid, MODEL_GUID);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    m->cb = *cb;
    snprintf(m->name, sizeof m->name, "%s", name);
    memcpy(m->par, DEFAULTS, sizeof DEFAULTS);
    return m;
}

void fmi2FreeInstance(fmi2Component c) { free(c); }
fmi2Status fmi2SetDebugLogging(fmi2Component c, fmi2Boolean on, size_t n,
                               const fmi2String cats[]) {
    (void)c; (void)on; (void)n; (void)cats;
    return fmi2OK;
}
fmi2Status fmi2SetupExperiment(fmi2Component c, fmi2Boolean tol_defined, fmi2Real tol,
                               fmi2Real start, fmi2Boolean stop_defined, fmi2Real stop) {
    (void)tol_defined; (void)tol; (void)stop_defined; (void)stop;
    ((Model *)c)->time = start;
    return fmi2OK;
}
fmi2Status fmi2EnterInitializationMode(fmi2Component c) { (void)c; return fmi2OK; }

fmi2Status fmi2ExitInitializationMode(fmi2Component c) {
    Model *m = c;
    char text[160];
    if (!(m->par[P_C] > 0 && m->par[P_C] <= m->par[P_L])) {
        snprintf(text, sizeof text, "pole_com_m = %g must be in (0, pole_length_m = %g]",
                 m->par[P_C], m->par[P_L]);
        say(m, fmi2Error, "logStatusError", text);
        return fmi2Error;
    }
    m->x[0] = m->par[P_X0]; m->x[1] = m->par[P_TH0];
    m->x[2] = m->par[P_V0]; m->x[3] = m->par[P_W0];
    m->initialised = 1;
    return fmi2OK;
}
fmi2Status fmi2Terminate(fmi2Component c) { (void)c; return fmi2OK; }
fmi2Status fmi2Reset(fmi2Component c) {
    Model *m = c;
    memcpy(m->par, DEFAULTS, sizeof DEFAULTS);
    m->initialised = 0;
    return fmi2OK;
}

fmi2Status fmi2GetReal(fmi2Component c, const fmi2ValueReference vr[], size_t n,
                       fmi2Real value[]) {
    Model *m = c;
    double dx[NX];
    size_t i;
    derivatives(m, m->x, dx);
    for (i = 0; i < n; i++) {
        unsigned r = vr[i];
        if (r < NX) value[i] = m->x[r];
        else if (r < VR_F) value[i] = dx[r - VR_DER];
        else if (r == VR_F || r == VR_TAU) value[i] = m->u[r - VR_F];
        else if (r == VR_ENERGY) value[i] = energy(m);
        else if (r >= VR_PAR && r < VR_PAR + NPAR) value[i] = m->par[r - VR_PAR];
        else return fmi2Error;
    }
    return fmi2OK;
}

fmi2Status fmi2SetReal(fmi2Component c, const fmi2ValueReference vr[], size_t n,
                       const fmi2Real value[]) {
    Model *m = c;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned r = vr[i];
        if (r == VR_F || r == VR_TAU) m->u[r - VR_F] = value[i];
        else if (r >= VR_PAR && r < VR_PAR + NPAR && !m->initialised) m->par[r - VR_PAR] = value[i];
        else return fmi2Error;
    }
    return fmi2OK;
}

#define UNSUPPORTED_GET(fn, type) \
    fmi2Status fn(fmi2Component c, const fmi2ValueReference vr[], size_t n, type value[]) { \
        (void)c; (void)vr; (void)value; return n ? fmi2Error : fmi2OK; }
#define UNSUPPORTED_SET(fn, type) \
    fmi2Status fn(fmi2Component c, const fmi2ValueReference vr[], size_t n, const type value[]) { \
        (void)c; (void)vr; (void)value; return n ? fmi2Error : fmi2OK; }
UNSUPPORTED_GET(fmi2GetInteger, fmi2Integer)
UNSUPPORTED_GET(fmi2GetBoolean, fmi2Boolean)
UNSUPPORTED_GET(fmi2GetString, fmi2String)
UNSUPPORTED_SET(fmi2SetInteger, fmi2Integer)
UNSUPPORTED_SET(fmi2SetBoolean, fmi2Boolean)
UNSUPPORTED_SET(fmi2SetString, fmi2String)

fmi2Status fmi2GetFMUstate(fmi2Component c, fmi2FMUstate *s) { (void)c; (void)s; return fmi2Error; }
fmi2Status fmi2SetFMUstate(fmi2Component c, fmi2FMUstate s) { (void)c; (void)s; return fmi2Error; }
fmi2Status fmi2FreeFMUstate(fmi2Component c, fmi2FMUstate *s) { (void)c; (void)s; return fmi2Error; }
fmi2Status fmi2SerializedFMUstateSize(fmi2Component c, fmi2FMUstate s, size_t *n) {
    (void)c; (void)s; (void)n; return fmi2Error; }
fmi2Status fmi2SerializeFMUstate(fmi2Component c, fmi2FMUstate s, fmi2Byte b[], size_t n) {
    (void)c; (void)s; (void)b; (void)n; return fmi2Error; }
fmi2Status fmi2DeSerializeFMUstate(fmi2Component c, const fmi2Byte b[], size_t n,
                                   fmi2FMUstate *s) {
    (void)c; (void)b; (void)n; (void)s; return fmi2Error; }
fmi2Status fmi2GetDirectionalDerivative(fmi2Component c, const fmi2ValueReference u[], size_t nu,
                                        const fmi2ValueReference z[], size_t nz,
                                        const fmi2Real dz[], fmi2Real dv[]) {
    (void)c; (void)u; (void)nu; (void)z; (void)nz; (void)dz; (void)dv; return fmi2Error; }

/* Model exchange */
fmi2Status fmi2EnterEventMode(fmi2Component c) { (void)c; return fmi2OK; }
fmi2Status fmi2NewDiscreteStates(fmi2Component c, fmi2EventInfo *info) {
    (void)c;
    memset(info, 0, sizeof *info);
    return fmi2OK;
}
fmi2Status fmi2EnterContinuousTimeMode(fmi2Component c) { (void)c; return fmi2OK; }
fmi2Status fmi2CompletedIntegratorStep(fmi2Component c, fmi2Boolean no_set, fmi2Boolean *event,
                                       fmi2Boolean *terminate) {
    (void)no_set;
    *event = event_due((Model *)c) ? fmi2True : fmi2False;
    *terminate = fmi2False;
    return fmi2OK;
}
fmi2Status fmi2SetTime(fmi2Component c, fmi2Real t) { ((Model *)c)->time = t; return fmi2OK; }
fmi2Status fmi2SetContinuousStates(fmi2Component c, const fmi2Real x[], size_t n) {
    Model *m = c;
    if (n != NX) return fmi2Error;
    memcpy(m->x, x, sizeof m->x);
    return fmi2OK;
}
fmi2Status fmi2GetDerivatives(fmi2Component c, fmi2Real dx[], size_t n) {
    Model *m = c;
    if (n != NX || failing(m, "fmi2GetDerivatives")) return fmi2Error;
    derivatives(m, m->x, dx);
    return fmi2OK;
}
fmi2Status fmi2GetEventIndicators(fmi2Component c, fmi2Real z[], size_t n) {
    (void)c; (void)z; return n ? fmi2Error : fmi2OK; }
fmi2Status fmi2GetContinuousStates(fmi2Component c, fmi2Real x[], size_t n) {
    Model *m = c;
    if (n != NX) return fmi2Error;
    memcpy(x, m->x, sizeof m->x);
    return fmi2OK;
}
fmi2Status fmi2GetNominalsOfContinuousStates(fmi2Component c, fmi2Real x[], size_t n) {
    size_t i;
    (void)c;
    for (i = 0; i < n; i++) x[i] = 1.0;
    return fmi2OK;
}

/* Co-simulation: one classic RK4 step of the communication step, the inputs held. */
fmi2Status fmi2SetRealInputDerivatives(fmi2Component c, const fmi2ValueReference vr[], size_t n,
                                       const fmi2Integer order[], const fmi2Real value[]) {
    (void)c; (void)vr; (void)n; (void)order; (void)value; return fmi2Error; }
fmi2Status fmi2GetRealOutputDerivatives(fmi2Component c, const fmi2ValueReference vr[], size_t n,
                                        const fmi2Integer order[], fmi2Real value[]) {
    (void)c; (void)vr; (void)n; (void)order; (void)value; return fmi2Error; }
fmi2Status fmi2DoStep(fmi2Component c, fmi2Real t, fmi2Real h, fmi2Boolean no_set) {
    Model *m = c;
    (void)no_set;
    m->time = t;
    if (failing(m, "fmi2DoStep")) return fmi2Error;
    rk4(m, h);
    m->time = t + h;
    return fmi2OK;
}
fmi2Status fmi2CancelStep(fmi2Component c) { (void)c; return fmi2Error; }
fmi2Status fmi2GetStatus(fmi2Component c, const fmi2StatusKind k, fmi2Status *v) {
    (void)c; (void)k; (void)v; return fmi2Discard; }
fmi2Status fmi2GetRealStatus(fmi2Component c, const fmi2StatusKind k, fmi2Real *v) {
    Model *m = c;
    if (k != fmi2LastSuccessfulTime) return fmi2Discard;
    *v = m->time;
    return fmi2OK;
}
fmi2Status fmi2GetIntegerStatus(fmi2Component c, const fmi2StatusKind k, fmi2Integer *v) {
    (void)c; (void)k; (void)v; return fmi2Discard; }
fmi2Status fmi2GetBooleanStatus(fmi2Component c, const fmi2StatusKind k, fmi2Boolean *v) {
    (void)c; (void)k; (void)v; return fmi2Discard; }
fmi2Status fmi2GetStringStatus(fmi2Component c, const fmi2StatusKind k, fmi2String *v) {
    (void)c; (void)k; (void)v; return fmi2Discard; }
