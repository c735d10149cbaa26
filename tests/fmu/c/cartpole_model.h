/* The cart-pole's model, shared by the FMI 2 (cartpole.c) and FMI 3 (cartpole3.c) FMUs:
 * the same equations as hil/dynamics/cartpole.py, term for term. Include after the FMI
 * headers; LOG(m, status, text) reports through the including file's logger. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NX = 4, VR_DER = 4, VR_F = 8, VR_TAU = 9, VR_ENERGY = 10, VR_PAR = 20, NPAR = 14 };
enum { P_MC, P_M, P_L, P_C, P_I, P_G, P_BC, P_BP, P_X0, P_TH0, P_V0, P_W0, P_FAIL, P_EVENT };

struct Model {
    MODEL_CALLBACKS
    char name[64];
    double par[NPAR];
    double x[NX];
    double u[2];
    double time;
    int initialised;
};

static const double DEFAULTS[NPAR] = {
    1.0, 0.1, 0.5, 0.25, 0.1 * 0.5 * 0.5 / 12.0, 9.81, 0.1, 0.001, 0, 0, 0, 0, -1, -1};

/* d state / dt at x under (F, tau): the built-in model's _accelerations, term for term. */
static void derivatives(const Model *m, const double *x, double *dx) {
    const double *p = m->par;
    double total = p[P_MC] + p[P_M], a = p[P_M] * p[P_C];
    double j = p[P_M] * p[P_C] * p[P_C] + p[P_I], ga = p[P_G] * p[P_M] * p[P_C];
    double s = sin(x[1]), c = cos(x[1]), v = x[2], w = x[3];
    double m00 = total, m01 = a * c, m11 = j;
    double h0 = -a * s * w * w + p[P_BC] * v, h1 = -ga * s + p[P_BP] * w;
    double r0 = m->u[0] - h0, r1 = m->u[1] - h1;
    double inv_det = 1.0 / (m00 * m11 - m01 * m01);
    dx[0] = v;
    dx[1] = w;
    dx[2] = (m11 * r0 - m01 * r1) * inv_det;
    dx[3] = (m00 * r1 - m01 * r0) * inv_det;
}

static double energy(const Model *m) {
    const double *p = m->par;
    double c = cos(m->x[1]), v = m->x[2], w = m->x[3];
    double total = p[P_MC] + p[P_M], a = p[P_M] * p[P_C], j = p[P_M] * p[P_C] * p[P_C] + p[P_I];
    return 0.5 * (total * v * v + j * w * w) + a * c * v * w + p[P_G] * p[P_M] * p[P_C] * c;
}

static void rk4(Model *m, double h) {
    double k1[NX], k2[NX], k3[NX], k4[NX], y[NX];
    int i;
    derivatives(m, m->x, k1);
    for (i = 0; i < NX; i++) y[i] = m->x[i] + 0.5 * h * k1[i];
    derivatives(m, y, k2);
    for (i = 0; i < NX; i++) y[i] = m->x[i] + 0.5 * h * k2[i];
    derivatives(m, y, k3);
    for (i = 0; i < NX; i++) y[i] = m->x[i] + h * k3[i];
    derivatives(m, y, k4);
    for (i = 0; i < NX; i++) m->x[i] += h / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i]);
}

static int failing(Model *m, const char *call) {
    char text[160];
    if (m->par[P_FAIL] < 0 || m->time < m->par[P_FAIL]) return 0;
    snprintf(text, sizeof text, "%s: the cart left its rails at t = %g s", call, m->time);
    LOG(m, 3, text);
    return 1;
}


/* From `event_at_s` on (>= 0), the model asks for an event after each integrator step. */
static int event_due(const Model *m) { return m->par[P_EVENT] >= 0 && m->time >= m->par[P_EVENT]; }
