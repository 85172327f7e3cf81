"""Adversarial augmentation (a Lightning callback) and robust evaluation, built on torchattacks.

Every detector maps ``[B,3,H,W]`` in [0,1] to ``[B]`` logits, so one wrapper
(:class:`~pixelproof.attacks.two_class.TwoClassLogits`) lets torchattacks' 2-class losses attack
any of them, and attack budgets are always in [0,1] pixel units.
"""
