"""Thin, documented asset definitions: one module per asset group. The work happens in the libraries."""
