"""petid: curation."""
