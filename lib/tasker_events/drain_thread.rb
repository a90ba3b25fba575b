# frozen_string_literal: true

module TaskerEvents
  # The Ruby thread that calls subscribers. It waits inside the Rust core without the GVL, so
  # other threads run freely while no event is pending, and it wakes as soon as one is: there is
  # no polling interval. `Thread#kill`, `Thread#raise` and shutdown end the wait at once.
  class DrainThread
    # Most events taken from the core per wake-up.
    BATCH_SIZE = 256

    # @param registry [SubscriberRegistry]
    def initialize(registry)
      @registry = registry
      @thread = nil
    end

    # @return [self]
    def start
      @thread = Thread.new { run }
      @thread.name = "tasker_events-drain"
      @thread.report_on_exception = false
      self
    end

    # @return [Boolean]
    def alive?
      @thread&.alive? || false
    end

    # @return [Boolean] whether the caller is the drain thread
    def current?
      Thread.current.equal?(@thread)
    end

    # Waits for the thread to finish what the core had queued for it.
    # @param timeout [Numeric] seconds
    # @return [Boolean] whether it finished in time
    def join(timeout)
      return true if @thread.nil? || current?

      !@thread.join(timeout).nil?
    end

    private

    # Subscriber errors never get here (BaseSubscriber#dispatch handles them); anything else,
    # such as an exception sent with Thread#raise, is logged and the thread carries on, since
    # without it no Ruby subscriber would be called again. Thread#kill still ends it.
    def run
      loop do
        batch = Native.next_batch(BATCH_SIZE, nil)
        break if batch.nil?

        deliver(batch) unless batch.empty?
      rescue StandardError => e
        TaskerEvents.logger.error("tasker_events: drain thread caught #{e.class}: #{e.message}")
      end
    end

    # Acknowledges in an ensure block so that a thread killed mid-batch still accounts for
    # every event it took.
    def deliver(batch)
      handed = 0
      errors = 0
      batch.each do |event, subscriber_ids|
        errors += @registry.dispatch(event, subscriber_ids)
        handed += 1
      end
    ensure
      Native.ack(handed, errors, batch.size - handed)
    end
  end
end
