"""The coarse world: an hourly path from a fixed epoch of regimes, volatility, macro, premium and log prices.

Generated sequentially from EPOCH in blocks of BLOCK_HOURS, each block from its own random stream
`(seed, 1, block)` and the state the previous block ended in, so hour h is a function of (seed, h) only, however far
the path has been extended. Intraday minutes are drawn per day later (intraday.py) and bridged to these anchors.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np

from engine.data.simulator.events import CRASH, EMPTY, MIN_MS, PUMP, EventTable, event_fields
from engine.data.simulator.markets import Underlying

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: the simulated market opens here
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BLOCK_HOURS = 720
REGIMES = ("trend_up", "trend_down", "range", "crash")
TREND_UP, TREND_DOWN, RANGE = 0, 1, 2

P_EXIT = 1.0 / 96.0  # regimes last four days on average
REGIME_DRIFT = np.array([5e-4, -5e-4, 0.0])  # hourly log drift of the market factor
EVENT_COMPENSATION = 1.6e-4  # hourly drift offsetting the crashes' expected net loss (long-run level stays put)
REGIME_VOL = np.array([0.0, 0.15, -0.2])  # log-vol offset
REGIME_PREMIUM = np.array([6e-4, -1.5e-4, 1.2e-4])  # perp premium the regime pulls towards
CRASH_HAZARD = np.array([1 / 500, 1 / 80, 1 / 200])  # per hour, by regime
PUMP_HAZARD = np.array([1 / 160, 1 / 500, 1 / 300])
FIZZLE_P = 0.15
MEAN_REVERSION = math.log(2) / (24 * 60)  # log price pulled to its anchor level, half-life 60 days
VOL_SLOW = (math.log(2) / 96, 0.35)  # (per-hour reversion, stationary std) of the slow log-vol factor
VOL_FAST = (math.log(2) / 6, 0.3)
MACRO_PHI = 0.5 ** (1 / (24 * 12))
PREMIUM_PHI = 0.5 ** (1 / 8)
IDIO_HALF_LIFE_H = 72.0
IDIO_STD = 4e-4  # stationary std of an asset's own hourly drift
SEASON_AMP = 0.3  # intraday volatility seasonality, peak at 15:00 UTC
STRESS_VOL = 1.5  # minute volatility multiplier per unit of stress


_SEASON = (1.0 + SEASON_AMP * np.cos(2 * np.pi * (np.arange(1440) / 60 - 15.0) / 24.0)) \
    / math.sqrt(1.0 + SEASON_AMP ** 2 / 2)


_SEASON_SQ_HOUR = (_SEASON ** 2).reshape(24, 60).sum(axis=1)  # calm-hour sum of squared minute seasonality


def season(ts: np.ndarray) -> np.ndarray:
    """Intraday volatility seasonality (mean square 1) at minute timestamps."""
    return _SEASON[(ts % DAY_MS) // 60_000]


_AR_CHUNK = 120


@functools.lru_cache(maxsize=32)
def _ar_matrix(phi: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangular powers of phi for one chunk, and the carry weights phi**(t+1)."""
    lag = np.arange(_AR_CHUNK)
    diff = lag[:, None] - lag[None, :]
    return np.where(diff >= 0, phi ** np.maximum(diff, 0), 0.0), phi ** (lag + 1.0)


def _ar1(eps: np.ndarray, phi: float, last: np.ndarray) -> np.ndarray:
    """y[t] = phi * y[t-1] + eps[t] along axis 0, continuing from `last` (exact, in 120-step matrix chunks)."""
    eps = np.asarray(eps, dtype=float)
    flat = eps.reshape(eps.shape[0], -1)
    mat, carry_w = _ar_matrix(float(phi))
    prev = np.asarray(last, dtype=float).reshape(-1) * np.ones(flat.shape[1])
    out = np.empty_like(flat)
    for a in range(0, flat.shape[0], _AR_CHUNK):
        b = min(a + _AR_CHUNK, flat.shape[0])
        m = b - a
        out[a:b] = mat[:m, :m] @ flat[a:b] + carry_w[:m, None] * prev[None, :]
        prev = out[b - 1]
    return out.reshape(eps.shape)


def std_t(rng: np.random.Generator, df: float, size: tuple[int, ...] | int) -> np.ndarray:
    """Student-t draws scaled to unit variance (fat tails without changing the volatility scale)."""
    return rng.standard_t(df, size) * math.sqrt((df - 2) / df)


