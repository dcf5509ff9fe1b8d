#!/usr/bin/env python3
"""Fits the f32 erf of reelsmith-embed's vectorised GELU (crates/embed/src/vmath.rs).

    python3 scripts/fit_erf.py            # needs numpy only

erf(x) ~ x * P(x^2) / Q(x^2) on (0, 3.92] (beyond 3.92 erf rounds to 1 in f32), P and Q of
degree 5, Q(0) = 1. The fit minimises the relative error: linearised least squares
(P - f Q = 0, weighted by 1 / (f Q) of the previous round, Loeb's iteration), then rounds of
Lawson reweighting towards the largest errors. It prints the error of the f64 fit, the error
of the f32 coefficients evaluated in f32 (Horner, as the Rust code does) against math.erf, and
the coefficients to paste.
"""
import math

import numpy as np

XMAX, NP, NQ = 3.92, 5, 5


def fit():
    xs = np.concatenate([np.linspace(1e-4, XMAX, 20000),
                         XMAX * (1 - np.cos(np.linspace(0, np.pi / 2, 4000)))])
    xs = xs[xs > 0]
    f = np.array([math.erf(x) / x for x in xs])
    s = xs * xs
    w = np.ones_like(s)
    q_prev = np.ones_like(s)
    for it in range(60):
        a = np.hstack([np.vstack([s ** i for i in range(NP + 1)]).T,
                       np.vstack([-f * s ** j for j in range(1, NQ + 1)]).T])
        wt = np.sqrt(w) / (f * q_prev)
        sol, *_ = np.linalg.lstsq(a * wt[:, None], f * wt, rcond=None)
        p = sol[:NP + 1]
        q = np.concatenate([[1.0], sol[NP + 1:]])
        pv, qv = np.polyval(p[::-1], s), np.polyval(q[::-1], s)
        err = np.abs(pv / qv - f) / f
        q_prev = qv
        if it >= 10:
            w = w * (err / err.max()) ** 0.5 + 1e-12
            w /= w.mean()
    print(f"f64 fit: max relative error {err.max():.3g}")
    return p.astype(np.float32), q.astype(np.float32)


def horner(c, v):
    acc = np.full_like(v, c[-1])
    for cc in c[-2::-1]:
        acc = acc * v + cc
    return acc


def main():
    p, q = fit()
    x = np.linspace(0, XMAX, 2_000_001, dtype=np.float32)
    s = x * x
    y = np.minimum(x * horner(p, s) / horner(q, s), np.float32(1.0)).astype(np.float64)
    ref = np.array([math.erf(float(v)) for v in x])
    print(f"f32 evaluation: max absolute error {np.abs(y - ref).max():.3g}")
    print("P =", [float(v) for v in p])
    print("Q =", [float(v) for v in q])


if __name__ == "__main__":
    main()
