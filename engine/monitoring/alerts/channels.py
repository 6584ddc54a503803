"""Off-box channels by URL through apprise (Telegram, Slack, Discord, ntfy, e-mail, JSON webhooks, ~100 more).

`build_channels` expands `${ENV}` references in each configured URL, validates it with apprise and fails with a
ConfigError naming `alerts.channels[i].url` and apprise's reason, so an engine with a bad channel refuses to start.
The expanded URL (which may hold a token or password) lives only in the Channel object in memory: what is stored in
state.db, logged or printed is apprise's privacy-redacted form.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.config import AlertsConfig, ConfigError

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_THROTTLE_S = 1.0  # longest pause apprise may take between two sends on one channel
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_APPRISE_LOCK = threading.Lock()  # apprise's plugin registry loads once; its log capture is per call


@dataclass
class Channel:
    """One validated channel: its index in alerts.channels, redacted URL, minimum severity and apprise object."""

    index: int
    redacted: str
    min_severity: str
    _url: str = field(repr=False)
    _obj: Any = field(default=None, repr=False)  # apprise plugin; used by this channel's one sender thread

    def wants(self, severity: str) -> bool:
        """True when a message of this severity goes to this channel."""
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]

    def send(self, title: str, body: str, severity: str) -> str | None:
        """Deliver one message now (blocking, bounded by the channel's timeouts); None on success, else the reason."""
        import apprise

        notify_type = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
                       "critical": apprise.NotifyType.FAILURE}[severity]
        if self._obj is None:
            self._obj, problems = _instantiate(self._url)
            if self._obj is None:
                return redact_text("; ".join(problems) or "apprise could not load the URL", self._url, self.redacted)
            self._obj.request_rate_per_sec = min(float(self._obj.request_rate_per_sec or 0.0), MAX_THROTTLE_S)
        with _Capture() as cap:
            ok = self._obj.notify(body=body, title=title, notify_type=notify_type)
        if ok:
            return None
        return redact_text("; ".join(cap.messages[-3:]) or "apprise reported a failed delivery", self._url,
                           self.redacted)


def expand_env(url: str, environ: Mapping[str, str], where: str) -> str:
    """Replace every `${NAME}` in a channel URL by the environment variable; ConfigError naming a missing one."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set (referenced as ${{{name}}})")
        return environ[name]

    return _ENV_REF.sub(sub, url)


def redact_text(text: str, secret_url: str, redacted: str) -> str:
    """Remove a secret-bearing URL and its userinfo/path secrets from a message before it is stored or shown."""
    out = text.replace(secret_url, redacted)
    m = re.match(r"^[a-z0-9+.-]+://([^@/?]+)@", secret_url, re.I)
    if m and ":" in m.group(1):
        password = m.group(1).split(":", 1)[1]
        if len(password) >= 3:
            out = out.replace(password, "****")
    return out


def fallback_redaction(url: str) -> str:
    """A redacted form for a URL apprise could not parse: scheme and host only."""
    m = re.match(r"^([a-z0-9+.-]+)://(?:[^@/?]*@)?([^/?:]*)", url, re.I)
    return f"{m.group(1)}://{m.group(2) or ''}/…" if m else "<unparseable>"


class _Capture(logging.Handler):
    """Collect apprise's own log lines (its reasons for rejecting a URL or failing a send) during one call."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._logger = logging.getLogger("apprise")
        self._thread = threading.get_ident()  # other channels' sender threads log to the same logger

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the text of one warning or error apprise logged on this thread."""
        if record.thread == self._thread:
            self.messages.append(record.getMessage())

    def __enter__(self) -> "_Capture":
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._logger.removeHandler(self)


def _instantiate(url: str) -> tuple[Any, list[str]]:
    """apprise's plugin object for a URL (None when invalid) and apprise's reasons when it is not."""
    import apprise

    with _APPRISE_LOCK, _Capture() as cap:
        obj = apprise.Apprise.instantiate(url)
    return obj, cap.messages


def _with_timeouts(url: str, timeout_s: float) -> str:
    """Add apprise's connect/read timeouts (cto/rto) unless the URL sets them, so one attempt is bounded."""
    sep = "&" if "?" in url else "?"
    extra = [f"{k}={timeout_s:g}" for k in ("cto", "rto") if not re.search(rf"[?&]{k}=", url)]
    return url + (sep + "&".join(extra) if extra else "")


def check_channel(index: int, url_template: str, min_severity: str, environ: Mapping[str, str],
                  timeout_s: float = 10.0) -> Channel:
    """Expand and validate one channel URL; ConfigError naming `alerts.channels[index].url` and the problem."""
    where = f"alerts.channels[{index}].url"
    url = expand_env(url_template.strip(), environ, where)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise ConfigError(f"{where}: not a URL (expected scheme://..., e.g. json://host/path or mailto://...)")
    from apprise.manager_plugins import NotificationManager

    if scheme not in NotificationManager():
        raise ConfigError(f"{where}: unknown channel type {scheme}:// (apprise supports e.g. tgram, slack, discord, "
                          "ntfy, mailto, json, form; see the apprise wiki)")
    url = _with_timeouts(url, timeout_s)
    obj, problems = _instantiate(url)
    if obj is None:
        reason = "; ".join(problems) or "apprise could not parse it"
        raise ConfigError(f"{where}: malformed {scheme}:// URL: {redact_text(reason, url, fallback_redaction(url))}")
    redacted = str(obj.url(privacy=True)).split("?", 1)[0]  # apprise's secret-free form, without its option list
    # apprise sleeps up to 5.5 s between two sends of one plugin object (its default politeness throttle): a halt
    # right after another message would miss the 5 s goal. Our per-channel rate limit governs volume, so cap it at 1 s.
    obj.request_rate_per_sec = min(float(getattr(obj, "request_rate_per_sec", 0.0) or 0.0), MAX_THROTTLE_S)
    return Channel(index=index, redacted=redacted, min_severity=min_severity, _url=url, _obj=obj)


def build_channels(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> list[Channel]:
    """Every configured channel, validated; the first bad one raises ConfigError naming its index and problem."""
    environ = os.environ if environ is None else environ
    return [check_channel(i, ch.url, ch.min_severity, environ, cfg.send_timeout_s)
            for i, ch in enumerate(cfg.channels)]


def timed_send(channel: Channel, title: str, body: str, severity: str) -> tuple[str | None, int]:
    """Send through a channel, catching anything apprise raises; (error or None, elapsed milliseconds)."""
    started = time.monotonic()
    try:
        error = channel.send(title, body, severity)
    except Exception as exc:  # noqa: BLE001 - a channel failing at send time never stops the engine
        error = redact_text(f"{type(exc).__name__}: {exc}", channel._url, channel.redacted)
    return error, int((time.monotonic() - started) * 1000)
