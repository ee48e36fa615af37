"""Activation circuits: head scores, path expansion and term importance, attribution (logit lens, DLA), ablations, patching, in-context learning, real-model head taxonomy."""
