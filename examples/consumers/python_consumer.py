#!/usr/bin/env python3
"""Consume tasker_events' durable domain events with PyPI's pgmq client.

A starting point for a consumer of your own. It reads the queue NAMESPACE_domain_events in
batches, each message hidden from other readers for --vt seconds; checks that each message is
a domain event; handles each event once per run (a message seen again with an event_id already
handled is a duplicate, acknowledged without handling it again); and acknowledges a batch once
all of it was handled, by deleting it or, with --archive, by moving it to the queue's archive.
A message that is not a domain event is archived, never deleted, so it can be inspected.

It stops when no message is visible (after waiting up to --wait seconds for one), after
--max-messages messages, or after --timeout seconds.

    pip install 'pgmq>=1.1,<1.2'
    DATABASE_URL=postgresql://postgres@127.0.0.1/app python3 python_consumer.py payments

One line per message on stdout ("processed", "duplicate" or "rejected" and the event's
identifiers; a JSON object with --json), and a summary on stderr.
"""

import argparse
import json
import math
import os
import re
import sys
import time

import psycopg
import psycopg_pool
from pgmq import PGMQueue

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_DATABASE = 3
EXIT_CRASHED = 4

NAMESPACE = re.compile(r"\A[a-z0-9_]{1,33}\Z")
UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
CONNECT_TIMEOUT = 10
POLL_INTERVAL_MS = 100

# Each key of the event (README, "The event"), what its value must be, and how to check it.
# Keys beyond these are ignored, so a newer gem that adds one does not break the consumer.
ENVELOPE = (
    ("event_id", "a UUID", lambda value: isinstance(value, str) and UUID.match(value)),
    ("event_name", "a dotted name", lambda value: isinstance(value, str) and "." in value),
    ("event_version", "a non-empty string", lambda value: isinstance(value, str) and value),
    ("delivery_mode", '"durable" or "broadcast"', lambda value: value in ("durable", "broadcast")),
    ("payload", "any JSON value", lambda value: True),
    (
        "metadata",
        "an object with a namespace and a correlation_id",
        lambda value: isinstance(value, dict)
        and isinstance(value.get("namespace"), str)
        and isinstance(value.get("correlation_id"), str),
    ),
    ("execution_result", "any JSON value", lambda value: True),
)


class Crash(Exception):
    """Raised by --crash-after to stop the way a killed consumer would: nothing acknowledged."""


def check_event(message):
    """Returns what is wrong with a message's body, or None for a well-formed domain event."""
    if not isinstance(message, dict):
        return f"not a JSON object: {json.dumps(message)[:60]}"
    for key, expected, valid in ENVELOPE:
        if key not in message:
            return f"missing {key}"
        if not valid(message[key]):
            return f"{key} is not {expected}: {json.dumps(message[key])[:60]}"
    return None


def handle_event(event):
    """Where a real consumer does its work. An exception raised here stops the consumer before
    the batch is acknowledged, so the whole batch is read again once --vt has passed."""


def as_list(result):
    """pgmq's read() returns a list for qty > 1, but a message or None for qty == 1."""
    if isinstance(result, list):
        return result
    return [] if result is None else [result]


