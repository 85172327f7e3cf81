"""Plain ``nn.Module`` building blocks the detectors are made of (RINE head, CLIP backbone,
wavelet attention, FreqNet blocks, the wavelet/FreqNet ResNet)."""
