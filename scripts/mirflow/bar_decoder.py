"""madmom's DBN bar tracker, decoded exactly in memory that does not grow with the track.

madmom's ``DBNDownBeatTrackingProcessor`` finds the best path through its bar
state space (Böck et al., ISMIR 2016) with a Viterbi pass that keeps one
back-pointer per state and frame: ~15,000 states x 100 frames a second, 5.7 GB
for a 10-minute track, 70 GB for a 2-hour mix. This decoder gives the same
path (the same beats, bit for bit: ``tests/unit/test_bar_decoder.py`` checks it
against madmom's) and keeps almost none of that:

- In the bar model nearly every state has one predecessor (the previous
  position at the same tempo); only the first state of each beat, one per
  tempo, is reached from several (the last states of every tempo). The
  back-pointer of a one-predecessor state is fixed, so only the choices of
  those few hundred states are stored, as the index of the predecessor chosen.
- Those choices are kept for one chunk of frames at a time: a first forward
  pass stores the Viterbi scores at each chunk's start (checkpoints); the
  backtrack then recomputes one chunk's choices from its checkpoint, from the
  last chunk to the first. Memory: the checkpoints (one score vector per chunk)
  and one chunk's choices; time: one more forward pass, of the chosen model.

madmom's own code sets up the models (state space, transitions, observation
densities) and thresholds the activations; this module only replaces its
Viterbi and reproduces its beat selection.
"""

from __future__ import annotations

import numpy as np

#: Frames per chunk of the backtrack: 60 s at 100 fps. Its choices take
#: CHUNK x (a few hundred) bytes; the checkpoints one score vector per chunk.
CHUNK_FRAMES = 6000


