# frozen_string_literal: true

module TaskerEvents
  # Abandons a Ruby subscriber call that runs past its deadline by raising {SubscriberTimeout}
  # in the drain thread. One watchdog thread serves the drain thread; arming and disarming cost
  # a mutex and a condition variable signal, not a thread per call.
  class Watchdog
    # @param target [Thread] the thread to interrupt
    # @param timeout [Float] seconds
    def initialize(target, timeout)
      @target = target
      @timeout = timeout
      @mutex = Mutex.new
      @changed = ConditionVariable.new
      @deadline = nil
      @call = 0
      @thread = Thread.new { watch }
      @thread.name = "tasker_events-watchdog"
      @thread.report_on_exception = false
    end

    # Runs the block, raising {SubscriberTimeout} in it if it takes longer than the timeout.
    # A timeout that fires just after the block returned is discarded, never raised later.
    def guard(description, &)
      Thread.handle_interrupt(SubscriberTimeout => :never) do
        arm(description)
        Thread.handle_interrupt(SubscriberTimeout => :immediate, &)
      ensure
        disarm
        discard_late_timeout
      end
    end

    def stop
      @thread.kill
    end

    private

    def arm(description)
      @mutex.synchronize do
        @call += 1
        @description = description
        @deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @timeout
        @changed.signal
      end
    end

    def disarm
      @mutex.synchronize do
        @deadline = nil
        @changed.signal
      end
    end

    def discard_late_timeout
      return unless Thread.pending_interrupt?(SubscriberTimeout)

      Thread.handle_interrupt(SubscriberTimeout => :immediate) { Thread.pass }
    rescue SubscriberTimeout
      nil
    end

    def watch
      @mutex.synchronize do
        loop do
          @changed.wait(@mutex) while @deadline.nil?
          call = @call
          remaining = @deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          if remaining.positive?
            @changed.wait(@mutex, remaining)
          elsif @call == call
            @target.raise(SubscriberTimeout, "#{@description} took longer than #{@timeout}s")
            @deadline = nil
          end
        end
      end
    end
  end
end
