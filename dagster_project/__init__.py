"""petid: dagster_project."""
