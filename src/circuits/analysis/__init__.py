"""Analysis layer: free functions over (model, cache, tokens) that read circuits and return labelled values.

- ``weights/``: circuits read off the weights alone (QK/OV, eigenvalues, composition, skip-trigrams)
- ``activations/``: circuits read off activations (head scores, path expansion, attribution, ablation, patching, ICL)
- ``common``: head labels, token batching, the sum-to-whole check every decomposition runs
- ``tasks``: the probe inputs (random and repeated tokens)
- ``trajectory``: rises, bumps and turns of curves over training checkpoints

Imports only the layers below (``model``, ``training``, ``hf``); never the experiments or the report.
"""
