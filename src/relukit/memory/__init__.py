"""Memory-light backward for the smooth members: what the backward keeps instead of the input.

- :mod:`relukit.memory.steps`: Few-Bit's optimal step derivative (``backward="bits"``): a
  ``bits``-bit code per element and ``2**bits`` levels found by dynamic programming;
  :mod:`relukit.memory.step_tables` ships them for the default settings.
"""
