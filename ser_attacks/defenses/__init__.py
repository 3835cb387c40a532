"""Defenses (config group ``defense``: conf/defense/<name>.yaml ↔ ser_attacks/defenses/<module>.py).

Training side (stage: training, applied by ``ser_attacks.train``): adversarial training — ``pgd_at`` (Madry et
al. 2018), ``fast_at`` (Wong et al. 2020), ``fgsm_at`` (the paper's notebook: ART-style FGSM training),
``trades`` (Zhang et al. 2019); the shared loop in ``adversarial_training``.
"""