class Consumer:
    """Reads, checks, handles and acknowledges the messages of one queue."""

    def __init__(self, queue, options):
        self.queue = queue
        self.options = options
        self.queue_name = f"{options.namespace}_domain_events"
        # event_ids handled by this run. A consumer whose work must happen exactly once keeps
        # them in its own database instead, written in the transaction that does the work.
        self.handled = set()
        self.counts = dict.fromkeys(("processed", "duplicate", "rejected"), 0)
        self.acknowledged = {"deleted": 0, "archived": 0}
        self.deadline = options.timeout and time.monotonic() + options.timeout

    @property
    def read_count(self):
        return sum(self.counts.values())

    def run(self):
        """Consumes batches until the queue is drained or a limit is reached; returns why."""
        while True:
            if self.options.max_messages and self.read_count >= self.options.max_messages:
                return "stopped at --max-messages"
            if self.deadline and time.monotonic() >= self.deadline:
                return "stopped at --timeout"
            messages = self.read()
            if not messages:
                return "drained"
            self.consume(messages)

    def read(self):
        qty = self.options.batch_size
        if self.options.max_messages:
            qty = min(qty, self.options.max_messages - self.read_count)
        wait = self.options.wait
        if self.deadline:
            wait = min(wait, max(0, math.ceil(self.deadline - time.monotonic())))
        if wait == 0:
            return as_list(self.queue.read(self.queue_name, vt=self.options.vt, qty=qty))
        return self.queue.read_with_poll(
            self.queue_name,
            vt=self.options.vt,
            qty=qty,
            max_poll_seconds=wait,
            poll_interval_ms=POLL_INTERVAL_MS,
        )

    def consume(self, messages):
        done, rejected = [], []
        # PGMQ returns a batch in no particular order; msg_id order is publish order.
        for message in sorted(messages, key=lambda message: message.msg_id):
            status, problem = self.handle(message)
            self.counts[status] += 1
            self.report(message, status, problem)
            (rejected if status == "rejected" else done).append(message.msg_id)
            if self.read_count == self.options.crash_after:
                raise Crash()
        self.acknowledge(done, archive=self.options.archive)
        self.acknowledge(rejected, archive=True)

    def handle(self, message):
        problem = check_event(message.message)
        if problem:
            return "rejected", problem
        event_id = message.message["event_id"]
        if event_id in self.handled:
            return "duplicate", None
        handle_event(message.message)
        self.handled.add(event_id)
        return "processed", None

    def acknowledge(self, msg_ids, archive):
        if not msg_ids:
            return
        if archive:
            done = self.queue.archive_batch(self.queue_name, msg_ids)
        else:
            done = self.queue.delete_batch(self.queue_name, msg_ids)
        self.acknowledged["archived" if archive else "deleted"] += len(done)
        # A message missing here was acknowledged by someone else: its visibility timeout ran
        # out while this batch was handled, and another consumer read it again.
        if len(done) < len(msg_ids):
            missing = sorted(set(msg_ids) - set(done))
            print(f"python_consumer: already gone from {self.queue_name}: {missing}",
                  file=sys.stderr)

    def report(self, message, status, problem):
        if self.options.json:
            record = {
                "status": status,
                "msg_id": message.msg_id,
                "read_ct": message.read_ct,
                "message": message.message,
                "headers": message.headers,
            }
            if problem:
                record["problem"] = problem
            print(json.dumps(record, sort_keys=True), flush=True)
            return
        fields = [status, f"msg_id={message.msg_id}", f"read_ct={message.read_ct}"]
        if problem:
            fields.append(f"problem={json.dumps(problem)}")
        else:
            event = message.message
            fields += [
                f"event_id={event['event_id']}",
                f"event_name={event['event_name']}",
                f"correlation_id={event['metadata']['correlation_id']}",
            ]
        print(" ".join(fields), flush=True)

    def summary(self, outcome):
        counts = [f"{number} {status}" for status, number in self.counts.items()]
        acknowledged = [f"{number} {how}" for how, number in self.acknowledged.items()]
        return (f"python_consumer: {self.queue_name} {outcome} after {self.read_count} "
                f"messages: {', '.join(counts)}; {', '.join(acknowledged)}")


def count(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        return value

    return parse


def parse_options(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="exit status: 0 every message handled, 1 some messages rejected (archived), "
        "2 usage error, 3 PostgreSQL or PGMQ error, 4 after --crash-after",
    )
    parser.add_argument("namespace", help="the events' namespace: reads NAMESPACE_domain_events")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), metavar="URL",
                        help="PostgreSQL URL (default: $DATABASE_URL)")
    parser.add_argument("--batch-size", type=count(1), default=50, metavar="N",
                        help="messages read at once (default: 50)")
    parser.add_argument("--vt", type=count(1), default=30, metavar="SECONDS",
                        help="visibility timeout: how long a read message stays hidden from "
                        "other readers before it is read again unless acknowledged (default: 30)")
    parser.add_argument("--archive", action="store_true",
                        help="archive handled messages (pgmq.a_<queue>) instead of deleting them")
    parser.add_argument("--wait", type=count(0), default=0, metavar="SECONDS",
                        help="when no message is visible, wait up to this long for one before "
                        "exiting (default: 0)")
    parser.add_argument("--max-messages", type=count(1), metavar="N",
                        help="stop after reading N messages")
    parser.add_argument("--timeout", type=count(1), metavar="SECONDS",
                        help="stop reading new batches after this long")
    parser.add_argument("--json", action="store_true",
                        help="print each message as one JSON object: status, msg_id, read_ct, "
                        "message, headers and, when rejected, problem")
    parser.add_argument("--crash-after", type=count(1), metavar="N",
                        help="exit with status 4 right after handling the Nth message, "
                        "acknowledging nothing of its batch, as a killed consumer would")
    options = parser.parse_args(argv)

    if not NAMESPACE.match(options.namespace):
        parser.error(f"namespace must match {NAMESPACE.pattern}: {options.namespace!r}")
    if not options.database_url:
        parser.error("no database: set DATABASE_URL or pass --database-url")
    return options


def main(argv=None):
    options = parse_options(argv)
    # PGMQ was installed by tasker_events as plain SQL: CREATE EXTENSION would need extension
    # files that a plain PostgreSQL does not have.
    queue = PGMQueue(conn_string=options.database_url, init_extension=False, pool_size=1)
    consumer = Consumer(queue, options)
    try:
        queue.pool.wait(timeout=CONNECT_TIMEOUT)
        outcome = consumer.run()
    except Crash:
        print(consumer.summary("crashed on purpose"), file=sys.stderr)
        os._exit(EXIT_CRASHED)  # no cleanup, no acknowledgement: what a killed process leaves
    except psycopg.errors.UndefinedTable:
        print(f"python_consumer: queue {consumer.queue_name} does not exist: nothing was "
              f"published in namespace {options.namespace} yet", file=sys.stderr)
        return EXIT_DATABASE
    except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
        print(f"python_consumer: cannot consume {consumer.queue_name}: {error}",
              file=sys.stderr)
        return EXIT_DATABASE
    finally:
        queue.close()

    print(consumer.summary(outcome), file=sys.stderr)
    return EXIT_REJECTED if consumer.counts["rejected"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
