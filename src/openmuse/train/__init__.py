"""Training: thought compression (``muse train compress``), GRPO with a length penalty on the
CPU (TRL), and the round trip of the embedded GGUF model to Hugging Face weights and back."""
