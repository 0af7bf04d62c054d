"""`--combine fuse`: a dev-fitted gate between the LLM's answer and the local label (docs/fuse.md)."""
