"""Essentia's ``{label: probability}`` fields as readable labels: the one place
that picks the most probable ones and names them (``"Electronic---Techno"`` ->
``"techno"``), for the exports and the caption prompts alike.

:func:`top_labels` is standalone (builtins only, Python 3.8 syntax):
mirflow.export copies its source into the stable-audio-tools metadata module,
which runs in that library's environment, so its text is part of that output.
"""


def top_labels(probabilities, n=3, min_probability=0.1):
    """Up to ``n`` labels of a ``{label: probability}`` dict, most probable first.

    Labels under ``min_probability`` are left out, except that the most
    probable one is always kept. Essentia's ``"Parent---Child"`` labels keep the
    child; labels are lower-cased with ``_`` as spaces. Not a dict -> ``[]``.
    """
    if not isinstance(probabilities, dict):
        return []
    scored = [
        (float(p), str(label))
        for label, p in probabilities.items()
        if isinstance(p, (int, float)) and not isinstance(p, bool) and p == p
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    kept = [label for p, label in scored[:n] if p >= min_probability] or [
        label for _, label in scored[:1]
    ]
    out = []
    for label in kept:
        name = label.split("---")[-1].replace("_", " ").strip().lower()
        if name and name not in out:
            out.append(name)
    return out
