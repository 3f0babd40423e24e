"""recording: JSON lines with redacted secrets and base64 for binary bodies, readable back for replay."""

from __future__ import annotations

import json
import threading

from strangler_proxy.recording import REDACTED, Recorder, decode_body, exchange_record, read_recording


def record(**overrides):
    values = dict(method="POST", path="/api/cart/?x=1", request_headers=[("Authorization", "Bearer s3cret"),
                  ("Cookie", "sessionid=abc"), ("X-Strangler-Force", "catalog.deadbeef"), ("Accept", "*/*"),
                  ("X-Session-Token", "t")],
                  request_body=b'{"qty": 2}', status=201, upstream="catalog", route="/api/cart/",
                  request_id="rid-1", started_at=1700000000.123456, upstream_seconds=0.01, total_seconds=0.012)
    values.update(overrides)
    return exchange_record(**values)


def test_secrets_are_redacted_and_other_headers_kept_in_order():
    rec = record(extra_secret_headers=["x-session-token"])
    assert rec["headers"] == [["Authorization", REDACTED], ["Cookie", REDACTED], ["X-Strangler-Force", REDACTED],
                              ["Accept", "*/*"], ["X-Session-Token", REDACTED]]
    assert "s3cret" not in json.dumps(rec) and "abc" not in json.dumps(rec)


def test_text_bodies_stay_text_and_binary_bodies_round_trip_through_base64():
    assert (record()["body_encoding"], record()["body"]) == ("utf-8", '{"qty": 2}')
    binary = bytes(range(256))
    rec = record(request_body=binary)
    assert rec["body_encoding"] == "base64"
    assert decode_body(rec["body_encoding"], rec["body"]) == binary


def test_recorder_appends_one_line_per_exchange_from_many_threads(tmp_path):
    path = tmp_path / "rec" / "flows.jsonl"
    recorder = Recorder(path)
    threads = [threading.Thread(target=lambda i=i: [recorder.write(record(request_id=f"{i}-{k}")) for k in range(50)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    recorder.write(record())  # after close: ignored, not an exception
    rows = list(read_recording(path))
    assert len(rows) == 200
    assert {r["request_id"] for r in rows} == {f"{i}-{k}" for i in range(4) for k in range(50)}
    assert rows[0]["timings"] == {"upstream_seconds": 0.01, "total_seconds": 0.012}


def test_reading_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "flows.jsonl"
    path.write_text(json.dumps(record()) + "\n" + '{"method": "GE')
    assert [r["method"] for r in read_recording(path)] == ["POST"]


def test_replay_sends_safe_recorded_requests_without_redacted_headers_and_compares_status(tmp_path):
    from strangler_proxy.recording import recording_replay

    from .upstream_servers import UpstreamServer, json_answer

    target = UpstreamServer("catalog", lambda m, p, h, b: json_answer(404 if p.startswith("/gone") else 200, {}))
    target.start()
    try:
        path = tmp_path / "flows.jsonl"
        recorder = Recorder(path)
        recorder.write(record(method="GET", path="/api/products/?page=2", status=200))
        recorder.write(record(method="GET", path="/gone/1/", status=200))
        recorder.write(record(method="POST", path="/api/cart/", status=201))  # a write: not replayed by default
        recorder.write(record(method="GET", path="/x", status=421, upstream="proxy"))  # refused by the proxy
        recorder.close()
        report = recording_replay(path=path, base_url=target.url)
    finally:
        target.stop()
    assert (report.total, report.sent, report.skipped, report.same_status) == (4, 2, 2, 1)
    assert report.mismatches == [{"method": "GET", "path": "/gone/1/", "recorded": 200, "replayed": 404}]
    sent = target.received()[0]
    assert sent["path"] == "/api/products/?page=2" and sent["headers"]["accept"] == "*/*"
    assert "authorization" not in sent["headers"] and "cookie" not in sent["headers"]
