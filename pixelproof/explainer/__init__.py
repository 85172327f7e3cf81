"""Task 2: identify, locate and explain the artifacts of AI-generated images (CLIP + a VLM)."""
