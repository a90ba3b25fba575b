# frozen_string_literal: true

module TaskerEvents
  # The Ruby thread that calls subscribers and publishers. It waits inside the Rust core
  # without the GVL, so other threads run freely while nothing is pending, and it wakes as soon
  # as something is: there is no polling interval. `Thread#kill`, `Thread#raise` and shutdown
  # end the wait at once.
  #
  # A subscriber that runs past `dispatch_timeout_ms` is abandoned for that event (logged and
  # counted as a timeout) so that the others are not held up.
  class DrainThread
    # Most items taken from the core per wake-up.
    BATCH_SIZE = 256

    # @param queue [Native::DrainQueue] the started system's queue; a thread that outlives its
    #   system keeps draining only that system's (closed) queue, then ends
    # @param registry [SubscriberRegistry]
    # @param publishers [PublisherRunner]
    # @param dispatch_timeout [Float] seconds a subscriber may take for one event
    # @param log_writer [LogWriter] writes the core's log lines
    def initialize(queue, registry, publishers, dispatch_timeout:, log_writer: LogWriter.new)
      @queue = queue
      @log_writer = log_writer
      @registry = registry
      @publishers = publishers
      @dispatch_timeout = dispatch_timeout
      @thread = nil
      @finished = false
      @abandoned = false
    end

    # @return [self]
    def start
      running = Queue.new
      @thread = Thread.new { run(running) }
      @thread.name = "tasker_events-drain"
      @thread.report_on_exception = false
      @watchdog = Watchdog.new(@thread, @dispatch_timeout)
      # A thread killed before it ran its block would run no ensure clause, and so would not
      # be replaced; once it has started, it always is.
      running.pop
      self
    end

    # @return [Thread, nil]
    # @api private
    attr_reader :thread

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

      finished = !@thread.join(timeout).nil?
      @watchdog&.stop
      finished
    end

    # Writes the core's waiting log lines to the logger.
    def write_logs
      @log_writer.write(*@queue.take_logs)
    end

    # Counts what is still queued, or taken and unfinished, as dropped; for a shutdown that
    # cannot wait any longer. A late acknowledgement from this thread is then ignored.
    # @return [Integer] how many items were dropped
    def abandon
      @abandoned = true
      @queue.abandon
    end

    private

    # Subscriber and publisher errors never get here (their runners handle them); anything
    # else, such as an exception sent with Thread#raise, is logged and the thread carries on,
    # since without it no Ruby subscriber would be called again. Thread#kill still ends it.
    def run(running)
      running << true
      loop do
        batch = @queue.next_batch(BATCH_SIZE, nil)
        write_logs
        break if batch.nil?

        deliver(batch) unless batch.empty?
      rescue *USER_CODE_ERRORS => e
        TaskerEvents.logger.error("tasker_events: drain thread caught #{e.class}: #{e.message}")
      end
      @finished = true
    ensure
      replace_killed_thread unless @finished || @abandoned
    end

    # Thread#kill (or an exception nothing rescued) ended the thread while its system still
    # runs: without a replacement no Ruby subscriber would be called again. What the killed
    # thread had taken is already counted as dropped.
    def replace_killed_thread
      TaskerEvents.logger.warn("tasker_events: the drain thread was killed; starting another")
      @watchdog&.stop
      start
    end

    # Acknowledges in an ensure block so that a thread killed mid-batch still accounts for
    # every item it took.
    def deliver(batch)
      counts = { events: 0, errors: 0, timeouts: 0, jobs: 0 }
      batch.each do |item|
        if item.is_a?(Native::PublishJob)
          run_publisher(item)
          counts[:jobs] += 1
        else
          call_subscribers(*item, counts)
          counts[:events] += 1
        end
      end
    ensure
      acknowledge(batch, counts)
    end

    def acknowledge(batch, counts)
      jobs_taken = batch.count { |item| item.is_a?(Native::PublishJob) }
      events_taken = batch.size - jobs_taken
      @queue.ack(counts[:events], counts[:errors], counts[:timeouts],
                 events_taken - counts[:events])
      @queue.ack_jobs(counts[:jobs], jobs_taken - counts[:jobs])
    end

    def call_subscribers(event, subscriber_ids, counts)
      subscriber_ids.each do |id|
        subscriber = @registry.subscriber(id)
        next unless subscriber

        counts[:errors] += 1 unless guarded_dispatch(subscriber, event)
      rescue SubscriberTimeout => e
        counts[:timeouts] += 1
        subscriber.report_timeout(event, e)
      rescue SystemExit => e
        forward_exit(e)
      end
    end

    def run_publisher(job)
      @publishers.run(job)
    rescue SystemExit => e
      forward_exit(e)
    end

    # Subscriber or publisher code called `exit`: the process exits as asked, once what is
    # queued is delivered. Ending this thread instead would drop all of it.
    def forward_exit(exit)
      TaskerEvents.logger.warn("tasker_events: subscriber or publisher code called " \
                               "exit(#{exit.status}); the process exits once queued events " \
                               "are delivered")
      TaskerEvents.event_system.exit_request.request(exit)
    end

    def guarded_dispatch(subscriber, event)
      @watchdog.guard(subscriber.class.name || "subscriber") { subscriber.dispatch(event) }
    end
  end
end
