"""How outputs leave the worker: inline base64 in the result, or uploaded to storage as URLs."""
