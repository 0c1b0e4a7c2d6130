"""petid: training."""
