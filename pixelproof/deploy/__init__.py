"""What ships with an exported detector: the standalone runner ``pixelproof.export`` copies."""
