#!/usr/bin/python3
"""Fits the polynomial P of the engine's normal CDF (src/model/kernels.h,
k_phi): erfc(z) = t * exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0, as a
degree-9 polynomial in t on (0, 1], by weighted least squares iterated
towards the minimax fit (Lawson), against Python's math.erfc in double.
Prints the coefficients (constant term first), the fit's worst error in
log erfc, and the worst relative error of erfc evaluated in float32.

    /usr/bin/python3 tools/dev/fit_erfc.py
"""
import math
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:  # a fresh machine: Debian's numpy, as tools/bootstrap.sh installs it
    if os.geteuid() != 0:
        sys.exit("fit_erfc.py: needs python3-numpy (apt-get install python3-numpy)")
    subprocess.run(["apt-get", "install", "-y", "-qq", "python3-numpy"], check=True)
    import numpy as np

DEG = 9
N = 4000

k = np.arange(N)
t = 0.5 + 0.5 * np.cos((2 * k + 1) * np.pi / (2 * N))  # Chebyshev nodes on (0, 1)
t = t[t > 1e-3]
z = 2.0 * (1.0 / t - 1.0)
g = np.array([math.log(math.erfc(zi) / ti) + zi * zi if math.erfc(zi) > 1e-300 else np.nan
              for zi, ti in zip(z, t)])
ok = np.isfinite(g)
V = np.vander(t[ok], DEG + 1, increasing=True)
w = np.ones(ok.sum())
for _ in range(200):
    sw = np.sqrt(w)
    c, *_ = np.linalg.lstsq(V * sw[:, None], g[ok] * sw, rcond=None)
    r = np.abs(V @ c - g[ok])
    w = w * r / r.sum() * len(r)
    w /= w.sum() / len(w)
print("coefficients (t^0 .. t^9):", repr(c.tolist()))
print("worst |error| in log erfc: %.3g" % np.abs(V @ c - g[ok]).max())


def erfc32(zz):
    zz = np.float32(zz)
    tt = np.float32(1) / (np.float32(1) + np.float32(0.5) * zz)
    p = np.float32(c[-1])
    for ci in c[-2::-1]:
        p = p * tt + np.float32(ci)
    return float(tt * np.exp(np.float32(-zz * zz)) * np.exp(p))


zs = np.linspace(0, 4, 8001)
print("worst relative error of erfc in float32 on [0, 4]: %.3g"
      % max(abs(erfc32(zz) - math.erfc(zz)) / math.erfc(zz) for zz in zs))
