"""Attacks as events: a victim's DDoS windows joined into one attack with a start, updates
and an end, so an operator is told once per attack rather than once per window.

An attack starts with a victim's first DDoS alert (provisional or final), is updated by each
later DDoS window of the same victim, and ends when a whole window has passed (in packet
time) after its last DDoS window without another: when the watermark gets there, or when the
victim's next DDoS window starts later than that (then a new attack starts; a backlog read in
one go learns of gaps this way). A provisional alert that its span's final
verdict withdraws also withdraws an attack it alone made.
"""

from __future__ import annotations

from datetime import datetime

from darkscope.monitor.outputs import iso

NS = 1_000_000_000


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * NS


class AttackTracker:
    """Open attacks by victim; :attr:`state` is JSON (checkpoints)."""

    def __init__(self, window_ns: int, state: dict[str, dict] | None = None) -> None:
        self.window_ns = window_ns
        self.state: dict[str, dict] = state or {}

    def observe(self, alerts: list[dict]) -> list[dict]:
        """Attack events for a batch of host-window alerts (in the order raised)."""
        events = []
        for alert in alerts:
            if alert.get("kind") != "ddos":
                continue
            if alert["stage"] == "retracted":
                events += self._retract(alert["key"])
                continue
            host, start, end = alert["host"], _ns(alert["window_start"]), \
                _ns(alert["window_end"])
            attack = self.state.get(host)
            if attack is not None and start >= attack["last_end"] + self.window_ns:
                # a whole window without DDoS since: that attack ended, this is a new one
                events.append(self._event(host, self.state.pop(host), "end"))
                attack = None
            if attack is None:
                attack = self.state[host] = {
                    "key": f"attack/{host}/{iso(start)}", "start": start, "last_end": end,
                    "windows": [alert["key"]], "packets": alert["packets"]}
                events.append(self._event(host, attack, "start", alert))
            elif alert["key"] not in attack["windows"]:
                attack["windows"].append(alert["key"])
                attack["start"] = min(attack["start"], start)  # a final alert may be older
                attack["last_end"] = max(attack["last_end"], end)
                attack["packets"] += alert["packets"]
                events.append(self._event(host, attack, "update", alert))
        return events

    def expire(self, watermark: int | None) -> list[dict]:
        """End the attacks whose victim had no DDoS window for a whole window (all of them
        with ``None``: the input is complete)."""
        ended = [host for host, attack in self.state.items()
                 if watermark is None or attack["last_end"] + self.window_ns <= watermark]
        return [self._event(host, self.state.pop(host), "end") for host in ended]

    def _retract(self, key: str) -> list[dict]:
        for host, attack in list(self.state.items()):
            if key in attack["windows"]:
                attack["windows"].remove(key)
                if not attack["windows"]:
                    del self.state[host]
                    return [self._event(host, {**attack, "windows": [key]}, "retracted")]
        return []

    @staticmethod
    def _event(host: str, attack: dict, stage: str, alert: dict | None = None) -> dict:
        event = {
            "kind": "attack", "stage": stage, "victim": host,
            "key": attack["key"],   # fixed when the attack starts
            "start": iso(attack["start"]), "last_window_end": iso(attack["last_end"]),
            "windows": len(attack["windows"]), "packets": attack["packets"],
            "duration_s": (attack["last_end"] - attack["start"]) // NS,
        }
        if alert is not None:
            event.update(window_start=alert["window_start"],
                         model_version=alert.get("model_version"))
        return event
