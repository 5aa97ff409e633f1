"""Graftzoo speech plugin: speaker encoders, wav2vec2-family encoders, audio data.

Importing this package is cheap: torch, transformers and soundfile are only
imported by the modules that need them (``resemblyzer``, ``wav2vec``,
``audio``, ``features``), which the plugin manager loads on first use.
"""

__version__ = "0.1.0"
