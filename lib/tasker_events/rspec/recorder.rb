# frozen_string_literal: true

module TaskerEvents
  module RSpec
    # Records the events published while a block runs, in every delivery mode, from the Rust
    # core's log of routed events in test mode.
    #
    # It never subscribes: a subscriber of its own would be counted in
    # `TaskerEvents.stats[:ruby_subscribers]` and would share the drain thread with the
    # subscribers under test. It flushes before the block, so that events still in flight from
    # earlier code are not counted as the block's, and after it, so that events the block set
    # off (declared events through publishers on the drain thread, durable writes) are.
    #
    # @example
    #   recording = TaskerEvents::RSpec::Recorder.new.record { checkout.complete! }
    #   recording.in_mode(:fast).map { |event| event[:event_name] } # => ["order.completed"]
    class Recorder
      # @param flush_timeout [Numeric] seconds each flush waits at most
      def initialize(flush_timeout: TaskerEvents::RSpec.flush_timeout)
        @flush_timeout = flush_timeout
      end

      # Runs the block and returns what it published.
      # @return [Recording]
      # @raise [Error] when TaskerEvents is not running in test mode
      def record
        ensure_test_mode!
        settled = flush
        mark = Native.capture_mark
        yield
        settled = flush && settled
        events, missing = Native.captured_events_since(mark)
        Recording.new(events:, missing:, settled:, flush_timeout: @flush_timeout)
      end

      # @param delivery_mode [Symbol, nil] only this mode's events
      # @return [Array<Hash>] every event captured since the capture was last cleared
      def events(delivery_mode: nil)
        flush
        TaskerEvents.captured_events(delivery_mode:)
      end

      # @param namespace [String, nil] only this namespace's queue
      # @return [Array<Hash>] the durable messages captured since the capture was last cleared
      def messages(namespace: nil)
        flush
        TaskerEvents.captured_messages(namespace:)
      end

      private

      def flush
        TaskerEvents.flush(timeout: @flush_timeout)
      end

      # Outside test mode nothing is logged, so a negated expectation would pass whatever the
      # block did.
      def ensure_test_mode!
        return if TaskerEvents.test_mode?

        state = TaskerEvents.started? ? "runs without test_mode" : "is not running"
        raise Error, "recording domain events needs test mode, and TaskerEvents #{state}: tag " \
                     "the example :#{TAG} or call TaskerEvents::RSpec.start_test_mode! first"
      end
    end
  end
end
