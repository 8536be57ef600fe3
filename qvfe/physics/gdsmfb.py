"""GDSMFB exchange-correlation free energy of the uniform electron gas (thermodynamic limit, 3D).

One job: f_xc(rs, theta, xi) in Ha per electron from Groth, Dornheim, Sjostrom, Malone, Foulkes and
Bonitz, Phys. Rev. Lett. 119, 135001 (2017), "Ab initio exchange-correlation free energy of the
uniform electron gas at warm dense matter conditions".

theta is T / T_F of the *paramagnetic* gas of the same total density, k_F = (3 pi^2 n)^(1/3), for
every xi (this differs from Brown et al., who use the gas's own T_F; see ``qvfe.physics.heg``).
The spin interpolation is GDSMFB's own (h1, h2, lambda1 below); libxc's GDSMFB uses KSDT's
constants for 0 < xi < 1 and differs by up to 1.8 mHa there.

Written with ``jax.numpy`` arithmetic so it is differentiable (e.g. e_xc = f_xc - theta df/dtheta
at fixed rs, s_xc from the theta derivative) and works elementwise on arrays; it also accepts
Python floats. Use float64 (``jax_enable_x64``) for the last digits.

The coefficients below are those of the paper (and of ``data/fxc_pade_coefficients.csv``, which
tests/test_physics_gdsmfb.py checks against these constants).

Example::

    fxc(1.0, 1.0, 0.0)        # -0.395056982 Ha per electron (rs = 1, theta = 1, xi = 0)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["COEFFICIENTS", "SPIN_INTERPOLATION", "fxc", "fxc_zeta"]

# Pade coefficients of GDSMFB (PRL 119, 135001), zeta = 0 (paramagnetic), 1 (ferromagnetic).
# b5 is not free: b5 = b3 sqrt(3/2) omega / lambda fixes the high-temperature (Debye-Hueckel) limit.
COEFFICIENTS: dict[int, dict[str, float]] = {
    0: dict(b1=0.3436902, b2=7.82159531356, b3=0.300483986662, b4=15.8443467125,
            c1=0.8759442, c2=-0.230130843551, c3=1.0,
            d1=0.72700876, d2=2.38264734144, d3=0.30221237251, d4=4.39347718395, d5=0.729951339845,
            e1=0.25388214, e2=0.815795138599, e3=0.0646844410481, e4=15.0984620477,
            e5=0.230761357474),
    1: dict(b1=0.84987704, b2=3.04033012073, b3=0.0775730131248, b4=7.57703592489,
            c1=0.91126873, c2=-0.0307957123308, c3=1.0,
            d1=1.48658718, d2=4.92684905511, d3=0.0849387225179, d4=8.3269821188, d5=0.218864952126,
            e1=0.27454097, e2=0.400994856555, e3=2.88773194962, e4=6.33499237092, e5=24.823008753),
}
# alpha(rs, theta) = 2 - h(rs) exp(-theta lambda(rs, theta)), h = (2/3 + h1 rs)/(1 + h2 rs),
# lambda = lambda1 + lambda2 theta sqrt(rs).
SPIN_INTERPOLATION = dict(h1=3.18747258, h2=7.74662802, lambda1=1.85909536, lambda2=0.0)

_LAMBDA = (4.0 / (9.0 * math.pi)) ** (1.0 / 3.0)
_OMEGA = {0: 1.0, 1: 2.0 ** (1.0 / 3.0)}


def _a(theta):
    """Exchange at rs -> 0 (the HF limit, fit of Perrot and Dharma-wardana)."""
    t2 = theta * theta
    return (0.610887 * jnp.tanh(1.0 / theta) * (0.75 + 3.04363 * t2 - 0.09227 * t2 * theta
                                                + 1.7035 * t2 * t2)
            / (1.0 + 8.31051 * t2 + 5.1105 * t2 * t2))


def fxc_zeta(rs, theta, zeta: int):
    """f_xc of the paramagnetic (zeta=0) or ferromagnetic (zeta=1) gas, Ha per electron.

    ``theta`` here is relative to the T_F of that same gas (the fit's internal variable).
    """
    if zeta not in (0, 1):
        raise ValueError(f"zeta must be 0 or 1, got {zeta}")
    p = COEFFICIENTS[zeta]
    omega = _OMEGA[zeta]
    t2 = theta * theta
    t4 = t2 * t2
    b5 = p["b3"] * math.sqrt(1.5) * omega / _LAMBDA
    sq = jnp.tanh(1.0 / jnp.sqrt(theta))
    b = sq * (p["b1"] + p["b2"] * t2 + p["b3"] * t4) / (1.0 + p["b4"] * t2 + b5 * t4)
    d = sq * (p["d1"] + p["d2"] * t2 + p["d3"] * t4) / (1.0 + p["d4"] * t2 + p["d5"] * t4)
    e = jnp.tanh(1.0 / theta) * (p["e1"] + p["e2"] * t2 + p["e3"] * t4) / (
        1.0 + p["e4"] * t2 + p["e5"] * t4)
    c = (p["c1"] + p["c2"] * jnp.exp(-p["c3"] / theta)) * e
    srs = jnp.sqrt(rs)
    return -(omega * _a(theta) + b * srs + c * rs) / (1.0 + d * srs + e * rs) / rs


def _check_arguments(rs, theta, xi) -> None:
    """rs > 0, theta > 0 and |xi| <= 1 where they are concrete (outside, the fit is NaN or
    divides by zero); traced values, under jit or grad, are the caller's."""
    for name, value, ok in (("rs", rs, lambda v: v > 0), ("theta", theta, lambda v: v > 0),
                            ("xi", xi, lambda v: np.abs(v) <= 1)):
        if not isinstance(value, jax.core.Tracer) and not np.all(ok(np.asarray(value))):
            raise ValueError(f"{name} must be {'in [-1, 1]' if name == 'xi' else '> 0'}, "
                             f"got {value}")


def fxc(rs, theta, xi=0.0):
    """GDSMFB f_xc(rs, theta, xi), Ha per electron; theta relative to the paramagnetic T_F.

    f = f0(rs, theta) + [f1(rs, theta 2^(-2/3)) - f0(rs, theta)] Phi(rs, theta, xi),
    Phi = [(1+xi)^alpha + (1-xi)^alpha - 2] / (2^alpha - 2).
    """
    _check_arguments(rs, theta, xi)
    s = SPIN_INTERPOLATION
    f0 = fxc_zeta(rs, theta, 0)
    f1 = fxc_zeta(rs, theta * 2.0 ** (-2.0 / 3.0), 1)
    h = (2.0 / 3.0 + s["h1"] * rs) / (1.0 + s["h2"] * rs)
    lam = s["lambda1"] + s["lambda2"] * theta * jnp.sqrt(rs)
    alpha = 2.0 - h * jnp.exp(-theta * lam)
    phi = ((1.0 + xi) ** alpha + (1.0 - xi) ** alpha - 2.0) / (2.0**alpha - 2.0)
    return f0 + (f1 - f0) * phi
