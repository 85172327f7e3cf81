"""The browser demo (``python -m pixelproof.app``) in two parts: :mod:`~pixelproof.demo.analysis`
says what each upload is (verdict, p(fake), attributions, robustness, CLIP artifacts, Task-1
index) as plain data, and :mod:`~pixelproof.demo.rendering` turns that into Markdown, pictures
and the Gradio page."""