class World:
    """The hourly coarse path for one seed, extended lazily and cached; thread-safe."""

    def __init__(self, seed: int, underlyings: tuple[Underlying, ...]) -> None:
        """Start an empty path at EPOCH for `seed` over `underlyings`."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.und = underlyings
        k = len(underlyings)
        self.sigma = np.array([u.sigma_min for u in underlyings])
        self.loading = np.array([u.loading for u in underlyings])
        self.beta = np.array([u.crash_beta for u in underlyings])
        self.x0 = np.log([u.start_price for u in underlyings])
        self._lock = threading.RLock()
        self._bufs: dict[str, np.ndarray] = {}
        self.hours = 0
        self.regime = np.zeros(0, np.int8)
        self.logvol = np.zeros(0)
        self.macro = np.zeros(0)
        self.prem = np.zeros((0, k))  # perp premium per underlying at the start of each hour
        self.x = self.x0[None, :].copy()  # log price at the start of each hour (one row more than hours)
        self.noise = np.zeros((0, k))  # the hour's diffusive log-return noise the minutes are bridged to
        self.ev_hour = np.zeros((0, k))  # the hour's episode-driven log move
        self.stress_hour = np.zeros(0)  # mean stress over the hour
        self.flow_noise = np.zeros((0, 2 + k))  # feed noise: macro, sentiment, on-chain per underlying
        self.events = EMPTY
        self._tables: list[EventTable] = []
        self._state = {"macro": 0.0, "vs": 0.0, "vf": 0.0, "regime": RANGE, "prem": REGIME_PREMIUM[RANGE],
                       "next_event": 0, "forced": (-1, RANGE), "idio": np.zeros(k)}
        self.idio_scale = np.array([0.5] + [1.0] * (k - 1))  # BTC leads the market; alts wander more

    def ensure_hours(self, n_hours: int) -> None:
        """Extend the path so that hours [0, n_hours) and the anchor x[n_hours] exist."""
        if n_hours > 5_000_000:
            raise ValueError(f"time: {n_hours} hours after the simulator epoch is out of range")
        with self._lock:
            while self.hours < n_hours:
                self._extend(self.hours // BLOCK_HOURS)

    def hour_of(self, ts_ms: int) -> int:
        """Hour index (since EPOCH) containing ts_ms."""
        return (int(ts_ms) - EPOCH_MS) // HOUR_MS

    def events_between(self, t0: int, t1: int) -> EventTable:
        """Episodes influencing [t0, t1); extends the path far enough to know them all."""
        self.ensure_hours(self.hour_of(t1) + 2)
        return self.events.window(t0, t1)

    def _extend(self, block: int) -> None:
        """Generate block `block` from its own random stream and the carried-over state."""
        rng = np.random.default_rng([self.seed, 1, block])
        n, k, st = BLOCK_HOURS, len(self.und), self._state
        h0 = block * BLOCK_HOURS
        macro = _ar1(rng.standard_normal(n) * math.sqrt(1 - MACRO_PHI ** 2), MACRO_PHI, np.array([st["macro"]]))
        u = rng.random((n, 9))
        regime, tables = self._regimes(h0, macro, u)
        self._tables.extend(tables)
        self.events = EventTable.concat(self._tables)
        # Minute-level stress and episode drift over the block, aggregated per hour.
        # Only hours an episode touches are evaluated minute by minute; elsewhere stress and drift are zero.
        t_block = EPOCH_MS + h0 * HOUR_MS
        near = self.events.window(t_block, t_block + n * HOUR_MS)
        touched = np.zeros(n, bool)
        for a, b in zip(near.start, near.span_end()):
            touched[max(0, (a - t_block) // HOUR_MS):max(0, min(n, (b - t_block) // HOUR_MS + 1))] = True
        hrs = np.flatnonzero(touched)
        ts = (t_block + hrs[:, None] * HOUR_MS + np.arange(60)[None, :] * MIN_MS).ravel()
        ef = event_fields(near, ts)
        stress_hour, drift_hour = np.zeros(n), np.zeros(n)
        stress_hour[hrs] = ef.stress.reshape(-1, 60).mean(axis=1)
        drift_hour[hrs] = ef.drift.reshape(-1, 60).sum(axis=1)
        ev_hour = drift_hour[:, None] * self.beta[None, :]
        a_s, s_s = VOL_SLOW
        a_f, s_f = VOL_FAST
        vs = _ar1(rng.standard_normal(n) * s_s * math.sqrt(1 - (1 - a_s) ** 2), 1 - a_s, np.array([st["vs"]]))
        vf = _ar1(rng.standard_normal(n) * s_f * math.sqrt(1 - (1 - a_f) ** 2), 1 - a_f, np.array([st["vf"]]))
        logvol = vs + vf + REGIME_VOL[regime] - (s_s ** 2 + s_f ** 2) / 2
        # Hourly noise variance = sum of the minute variances the intraday layer will use.
        hour_of_day = (h0 + np.arange(n)) % 24
        stress_sq = _SEASON_SQ_HOUR[hour_of_day]
        if hrs.size:
            msq = (season(ts) * (1 + STRESS_VOL * ef.stress)) ** 2
            stress_sq[hrs] = msq.reshape(-1, 60).sum(axis=1)
        var = stress_sq[:, None] * (self.sigma[None, :] * np.exp(logvol)[:, None]) ** 2
        z = std_t(rng, 5.0, n)
        idio = std_t(rng, 5.0, (n, k))
        noise = np.sqrt(var) * (self.loading * z[:, None] + np.sqrt(1 - self.loading ** 2) * idio)
        drift = (REGIME_DRIFT[regime][:, None] * self.beta[None, :] ** 0.5
                 + EVENT_COMPENSATION * self.beta[None, :])
        # Slow idiosyncratic drift per asset (rotation between coins): daily correlation below the 1m correlation.
        idio_phi = 0.5 ** (1 / IDIO_HALF_LIFE_H)
        idio_drift = _ar1(rng.standard_normal((n, k)) * IDIO_STD * math.sqrt(1 - idio_phi ** 2) * self.idio_scale,
                          idio_phi, st["idio"])
        drift = drift + idio_drift
        kappa = MEAN_REVERSION
        x = _ar1(kappa * self.x0[None, :] + drift + ev_hour + noise, 1 - kappa, self.x[-1])
        pin = (1 - PREMIUM_PHI) * REGIME_PREMIUM[regime] + 1.2e-4 * rng.standard_normal(n) - 6e-4 * stress_hour
        prem_c = _ar1(pin, PREMIUM_PHI, np.array([st["prem"]]))
        mult = np.array([uu.premium_mult for uu in self.und])
        prem = prem_c[:, None] * mult[None, :] + 2e-5 * rng.standard_normal((n, k))
        flow = rng.standard_normal((n, 2 + k))
        self._append({"regime": regime, "logvol": logvol, "macro": macro, "prem": prem, "x": x, "noise": noise,
                      "ev_hour": ev_hour, "stress_hour": stress_hour, "flow_noise": flow})
        st["idio"] = idio_drift[-1].copy()
        st.update(macro=float(macro[-1]), vs=float(vs[-1]), vf=float(vf[-1]), prem=float(prem_c[-1]))
        self.hours += n

    def _append(self, parts: dict[str, np.ndarray]) -> None:
        """Append a block to the hourly arrays (amortised growth; the public attributes are views)."""
        for name, new in parts.items():
            cur = getattr(self, name)
            buf = self._bufs.get(name)
            need = cur.shape[0] + new.shape[0]
            if buf is None or buf.shape[0] < need:
                buf = np.empty((max(need, 2 * (0 if buf is None else buf.shape[0])),) + new.shape[1:], new.dtype)
                buf[:cur.shape[0]] = cur
                self._bufs[name] = buf
            buf[cur.shape[0]:need] = new
            setattr(self, name, buf[:need])

    def _regimes(self, h0: int, macro: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, list[EventTable]]:
        """Run the regime Markov chain and schedule informed-flow episodes for one block."""
        st = self._state
        n = macro.size
        regime = np.empty(n, np.int8)
        macro, u = macro.tolist(), u.tolist()  # plain floats: this loop is the coarse path's only Python loop
        crash_h, pump_h = CRASH_HAZARD.tolist(), PUMP_HAZARD.tolist()
        r = st["regime"]
        starts, leads, durs, sizes, kinds = [], [], [], [], []
        for i in range(n):
            h = h0 + i
            ui = u[i]
            forced_h, forced_r = st["forced"]
            if h == forced_h:
                r = forced_r
            elif ui[0] < P_EXIT:
                m = macro[i]
                w = [math.exp(0.8 * m), math.exp(-0.8 * m), 1.3]
                w[r] = 0.0
                pick = ui[1] * sum(w)
                r = 0 if pick < w[0] else (1 if pick < w[0] + w[1] else 2)
            regime[i] = r
            if h < st["next_event"]:
                continue
            lam_c = crash_h[r] * math.exp(-0.4 * macro[i])
            lam_p = pump_h[r] * math.exp(0.3 * macro[i])
            if ui[2] >= lam_c + lam_p:
                continue
            kind = CRASH if ui[2] < lam_c else PUMP
            offset = int(ui[3] * 60)
            lead = 15 + int(ui[4] * 76)
            gauss = math.sqrt(-2 * math.log(max(ui[5], 1e-12))) * math.cos(2 * math.pi * ui[6])
            if kind == CRASH:
                dur = 20 + int(ui[7] * 101)
                size = -min(0.2, max(0.03, math.exp(math.log(0.06) + 0.4 * gauss)))
            else:
                dur = 15 + int(ui[7] * 46)
                size = min(0.06, max(0.012, math.exp(math.log(0.025) + 0.35 * gauss)))
            if ui[8] < FIZZLE_P:
                size *= 0.1
            start = EPOCH_MS + h * HOUR_MS + offset * MIN_MS
            starts.append(start), leads.append(lead), durs.append(dur), sizes.append(size), kinds.append(kind)
            end_h = h + (offset + lead + dur) // 60 + 1
            st["next_event"] = end_h + 4 + (3 * dur) // 60
            if kind == CRASH and abs(size) > 0.02:
                st["forced"] = (end_h, TREND_DOWN if ui[1] < 0.5 else RANGE)
        st["regime"] = r
        table = EventTable(np.array(starts, np.int64), np.array(leads, np.int64), np.array(durs, np.int64),
                           np.array(sizes, float), np.array(kinds, np.int8))
        return regime, [table] if starts else []
