"""Grokking of modular addition (Nanda et al. 2023): the Fourier circuit read off the weights, and progress measures.

- ``fourier``: the Fourier basis of Z_p; power per frequency, key frequencies, neuron and logit
  decompositions, restricted and excluded logits, Gini (pure numpy, tested on hand-built arrays)
- ``readout``: the arrays those functions read, taken off a model over every pair ``a b =``
- ``progress``: the progress measures of one checkpoint, and the phases found from their curves
"""