class _Model:
    """One bar length's HMM, as arrays for a vectorised Viterbi step."""

    def __init__(self, hmm):
        tm, om = hmm.transition_model, hmm.observation_model
        pointers = tm.pointers.astype(np.int64)
        degree = np.diff(pointers)
        self.num_states = len(degree)
        self.state_space = tm.state_space
        self.om_pointers = om.pointers.astype(np.int64)
        self.observation_model = om
        self.log_initial = np.log(hmm.initial_distribution)
        # One predecessor: a fixed back-pointer.
        self.single = np.flatnonzero(degree == 1)
        self.single_prev = tm.states[pointers[self.single]].astype(np.int64)
        self.single_logp = tm.log_probabilities[pointers[self.single]]
        # Several: a (states, most predecessors) table in madmom's order (so
        # that ties go to the first, as its strict ">" scan does), padded with
        # -inf transitions.
        self.multi = np.flatnonzero(degree > 1)
        width = int(degree[self.multi].max()) if len(self.multi) else 1
        offsets = np.arange(width)
        valid = offsets < degree[self.multi][:, None]
        index = pointers[self.multi][:, None] + np.where(valid, offsets, 0)
        self.multi_prev = tm.states[index].astype(np.int64)
        self.multi_logp = np.where(valid, tm.log_probabilities[index], -np.inf)
        self.rows = np.arange(len(self.multi))
        if width > np.iinfo(np.uint8).max:
            raise ValueError(f"bar model: a state with {width} predecessors")
        # Where a state's predecessor comes from in the backtrack.
        self.multi_row = np.full(self.num_states, -1, dtype=np.int64)
        self.multi_row[self.multi] = self.rows
        self.prev_of = np.full(self.num_states, -1, dtype=np.int64)
        self.prev_of[self.single] = self.single_prev

    def step(self, scores: np.ndarray, log_density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame: the new scores and the choice of each several-predecessor state.

        The sum is formed as madmom's is (previous + transition + density), so
        the scores, and hence the path, are the same to the last bit.
        """
        density = log_density[self.om_pointers]
        new = np.full(self.num_states, -np.inf)
        new[self.single] = scores[self.single_prev] + self.single_logp + density[self.single]
        candidates = scores[self.multi_prev] + self.multi_logp + density[self.multi][:, None]
        choice = candidates.argmax(axis=1)
        new[self.multi] = candidates[self.rows, choice]
        return new, choice.astype(np.uint8)

    def forward(self, log_densities: np.ndarray, chunk: int) -> tuple[np.ndarray, list]:
        """The final scores, and the scores at the start of every chunk."""
        scores, checkpoints = self.log_initial, []
        for frame in range(len(log_densities)):
            if frame % chunk == 0:
                checkpoints.append(scores)
            scores, _ = self.step(scores, log_densities[frame])
        return scores, checkpoints

    def backtrack(
        self, log_densities: np.ndarray, final: np.ndarray, checkpoints: list, chunk: int
    ) -> np.ndarray:
        """The best path, one chunk's choices at a time, from the last chunk back."""
        path = np.empty(len(log_densities), dtype=np.int64)
        state = int(np.argmax(final))
        for index in range(len(checkpoints) - 1, -1, -1):
            start = index * chunk
            stop = min(start + chunk, len(log_densities))
            choices = np.empty((stop - start, len(self.multi)), dtype=np.uint8)
            scores = checkpoints[index]
            for frame in range(start, stop):
                scores, choices[frame - start] = self.step(scores, log_densities[frame])
            for frame in range(stop - 1, start - 1, -1):
                path[frame] = state
                row = self.multi_row[state]
                state = (
                    int(self.multi_prev[row, choices[frame - start, row]])
                    if row >= 0
                    else int(self.prev_of[state])
                )
        return path


class BarDecoder:
    """``DBNDownBeatTrackingProcessor`` with its Viterbi replaced (see the module).

    ``processor`` is madmom's, built with the bar lengths and tempo range the
    analysis uses; calling the decoder on the (frames, 2) beat and downbeat
    activations gives what calling the processor does: ``(beats, 2)`` times
    in seconds and positions in the bar.
    """

    def __init__(self, processor, chunk_frames: int = CHUNK_FRAMES):
        self.processor = processor
        self.models = [_Model(hmm) for hmm in processor.hmms]
        self.chunk = int(chunk_frames)

    def __call__(self, activations: np.ndarray) -> np.ndarray:
        from madmom.features.downbeats import threshold_activations  # noqa: PLC0415

        activations = np.asarray(activations)
        first = 0
        if self.processor.threshold:
            activations, first = threshold_activations(activations, self.processor.threshold)
        if not activations.any():
            return np.empty((0, 2))
        passes = []
        for model in self.models:
            densities = model.observation_model.log_densities(activations)
            final, checkpoints = model.forward(densities, self.chunk)
            passes.append((float(final.max()), model, densities, final, checkpoints))
        # The bar length whose best path is likeliest (first on a tie, as np.argmax).
        best = int(np.argmax([p[0] for p in passes]))
        _, model, densities, final, checkpoints = passes[best]
        path = model.backtrack(densities, final, checkpoints, self.chunk)
        return _beats(path, model, activations, first, self.processor)


def _beats(path: np.ndarray, model: _Model, activations: np.ndarray, first: int, processor):
    """madmom's beat selection from a path: the frame of highest activation in
    each stretch of beat states (``correct``), or where the beat number changes."""
    beat_numbers = model.state_space.state_positions[path].astype(int) + 1
    if processor.correct:
        beat_range = model.observation_model.pointers[path] >= 1
        if not beat_range.any():
            return np.empty((0, 2))
        edges = np.flatnonzero(np.diff(beat_range.astype(int))) + 1
        if beat_range[0]:
            edges = np.r_[0, edges]
        if beat_range[-1]:
            edges = np.r_[edges, beat_range.size]
        stretches = edges.reshape(-1, 2)
        beats = np.array(
            [np.argmax(activations[left:right]) // 2 + left for left, right in stretches], dtype=int
        )
    else:
        beats = np.flatnonzero(np.diff(beat_numbers)) + 1
    return np.vstack(((beats + first) / float(processor.fps), beat_numbers[beats])).T
