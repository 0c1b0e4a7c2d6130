"""petid: assets."""
