/*
 * dip.h - the double inverted pendulum on a cart, the model of hil/dynamics/dip.py in C:
 * the same Lagrangian equations (M(q) q'' = [u, 0, 0] - bias(q, q')), the same packed
 * constants and the same classic RK4 with the force held and saturated. Used by the
 * simulated ports to stand in for the pendulum behind the HAL; never by a board.
 *
 * Precision per target: `dip_real` is double on the host (checked against the Python model
 * to 1e-12 in tests/firmware_protocol/test_fw_dynamics.py) and float on the Cortex-M4F of
 * the QEMU port, whose FPU is single-precision only (double there would be soft-float,
 * ~10x slower per operation); the float build is checked against the same Python model to
 * the tolerance float allows. Build with -DDIP_REAL_FLOAT for float.
 */
#ifndef HIL_DIP_H
#define HIL_DIP_H

#ifdef __cplusplus
extern "C" {
#endif

#ifdef DIP_REAL_FLOAT
typedef float dip_real;
#else
typedef double dip_real;
#endif

/* The physical parameters, named as DIPParams' fields (SI units). */
typedef struct {
    double cart_mass_kg, link1_mass_kg, link2_mass_kg;
    double link1_length_m, link2_length_m, link1_com_m, link2_com_m;
    double link1_inertia_kgm2, link2_inertia_kgm2, gravity_mps2;
    double cart_friction_nspm, joint1_friction_nmsprad, joint2_friction_nmsprad;
    double max_force_n;
} dip_params;

/* The derived constants the kernel reads (DIPParams._pack, in its order). */
typedef struct {
    dip_real total_mass, a, b, d, j1, j2, ga, gb, bc, b1, b2, max_force;
} dip_packed;

void dip_default_params(dip_params *p);
/* 0, or -1 if a parameter breaks DIPParams' constraints (positive masses etc.). */
int dip_pack(const dip_params *p, dip_packed *out);
/* d state / dt at state under force (not saturated). */
void dip_derivatives(const dip_real state[6], dip_real force, const dip_packed *p,
                     dip_real out[6]);
/* Advance by dt_s: `substeps` RK4 steps, force saturated and held. out may be state. */
void dip_rk4_step(const dip_real state[6], dip_real force, dip_real dt_s, int substeps,
                  const dip_packed *p, dip_real out[6]);

#ifdef __cplusplus
}
#endif

#endif /* HIL_DIP_H */
