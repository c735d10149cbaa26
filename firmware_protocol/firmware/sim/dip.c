/* dip.c - see dip.h. A line-by-line port of the numba kernels of hil/dynamics/dip.py. */
#include "dip.h"

#include <math.h>

#ifdef DIP_REAL_FLOAT
#define SIN sinf
#define COS cosf
#define R(x) x##f
#else
#define SIN sin
#define COS cos
#define R(x) x
#endif

void dip_default_params(dip_params *p)
{
    p->cart_mass_kg = 1.5;
    p->link1_mass_kg = 0.2;
    p->link2_mass_kg = 0.15;
    p->link1_length_m = 0.4;
    p->link2_length_m = 0.3;
    p->link1_com_m = 0.2;
    p->link2_com_m = 0.15;
    p->link1_inertia_kgm2 = 0.0081;
    p->link2_inertia_kgm2 = 0.0034;
    p->gravity_mps2 = 9.81;
    p->cart_friction_nspm = 0.2;
    p->joint1_friction_nmsprad = 0.005;
    p->joint2_friction_nmsprad = 0.004;
    p->max_force_n = 150.0;
}

int dip_pack(const dip_params *p, dip_packed *out)
{
    double m1 = p->link1_mass_kg, m2 = p->link2_mass_kg;
    double l1 = p->link1_length_m, c1 = p->link1_com_m, c2 = p->link2_com_m;
    double a = m1 * c1 + m2 * l1;
    double b = m2 * c2;
    double g = p->gravity_mps2;
    if (!(p->cart_mass_kg > 0 && m1 > 0 && m2 > 0 && l1 > 0 && p->link2_length_m > 0 &&
          p->link1_inertia_kgm2 > 0 && p->link2_inertia_kgm2 > 0 && p->max_force_n > 0 &&
          c1 >= 0 && c1 <= l1 && c2 >= 0 && c2 <= p->link2_length_m && g >= 0 &&
          p->cart_friction_nspm >= 0 && p->joint1_friction_nmsprad >= 0 &&
          p->joint2_friction_nmsprad >= 0)) {
        return -1;
    }
    out->total_mass = (dip_real)(p->cart_mass_kg + m1 + m2);
    out->a = (dip_real)a;
    out->b = (dip_real)b;
    out->d = (dip_real)(m2 * l1 * c2);
    out->j1 = (dip_real)(m1 * c1 * c1 + m2 * l1 * l1 + p->link1_inertia_kgm2);
    out->j2 = (dip_real)(m2 * c2 * c2 + p->link2_inertia_kgm2);
    out->ga = (dip_real)(g * a);
    out->gb = (dip_real)(g * b);
    out->bc = (dip_real)p->cart_friction_nspm;
    out->b1 = (dip_real)p->joint1_friction_nmsprad;
    out->b2 = (dip_real)p->joint2_friction_nmsprad;
    out->max_force = (dip_real)p->max_force_n;
    return 0;
}

/* (x'', th1'', th2''): M q'' = [force, 0, 0] - bias, by the symmetric adjugate. */
static void accelerations(dip_real th1, dip_real th2, dip_real x_dot, dip_real w1,
                          dip_real w2, dip_real force, const dip_packed *p, dip_real acc[3])
{
    dip_real s1 = SIN(th1), c1 = COS(th1);
    dip_real s2 = SIN(th2), c2 = COS(th2);
    dip_real s12 = s1 * c2 - c1 * s2;
    dip_real c12 = c1 * c2 + s1 * s2;
    dip_real m00 = p->total_mass, m01 = p->a * c1, m02 = p->b * c2;
    dip_real m11 = p->j1, m12 = p->d * c12, m22 = p->j2;
    dip_real relative = p->b2 * (w2 - w1);
    dip_real h0 = -p->a * s1 * w1 * w1 - p->b * s2 * w2 * w2 + p->bc * x_dot;
    dip_real h1 = p->d * s12 * w2 * w2 - p->ga * s1 + p->b1 * w1 - relative;
    dip_real h2 = -p->d * s12 * w1 * w1 - p->gb * s2 + relative;
    dip_real r0 = force - h0, r1 = -h1, r2 = -h2;
    dip_real a00 = m11 * m22 - m12 * m12;
    dip_real a01 = m02 * m12 - m01 * m22;
    dip_real a02 = m01 * m12 - m02 * m11;
    dip_real a11 = m00 * m22 - m02 * m02;
    dip_real a12 = m01 * m02 - m00 * m12;
    dip_real a22 = m00 * m11 - m01 * m01;
    dip_real inv_det = R(1.0) / (m00 * a00 + m01 * a01 + m02 * a02);
    acc[0] = (a00 * r0 + a01 * r1 + a02 * r2) * inv_det;
    acc[1] = (a01 * r0 + a11 * r1 + a12 * r2) * inv_det;
    acc[2] = (a02 * r0 + a12 * r1 + a22 * r2) * inv_det;
}

void dip_derivatives(const dip_real s[6], dip_real force, const dip_packed *p, dip_real out[6])
{
    dip_real acc[3];
    accelerations(s[1], s[2], s[3], s[4], s[5], force, p, acc);
    out[0] = s[3];
    out[1] = s[4];
    out[2] = s[5];
    out[3] = acc[0];
    out[4] = acc[1];
    out[5] = acc[2];
}

static void axpy(const dip_real y[3], dip_real h, const dip_real k[3], dip_real out[3])
{
    out[0] = y[0] + h * k[0];
    out[1] = y[1] + h * k[1];
    out[2] = y[2] + h * k[2];
}

static void combine(dip_real y[3], dip_real h, const dip_real k1[3], const dip_real k2[3],
                    const dip_real k3[3], const dip_real k4[3])
{
    dip_real w = h / R(6.0);
    int i;
    for (i = 0; i < 3; i++) {
        y[i] = y[i] + w * (k1[i] + R(2.0) * (k2[i] + k3[i]) + k4[i]);
    }
}

static void acc_at(const dip_real q[3], const dip_real v[3], dip_real u, const dip_packed *p,
                   dip_real out[3])
{
    accelerations(q[1], q[2], v[0], v[1], v[2], u, p, out);
}

void dip_rk4_step(const dip_real state[6], dip_real force, dip_real dt_s, int substeps,
                  const dip_packed *p, dip_real out[6])
{
    dip_real u = force < -p->max_force ? -p->max_force
                 : (force > p->max_force ? p->max_force : force);
    dip_real h = dt_s / (dip_real)substeps;
    dip_real half = R(0.5) * h;
    dip_real q[3], v[3], a1[3], a2[3], a3[3], a4[3], v2[3], v3[3], v4[3], qt[3];
    int k;
    q[0] = state[0];
    q[1] = state[1];
    q[2] = state[2];
    v[0] = state[3];
    v[1] = state[4];
    v[2] = state[5];
    for (k = 0; k < substeps; k++) {
        acc_at(q, v, u, p, a1);
        axpy(v, half, a1, v2);
        axpy(q, half, v, qt);
        acc_at(qt, v2, u, p, a2);
        axpy(v, half, a2, v3);
        axpy(q, half, v2, qt);
        acc_at(qt, v3, u, p, a3);
        axpy(v, h, a3, v4);
        axpy(q, h, v3, qt);
        acc_at(qt, v4, u, p, a4);
        combine(q, h, v, v2, v3, v4); /* positions first: they read the old v */
        combine(v, h, a1, a2, a3, a4);
    }
    out[0] = q[0];
    out[1] = q[1];
    out[2] = q[2];
    out[3] = v[0];
    out[4] = v[1];
    out[5] = v[2];
}
