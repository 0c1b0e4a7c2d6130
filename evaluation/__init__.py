"""petid: evaluation."""
