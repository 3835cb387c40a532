"""Defenses (config group ``defense``; the defense contract of issue 28): one module per defense.

``smoothing``: randomized smoothing (Cohen et al. 2019), the noise layer and the certification.
"""
