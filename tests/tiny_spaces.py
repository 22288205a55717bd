"""The tiny base_cnn family space that the real (seconds-long) searches in the tests and
the workers benchmark use: width 0.25 or 0.5, two blocks, a small dense layer."""

from __future__ import annotations


def small_cnn(dense_units: tuple[str, ...] = ("32",), default: str | None = None) -> str:
    """The space's YAML. One ``dense_units`` value is fixed; several are a choice (more
    choices give a grid or a random search more distinct trials)."""
    if len(dense_units) == 1:
        dense = f'{{type: fixed, value: "{dense_units[0]}"}}'
    else:
        values = ", ".join(f'"{u}"' for u in dense_units)
        dense = f'{{type: choice, values: [{values}], default: "{default or dense_units[0]}"}}'
    return f"""\
kind: family
name: base_cnn
hyperparameters:
  width: {{type: choice, values: [0.25, 0.5], default: 0.25}}
  depth: {{type: fixed, value: 2}}
  dense_units: {dense}
  dense_dropout: {{type: fixed, value: 0.3}}
"""
