"""petid — reunite lost pets with their owners.

The ``petid`` package holds what every library shares (record schemas, content-addressed paths) and the
command line. The libraries (``scrapers``, ``curation``, ``training``, ``evaluation``) never import Dagster;
``assets`` and ``dagster_project`` wire them into the asset graph.
"""

__version__ = "0.1.0"
