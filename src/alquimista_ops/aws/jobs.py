"""Lambda handlers of the scheduled and stream-fed jobs.

``aggregate_metrics``: the EventBridge rule fires it daily at 02:00 UTC; it rolls up the
previous UTC day of raw agent requests (the day before the event's ``time``). A manual
invocation may pass ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` to backfill a range.

``process_command``: fed by the commands table's stream; see ``aws.stream``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from alquimista_ops.aws.lambda_runtime import get_runtime, logger, tracer
from alquimista_ops.core.clock import utcnow
from alquimista_ops.usage.jobs import run_rollup_job

MAX_BACKFILL_DAYS = 366


class InvalidJobEvent(ValueError):
    pass


def aggregation_range(event: dict[str, Any]) -> tuple[date, date]:
    """The days an aggregation event asks for: an explicit range, else the previous day."""
    if "from" in event or "to" in event:
        try:
            start = date.fromisoformat(str(event["from"]))
            end = date.fromisoformat(str(event.get("to", event["from"])))
        except (KeyError, ValueError) as exc:
            raise InvalidJobEvent("'from'/'to' must be YYYY-MM-DD dates") from exc
        if end < start:
            raise InvalidJobEvent("'to' is before 'from'")
        if (end - start).days + 1 > MAX_BACKFILL_DAYS:
            raise InvalidJobEvent(f"a backfill covers at most {MAX_BACKFILL_DAYS} days")
        return start, end
    raw_time = event.get("time")
    try:
        fired = datetime.fromisoformat(str(raw_time).replace("Z", "+00:00")) if raw_time else None
    except ValueError as exc:
        raise InvalidJobEvent(f"unreadable event time {raw_time!r}") from exc
    day = (fired or utcnow()).date() - timedelta(days=1)
    return day, day


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def aggregate_metrics(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start, end = aggregation_range(event)
    runtime = get_runtime()
    job = run_rollup_job(
        runtime.engine,
        start,
        end,
        trigger="eventbridge" if "from" not in event else "backfill",
        # The scheduled run also removes raw days past the retention (after rolling them up).
        retention=None
        if "from" in event
        else (utcnow().date(), runtime.settings.usage_raw_retention_days),
        on_usage_changed=runtime.cache.invalidate_usage,
    )
    result = job.rollup
    report = {
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
    }
    tracer.put_metadata(key="rollup", value=report)
    logger.info("usage rollup finished", extra=report)
    return report


def process_command(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The DynamoDB stream handler: ``aws.stream.process_command``."""
    from alquimista_ops.aws.stream import process_command as handler

    result: dict[str, Any] = handler(event, context)
    return result
