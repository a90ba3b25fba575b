# frozen_string_literal: true

module TaskerEvents
  # Reading what test mode captured; these are methods of {TaskerEvents} itself.
  #
  # `TaskerEvents.start(test_mode: true)` runs everything as in production (routing, fast
  # subscribers, patterns, conditions, schemas, publishers, counters, flush and shutdown) except
  # the write to PGMQ: durable and broadcast events are captured in memory inside the Rust
  # core, as the message PGMQ would hold, and counted as delivered. `database_url` and
  # `install_pgmq` are ignored and nothing connects to PostgreSQL. The core also logs every
  # event it routes, in any delivery mode, without subscribing to them, so the counters of
  # Ruby subscribers stay exactly as they would be.
  #
  # The capture keeps the latest {.capture_limit} messages and as many events; past that the
  # oldest are discarded (and counted, see {.capture_discarded}). It belongs to the process,
  # like {TaskerEvents.stats}: it survives `shutdown` and a new `start` until
  # {.clear_captured}. Call {TaskerEvents.flush} first to include events still in flight.
  #
  # @example
  #   TaskerEvents.start(test_mode: true)
  #   TaskerEvents.publish("payment.processed", { amount: 1 }, namespace: "payments")
  #   TaskerEvents.flush
  #   TaskerEvents.captured_messages(namespace: "payments").first[:message][:payload]
  #   # => {amount: 1}
  module TestMode
    # @return [Boolean] whether the running system was started with `test_mode: true`
    def test_mode?
      started? && event_system.configuration.settings[:test_mode]
    end

    # The durable messages captured, as PGMQ would hold them in `{namespace}_domain_events`.
    # @param namespace [String, Symbol, nil] only this namespace's queue
    # @return [Array<Hash{Symbol => Object}>] oldest first, frozen: `queue_name`, `msg_id`
    #   (counting from 1 per queue), `read_ct` (0), `enqueued_at` and `vt` (ISO 8601 strings),
    #   `message` (the event as consumers read it, with symbol keys) and `headers`
    #   (`event_id`, `event_name`, `correlation_id`)
    def captured_messages(namespace: nil)
      messages = Native.captured_messages
      return messages unless namespace

      queue_name = "#{namespace}_domain_events"
      messages.select { |message| message[:queue_name] == queue_name }
    end

    # Every event a test-mode system routed, whatever its delivery mode, in routing order.
    # @param delivery_mode [Symbol, String, nil] only events of this delivery mode
    # @return [Array<Hash{Symbol => Object}>] frozen events, as subscribers receive them
    def captured_events(delivery_mode: nil)
      events, = Native.captured_events_since(0)
      return events unless delivery_mode

      events.select { |event| event[:delivery_mode] == delivery_mode.to_s }
    end

    # Forgets every captured message and event.
    # @return [nil]
    def clear_captured
      Native.clear_captured
      nil
    end

    # @return [Integer] how many messages, and how many events, the capture keeps
    def capture_limit
      Native.capture_limit
    end

    # @return [Hash{Symbol => Integer}] `messages` and `events` discarded past
    #   {.capture_limit} since the last {.clear_captured}
    def capture_discarded
      Native.capture_discarded
    end
  end
end

TaskerEvents.extend(TaskerEvents::TestMode)
