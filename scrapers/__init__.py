"""petid: scrapers."""
