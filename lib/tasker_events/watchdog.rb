# frozen_string_literal: true

module TaskerEvents
  # Abandons a Ruby subscriber call that runs past its deadline by raising {SubscriberTimeout}
  # in the drain thread. One watchdog thread serves the drain thread. Arming and disarming take
  # a mutex and set a deadline; the watchdog is signalled only when it sits idle, and otherwise
  # wakes at the deadline it is waiting for and looks again, so a busy drain thread pays no
  # thread switch per call.
  class Watchdog
    DEFER = { SubscriberTimeout => :never }.freeze
    DELIVER = { SubscriberTimeout => :immediate }.freeze

    # @param target [Thread] the thread to interrupt
    # @param timeout [Float] seconds
    def initialize(target, timeout)
      @target = target
      @timeout = timeout
      @mutex = Mutex.new
      @changed = ConditionVariable.new
      @deadline = nil
      @call = 0
      @idle = false
      @thread = Thread.new { watch }
      @thread.name = "tasker_events-watchdog"
      @thread.report_on_exception = false
    end

    # Runs the block, raising {SubscriberTimeout} in it if it takes longer than the timeout.
    # A timeout that fires just after the block returned is discarded, never raised later.
    def guard(description, &)
      Thread.handle_interrupt(DEFER) do
        arm(description)
        Thread.handle_interrupt(DELIVER, &)
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
        @changed.signal if @idle
      end
    end

    def disarm
      @mutex.synchronize { @deadline = nil }
    end

    def discard_late_timeout
      return unless Thread.pending_interrupt?(SubscriberTimeout)

      Thread.handle_interrupt(SubscriberTimeout => :immediate) { Thread.pass }
    rescue SubscriberTimeout
      nil
    end

    def wait_for_a_call
      while @deadline.nil?
        @idle = true
        @changed.wait(@mutex)
      end
      @idle = false
    end

    def watch
      @mutex.synchronize do
        loop do
          wait_for_a_call
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
