"""What differs between Humble, Jazzy and Kilted, decided once by capability checks, never by distro name.

- Message constructors: Jazzy's rosidl_generator_py added the ``check_fields`` keyword (with it, an
  assigned ``array.array`` payload is kept without a copy); Humble's constructors assert that every
  keyword is a field, so ``Image(check_fields=True)`` raises there. ``message_factory`` probes the
  class once and returns a constructor that works on either (Humble's setters keep an
  ``array.array`` without copying anyway).
- Executors: ``rclpy.experimental.EventsExecutor`` (Kilted, Jazzy from rclpy 7.1.4) dispatches in
  C++ instead of rebuilding a Python wait set on every wake-up; elsewhere the
  SingleThreadedExecutor. ``spin`` drives either with ``spin_once(timeout)``: the EventsExecutor's
  own ``spin()`` (rclpy 9.1.2, Kilted's PyPI build) busy-loops and blocks ``publish`` from other
  threads, so a node that publishes from a worker thread hangs; ``spin_once`` does not.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

EXECUTORS = ("auto", "events", "single_threaded")
SPIN_TIMEOUT_S = 0.1  # how often spin() re-checks for shutdown when nothing arrives


@functools.lru_cache(maxsize=None)
def message_factory(msg_type: type) -> Callable[[], Any]:
    """A zero-argument constructor of ``msg_type`` that keeps assigned array.array payloads uncopied."""
    try:
        msg_type(check_fields=True)
    except (AssertionError, TypeError):  # Humble: "Invalid arguments passed to constructor: check_fields"
        return msg_type
    return functools.partial(msg_type, check_fields=True)


def events_executor_class() -> type | None:
    """rclpy's EventsExecutor where this rclpy has it, else None."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:  # Humble, and Jazzy before rclpy 7.1.4
        return None
    return EventsExecutor


def make_executor(kind: str = "auto", context: Any = None) -> Any:
    """An executor of ``kind`` (EXECUTORS); "auto" = the EventsExecutor where available."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor '{kind}': choose one of {', '.join(EXECUTORS)}")
    events = events_executor_class()
    if kind == "events" and events is None:
        raise ValueError("executor 'events': this rclpy has no rclpy.experimental.EventsExecutor "
                         "(Jazzy from rclpy 7.1.4, Kilted); use 'auto' or 'single_threaded'")
    if events is not None and kind != "single_threaded":
        try:
            return events(context=context)
        except (OSError, ValueError) as error:
            # It calls faulthandler.enable(), which needs a stderr with a file descriptor (not so under
            # pytest's capture or some embedding hosts): "auto" then takes the SingleThreadedExecutor.
            if kind == "events":
                raise ValueError(f"executor 'events' could not be created: {error}") from error
    from rclpy.executors import SingleThreadedExecutor

    return SingleThreadedExecutor(context=context)


def spin(executor: Any, context: Any = None, stop: Callable[[], bool] | None = None) -> None:
    """Execute callbacks until ``context`` (default: the global one) shuts down or ``stop()`` is true.

    Returns quietly on shutdown; a KeyboardInterrupt still propagates.
    """
    from rclpy.executors import ExternalShutdownException

    if context is None:
        from rclpy.utilities import get_default_context

        context = get_default_context()
    try:
        while context.ok() and not (stop is not None and stop()):
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except ExternalShutdownException:
        pass
