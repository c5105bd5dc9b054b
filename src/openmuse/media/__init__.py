"""Media input: images, audio and video parts of a request, and visual grounding."""
