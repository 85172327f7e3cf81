"""Adversarial attacks on any pixelproof detector, built on torchattacks: the attack registry
(:mod:`~pixelproof.attacks.spec`), crafting, the two-class view of a one-logit detector, N-FGSM
(:mod:`~pixelproof.attacks.nfgsm`) and AutoAttack's APGD-CE and Square
(:mod:`~pixelproof.attacks.autoattack`).

Every detector maps ``[B,3,H,W]`` in [0,1] to ``[B]`` logits, so one wrapper
(:class:`~pixelproof.attacks.two_class.TwoClassLogits`) lets torchattacks' 2-class losses attack
any of them, and attack budgets are always in [0,1] pixel units. Adversarial training is a
callback (:mod:`pixelproof.callbacks.adversarial_augmentation`); robust evaluation lives in
:mod:`pixelproof.evaluation.robustness`.
"""
