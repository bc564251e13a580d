"""Drum patterns of known tempo and metre, with their beat annotations.

For the rhythm accuracy benchmark and the tests: real annotated music is
scarce, and a synthetic pattern is the one case where the true beat, bar and
tempo are known exactly. Each pattern names where its kick, snare and hi-hat
(or click) fall within one bar on a grid of ``steps`` per bar, and where its
beats are; the tempo is the beats' rate (a 6/8 bar has two dotted-quarter
beats; a hip-hop bar has sixteenth-note hats over four beats, the pattern
trackers tend to double).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 44100


@dataclass(frozen=True)
class Pattern:
    name: str
    steps: int  # grid steps per bar
    beats: tuple[int, ...]  # steps where beats fall (the first is the downbeat)
    kick: tuple[int, ...] = ()
    snare: tuple[int, ...] = ()
    hat: tuple[int, ...] = ()
    click: tuple[int, ...] = ()  # metronome: accented on the downbeat


PATTERNS = {
    p.name: p
    for p in (
        Pattern("click_4_4", 4, (0, 1, 2, 3), click=(0, 1, 2, 3)),
        Pattern("click_3_4", 3, (0, 1, 2), click=(0, 1, 2)),
        Pattern("rock_4_4", 8, (0, 2, 4, 6), kick=(0, 4), snare=(2, 6), hat=tuple(range(8))),
        Pattern("waltz_3_4", 6, (0, 2, 4), kick=(0,), snare=(2, 4), hat=(0, 2, 4)),
        Pattern("compound_6_8", 6, (0, 3), kick=(0,), snare=(3,), hat=tuple(range(6))),
        Pattern(
            "hiphop_4_4", 16, (0, 4, 8, 12), kick=(0, 7, 10), snare=(4, 12), hat=tuple(range(16))
        ),
        Pattern("samba_2_4", 8, (0, 4), kick=(4,), snare=(2, 6), hat=tuple(range(8))),
    )
}


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    freq = 50 + 90 * np.exp(-t * 30)  # a falling pitch sweep, 140 -> 50 Hz
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * 12)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.18 * sr)) / sr
    noise = rng.standard_normal(len(t)) * np.exp(-t * 25)
    return 0.5 * noise + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 30)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference: a high-passed noise
    return 0.15 * noise * np.exp(-t * 90)


def _click(sr: int, freq: float) -> np.ndarray:
    t = np.arange(int(0.03 * sr)) / sr
    return 0.6 * np.sin(2 * np.pi * freq * t) * np.exp(-t * 150)


def _add(audio: np.ndarray, at: int, sound: np.ndarray) -> None:
    end = min(len(audio), at + len(sound))
    if at < end:
        audio[at:end] += sound[: end - at]


def render(
    pattern: Pattern | str, bpm: float, seconds: float, sr: int = SAMPLE_RATE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(mono float32 audio, beats (n, 2): time s, beat in bar) of ``pattern`` at ``bpm``.

    The first downbeat is at 0.5 s (a tracker needs a moment of context).
    """
    pattern = PATTERNS[pattern] if isinstance(pattern, str) else pattern
    rng = np.random.default_rng(seed)
    beats_per_bar = len(pattern.beats)
    bar_s = 60.0 / bpm * beats_per_bar
    step_s = bar_s / pattern.steps
    audio = np.zeros(int(seconds * sr))
    kick = _kick(sr)
    start, beats = 0.5, []
    bar = 0
    while start + bar * bar_s < seconds:
        bar_start = start + bar * bar_s
        for step in range(pattern.steps):
            at = int(round((bar_start + step * step_s) * sr))
            if step in pattern.kick:
                _add(audio, at, kick)
            if step in pattern.snare:
                _add(audio, at, _snare(sr, rng))
            if step in pattern.hat:
                _add(audio, at, _hat(sr, rng))
            if step in pattern.click:  # the downbeat higher and louder, as metronomes do
                _add(audio, at, _click(sr, 1760.0) if step == 0 else 0.5 * _click(sr, 880.0))
        for index, step in enumerate(pattern.beats):
            time = bar_start + step * step_s
            if time < seconds:
                beats.append((time, index + 1))
        bar += 1
    audio *= 0.5 / max(1e-9, np.abs(audio).max())
    return audio.astype(np.float32), np.asarray(beats, dtype=float).reshape(-1, 2)
