"""The ``match_alerts`` sensor posts new candidates above the threshold to a real webhook on loopback, once each,
and keeps its cursor when the webhook fails."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from dagster import DagsterInstance, asset, build_sensor_context, materialize

from dagster_project.io_managers import ParquetIOManager
from dagster_project.resources import AlertsResource, StorageResource
from dagster_project.sensors import match_alerts


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict], list[int]]]:
    received: list[dict] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if status[0] == 200:
                received.append(json.loads(body))
            self.send_response(status[0])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, status
    finally:
        server.shutdown()
        server.server_close()


def _materialize(instance: DagsterInstance, storage: StorageResource, scores: list[float]) -> None:
    @asset(name="match_candidates")
    def candidates() -> pa.Table:
        n = len(scores)
        return pa.table({"query_id": [f"found{i}" for i in range(n)], "candidate_id": [f"lost{i}" for i in range(n)],
                         "rank": [1] * n, "score": scores})

    assert materialize([candidates], instance=instance,
                       resources={"io_manager": ParquetIOManager(storage=storage)}).success


def test_new_candidates_are_posted_once_and_a_failing_webhook_loses_nothing(tmp_path: Path, webhook) -> None:
    url, received, status = webhook
    storage = StorageResource(root=str(tmp_path))
    resources = {"alerts": AlertsResource(webhook_url=url, min_score=0.8), "storage": storage}
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources=resources)
        assert "no new match_candidates" in match_alerts(context).skip_message
        _materialize(instance, storage, [0.95, 0.5, 0.85])
        status[0] = 503  # the webhook is down: nothing sent, cursor kept
        result = match_alerts(context)
        assert "HTTP 503" in result.skip_message and context.cursor is None
        status[0] = 200
        assert "posted 2 candidate(s)" in match_alerts(context).skip_message
        assert [c["score"] for c in received[0]["candidates"]] == [0.95, 0.85]
        assert received[0]["count"] == 2 and received[0]["candidates"][0]["pair_id"]
        assert "no new match_candidates" in match_alerts(context).skip_message
        _materialize(instance, storage, [0.95, 0.5, 0.85, 0.9])  # one new pair above the threshold
        assert "posted 1 candidate(s)" in match_alerts(context).skip_message
        assert [c["candidate_id"] for c in received[1]["candidates"]] == ["lost3"]


def test_without_a_webhook_the_sensor_only_says_why(tmp_path: Path) -> None:
    resources = {"alerts": AlertsResource(), "storage": StorageResource(root=str(tmp_path))}
    with DagsterInstance.ephemeral() as instance:
        result = match_alerts(build_sensor_context(instance=instance, resources=resources))
    assert "PETID_ALERT_WEBHOOK" in result.skip_message
