"""Memory-light backward for the smooth members: what the backward keeps instead of the input.

- :mod:`relukit.memory.steps`: Few-Bit's optimal step derivative (``backward="bits"``): a
  ``bits``-bit code per element and ``2**bits`` levels found by dynamic programming;
  :mod:`relukit.memory.step_tables` ships them for the default settings.
- :mod:`relukit.memory.output`: the derivative from the output (``backward="output"``): closed
  forms from the registry (elu, selu, celu, softplus, sigmoid, tanh, squared_relu), and for
  gelu, silu and mish one bit (below the minimum) and a table-driven inverse.
"""
