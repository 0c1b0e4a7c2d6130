"""The petid application: the command line (``petid``), the demo and the Dagster UI launcher — the top layer."""
