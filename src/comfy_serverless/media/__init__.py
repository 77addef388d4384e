"""Files going into ComfyUI (job inputs) and coming out of it (outputs)."""
