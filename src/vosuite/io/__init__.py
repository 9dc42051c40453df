"""Reading and writing frames, videos, masks and overlays."""
