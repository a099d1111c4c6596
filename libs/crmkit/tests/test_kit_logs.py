"""Log lines are JSON with service, trace and span ids, and personal data keys are redacted."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from crmkit.logs import configure_logging, get_logger, logs_to_stderr


def test_log_lines_are_json_with_trace_ids_and_no_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(service="profile", level="INFO")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        get_logger("crm.test").info("customer_updated", customer_id="C1", mobile_phone="+8613812345678")
        context = span.get_span_context()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    configure_logging(service="test", level="INFO")
    assert line["event"] == "customer_updated"
    assert line["service"] == "profile"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["mobile_phone"] == "[redacted]"
    assert line["customer_id"] == "C1"


def test_log_lines_go_to_stderr_while_asked_and_to_stdout_again_after(capsys: pytest.CaptureFixture[str]) -> None:
    """A command run in process by a test keeps its stdout for its output."""
    with logs_to_stderr():
        get_logger("crm.test").info("during_a_command")
        logging.getLogger("grpc").error("event loop is closed")
    get_logger("crm.test").info("after_it")
    captured = capsys.readouterr()
    assert "during_a_command" in captured.err and "event loop is closed" in captured.err
    assert "during_a_command" not in captured.out and "after_it" in captured.out
