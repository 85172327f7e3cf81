"""What a detector itself looks at: attributions of its fake logit, for any pixelproof detector
(the detector's evidence; Task 2's artifact explanations are :mod:`pixelproof.explainer`).
Integrated Gradients and Grad-CAM maps (:mod:`~pixelproof.attribution.maps`, whose
:func:`~pixelproof.attribution.maps.attribute` computes them all), frequency-band drops
(:mod:`~pixelproof.attribution.bands`) and their pictures (:mod:`~pixelproof.attribution.plots`)."""
