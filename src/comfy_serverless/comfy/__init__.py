"""Everything that speaks ComfyUI's HTTP and WebSocket protocol. Raw ComfyUI dicts stop here."""
