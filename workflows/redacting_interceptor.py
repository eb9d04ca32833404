"""Nothing an activity reports to Temporal carries a secret."""

from __future__ import annotations

from typing import Any, NoReturn

from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from workflows.redaction import redact, redact_value

# A cause chain longer than this is cut: the innermost errors are the least useful.
MAX_CAUSES = 8


class RedactActivityFailures(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RedactingActivity(next)


class _RedactingActivity(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_RedactingHeartbeats(outbound))

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except FailureError as error:
            if not isinstance(error, ApplicationError):
                raise  # cancellation and server errors: the SDK's own, no free text of ours
            _raise_redacted(error)
        except Exception as error:
            _raise_redacted(error)


class _RedactingHeartbeats(ActivityOutboundInterceptor):
    def heartbeat(self, *details: Any) -> None:
        super().heartbeat(*(redact_value(detail) for detail in details))


def _raise_redacted(error: BaseException) -> NoReturn:
    failure = redacted_failure(error)
    # `from` replaces the original as the context too: only the redacted chain is reported.
    raise failure from failure.__cause__


def redacted_failure(error: BaseException, depth: int = 0) -> ApplicationError:
    """A copy of `error` as an ApplicationError whose texts, and causes', are redacted."""
    if isinstance(error, ApplicationError):
        copy = ApplicationError(
            redact(error.message),
            *(redact_value(detail) for detail in error.details),
            type=error.type,
            non_retryable=error.non_retryable,
            next_retry_delay=error.next_retry_delay,
            category=error.category,
        )
    else:
        copy = ApplicationError(redact(str(error)), type=type(error).__name__)
    cause = error.__cause__
    if cause is None and not error.__suppress_context__:
        cause = error.__context__
    if cause is not None and depth < MAX_CAUSES:
        copy.__cause__ = redacted_failure(cause, depth + 1)
    return copy
