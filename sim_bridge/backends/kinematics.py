"""Compiled kernels of the vectorised kinematic engine (numba): motion under acceleration
limits, collisions with walls, obstacles and other robots, and a 2-D lidar.

Everything works on whole batches: positions ``(B, N, 2)``, headings ``(B, N)``, and
obstacles shared by all worlds (cylinders ``(K, 3)``: x, y, r; boxes ``(M, 6)``: x, y,
cos yaw, sin yaw, half length, half width). Each kernel has a serial and a parallel build;
the backend picks by batch size (threads cost more than they give on small batches).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from worlds.compiled import serial_and_parallel


def _integrate(pos, yaw, vel, target, accel, max_speed, holonomic, dt):
    """Ramp velocities toward targets under acceleration limits, then move.

    Unicycle robots: vel = (v, ω), exact arc. Holonomic: vel = (vx, vy) in the body frame,
    heading fixed. ``accel``/``max_speed`` are (N, 2) per robot.
    """
    B, N = yaw.shape
    for b in prange(B):
        for i in range(N):
            for k in range(2):
                dv = target[b, i, k] - vel[b, i, k]
                lim = accel[i, k] * dt
                if dv > lim:
                    dv = lim
                elif dv < -lim:
                    dv = -lim
                vel[b, i, k] += dv
            th = yaw[b, i]
            if holonomic[i]:
                vx, vy = vel[b, i, 0], vel[b, i, 1]
                speed = math.sqrt(vx * vx + vy * vy)
                if speed > max_speed[i, 0] > 0:
                    vx *= max_speed[i, 0] / speed
                    vy *= max_speed[i, 0] / speed
                    vel[b, i, 0], vel[b, i, 1] = vx, vy
                c, s = math.cos(th), math.sin(th)
                pos[b, i, 0] += (c * vx - s * vy) * dt
                pos[b, i, 1] += (s * vx + c * vy) * dt
            else:
                v, w = vel[b, i, 0], vel[b, i, 1]
                if abs(w) < 1e-6:
                    pos[b, i, 0] += v * math.cos(th) * dt
                    pos[b, i, 1] += v * math.sin(th) * dt
                else:
                    th2 = th + w * dt
                    pos[b, i, 0] += v / w * (math.sin(th2) - math.sin(th))
                    pos[b, i, 1] += -v / w * (math.cos(th2) - math.cos(th))
                    th = th2
                yaw[b, i] = (th + math.pi) % (2.0 * math.pi) - math.pi


def _collide(pos, radii, cyl, box, hx, hy, walls, contacts, iterations):
    """Push robots out of walls, obstacles and each other; flag every robot touched."""
    B, N, _ = pos.shape
    for b in prange(B):
        for i in range(N):
            contacts[b, i] = False
        for _ in range(iterations):
            for i in range(N):
                r = radii[i]
                x, y = pos[b, i, 0], pos[b, i, 1]
                if walls:
                    if x < -hx + r:
                        x = -hx + r
                        contacts[b, i] = True
                    elif x > hx - r:
                        x = hx - r
                        contacts[b, i] = True
                    if y < -hy + r:
                        y = -hy + r
                        contacts[b, i] = True
                    elif y > hy - r:
                        y = hy - r
                        contacts[b, i] = True
                for k in range(cyl.shape[0]):
                    dx, dy = x - cyl[k, 0], y - cyl[k, 1]
                    d = math.sqrt(dx * dx + dy * dy)
                    gap = d - cyl[k, 2] - r
                    if gap < 0.0:
                        if d < 1e-9:
                            dx, dy, d = 1.0, 0.0, 1.0
                        x -= gap * dx / d
                        y -= gap * dy / d
                        contacts[b, i] = True
                for k in range(box.shape[0]):
                    c, s = box[k, 2], box[k, 3]
                    lx = c * (x - box[k, 0]) + s * (y - box[k, 1])
                    ly = -s * (x - box[k, 0]) + c * (y - box[k, 1])
                    qx = min(max(lx, -box[k, 4]), box[k, 4])
                    qy = min(max(ly, -box[k, 5]), box[k, 5])
                    dx, dy = lx - qx, ly - qy
                    d = math.sqrt(dx * dx + dy * dy)
                    if d < r:
                        if d > 1e-9:
                            nx, ny, push = dx / d, dy / d, r - d
                        else:  # centre inside the box: leave by the nearest face
                            fx, fy = box[k, 4] - abs(lx), box[k, 5] - abs(ly)
                            if fx < fy:
                                nx, ny, push = (1.0 if lx >= 0 else -1.0), 0.0, fx + r
                            else:
                                nx, ny, push = 0.0, (1.0 if ly >= 0 else -1.0), fy + r
                        lx += nx * push
                        ly += ny * push
                        x = box[k, 0] + c * lx - s * ly
                        y = box[k, 1] + s * lx + c * ly
                        contacts[b, i] = True
                pos[b, i, 0], pos[b, i, 1] = x, y
            for i in range(N):
                for j in range(i + 1, N):
                    dx = pos[b, j, 0] - pos[b, i, 0]
                    dy = pos[b, j, 1] - pos[b, i, 1]
                    d = math.sqrt(dx * dx + dy * dy)
                    overlap = radii[i] + radii[j] - d
                    if overlap > 0.0:
                        if d < 1e-9:
                            dx, dy, d = 1.0, 0.0, 1.0
                        ux, uy = dx / d, dy / d
                        pos[b, i, 0] -= 0.5 * overlap * ux
                        pos[b, i, 1] -= 0.5 * overlap * uy
                        pos[b, j, 0] += 0.5 * overlap * ux
                        pos[b, j, 1] += 0.5 * overlap * uy
                        contacts[b, i] = True
                        contacts[b, j] = True


def _lidar(pos, yaw, radii, angles, rmin, rmax, cyl, box, hx, hy, walls, out):
    """Range (m) along each beam to the first wall, obstacle or other robot; inf if none."""
    B, N, _ = pos.shape
    R = angles.shape[0]
    for b in prange(B):
        for i in range(N):
            ox, oy = pos[b, i, 0], pos[b, i, 1]
            for a in range(R):
                th = yaw[b, i] + angles[a]
                dx, dy = math.cos(th), math.sin(th)
                best = rmax
                if walls:
                    if dx > 1e-12:
                        best = min(best, (hx - ox) / dx)
                    elif dx < -1e-12:
                        best = min(best, (-hx - ox) / dx)
                    if dy > 1e-12:
                        best = min(best, (hy - oy) / dy)
                    elif dy < -1e-12:
                        best = min(best, (-hy - oy) / dy)
                for k in range(cyl.shape[0] + N):
                    if k < cyl.shape[0]:
                        cx, cy, cr = cyl[k, 0], cyl[k, 1], cyl[k, 2]
                    else:
                        j = k - cyl.shape[0]
                        if j == i:
                            continue
                        cx, cy, cr = pos[b, j, 0], pos[b, j, 1], radii[j]
                    fx, fy = cx - ox, cy - oy
                    t = fx * dx + fy * dy
                    if t <= 0.0:
                        continue
                    h2 = fx * fx + fy * fy - t * t
                    if h2 > cr * cr:
                        continue
                    hit = t - math.sqrt(cr * cr - h2)
                    if 0.0 < hit < best:
                        best = hit
                for k in range(box.shape[0]):
                    c, s = box[k, 2], box[k, 3]
                    lx = c * (ox - box[k, 0]) + s * (oy - box[k, 1])
                    ly = -s * (ox - box[k, 0]) + c * (oy - box[k, 1])
                    ldx = c * dx + s * dy
                    ldy = -s * dx + c * dy
                    t0, t1 = 0.0, best
                    ok = True
                    for ax in range(2):
                        o = lx if ax == 0 else ly
                        d = ldx if ax == 0 else ldy
                        e = box[k, 4] if ax == 0 else box[k, 5]
                        if abs(d) < 1e-12:
                            if o < -e or o > e:
                                ok = False
                                break
                        else:
                            ta, tb = (-e - o) / d, (e - o) / d
                            if ta > tb:
                                ta, tb = tb, ta
                            t0 = max(t0, ta)
                            t1 = min(t1, tb)
                            if t0 > t1:
                                ok = False
                                break
                    if ok and t0 > 0.0:
                        best = t0
                out[b, i, a] = best if best < rmax else np.inf
                if out[b, i, a] < rmin:
                    out[b, i, a] = rmin


integrate, integrate_parallel = serial_and_parallel(_integrate)
collide, collide_parallel = serial_and_parallel(_collide)
lidar, lidar_parallel = serial_and_parallel(_lidar)
