# frozen_string_literal: true

module TaskerEvents
  # The Ruby side of the process's event system: starts and stops the Rust core with its
  # configuration and templates, the drain thread, and the exit hook that drains at exit.
  # {TaskerEvents.start} and {TaskerEvents.shutdown} delegate here.
  class EventSystem
    # @return [Configuration] the settings of the running (or last) system
    attr_reader :configuration

    # @return [DrainThread, nil] the running system's drain thread
    # @api private
    attr_reader :drain_thread

    # @return [ExitRequest] where the drain thread hands an `exit` called by user code
    # @api private
    attr_reader :exit_request

    def initialize
      @mutex = Mutex.new
      @drain_thread = nil
      @configuration = Configuration.new
      @template_paths = []
      @log_format = :text
      @exit_hook_installed = false
      @exit_request = ExitRequest.new
    end

    # @return [Boolean] true when this call started the system
    def start(templates:, config:, environment:, strict_publishers:, log_format:, settings:)
      configuration = configuration_for(config, environment, settings)
      paths = TaskTemplate.expand(templates)
      @mutex.synchronize do
        return false if Native.running?

        # Checked before the core starts, so a refusal leaves nothing half started.
        check_publishers(paths, strict_publishers)
        return false unless Native.start(configuration.to_native, paths)

        @configuration = configuration
        @template_paths = paths
        @log_format = log_format
        start_drain_thread(LogWriter.new(log_format))
        install_exit_hook
        true
      end
    end

    # @return [Hash{Symbol => Integer}] drained, dropped, duration_ms
    # @raise [SystemExit] when subscriber code called `exit` while it ran
    def shutdown
      @exit_request.around_shutdown do
        @mutex.synchronize do
          started = now
          before = ruby_settled
          report, lost = stop(started + drain_timeout)
          summarize(report, ruby_settled - before, lost, started)
        end
      end
    end

    # In a forked child: forgets the parent's system (its events stay the parent's to deliver)
    # and starts a fresh one with the same settings, templates and subscribers, counting from
    # zero. A no-op anywhere else.
    # @return [Boolean] whether a system was started in this child
    def after_fork
      return false unless Native.forked?

      # Held by a thread of the parent, a mutex would stay locked here.
      @mutex = Mutex.new
      @drain_thread = nil
      return false unless Native.forget_parent_system

      @mutex.synchronize do
        Native.start(@configuration.to_native, @template_paths)
        start_drain_thread(LogWriter.new(@log_format))
      end
      true
    end

    # @return [Boolean] whether the caller is the drain thread
    def drain_thread_current?
      @drain_thread&.current? || false
    end

    private

    # Ruby publishers and subscribers finish first, while the router still takes their events;
    # then the core drains and stops, then the drain thread takes what is left.
    def stop(deadline)
      Native.flush(remaining(deadline)) if @drain_thread && !@drain_thread.current?
      report = Native.shutdown
      [report, join_drain_thread(remaining(deadline))]
    end

    def configuration_for(config, environment, settings)
      return Configuration.new(**settings) unless config

      Configuration.load(config, environment || ENV.fetch("TASKER_ENV", "development"), **settings)
    end

    # Events still queued at exit would otherwise vanish with the process.
    def install_exit_hook
      return if @exit_hook_installed

      @exit_hook_installed = true
      at_exit { TaskerEvents.shutdown }
    end

    # Adds the drain thread's part to the core's report.
    def summarize(report, ruby_settled, lost, started)
      report.merge(drained: report[:drained] + ruby_settled - lost,
                   dropped: report[:dropped] + lost,
                   duration_ms: ((now - started) * 1000).round)
    end

    def drain_timeout
      @configuration.settings[:shutdown_drain_timeout_ms] / 1000.0
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def check_publishers(paths, strict)
      registry = PublisherRegistry.instance
      named = paths.flat_map { |path| TaskTemplate.load(path).publisher_names }.uniq.sort
      unknown = named.reject { |name| registry.registered?(name) }
      return if unknown.empty?

      message = "task templates name publishers that are not registered: #{unknown.join(", ")}"
      raise UnknownPublisherError, message if strict

      TaskerEvents.logger.warn("tasker_events: #{message}; their events use the default publisher")
    end

    def start_drain_thread(log_writer)
      return unless @configuration.settings[:ffi_integration_enabled]

      timeout = @configuration.settings[:dispatch_timeout_ms] / 1000.0
      @drain_thread = DrainThread.new(Native.drain_queue, SubscriberRegistry.instance,
                                      PublisherRunner.new, dispatch_timeout: timeout,
                                                           log_writer:).start
      SubscriberRegistry.instance.attach_all
    end

    def remaining(deadline)
      [deadline - now, 0].max
    end

    def ruby_settled
      stats = Native.stats
      %i[ruby_subscribers ruby_publishers].sum do |path|
        stats[path][:delivered] + stats[path][:dropped].values.sum
      end
    end

    # Whatever the drain thread did not take in time (or could not, having been killed) is
    # counted as dropped, so the counters still add up.
    # @return [Integer] how many items were dropped
    def join_drain_thread(timeout)
      return 0 unless @drain_thread

      @drain_thread.join(timeout)
      lost = @drain_thread.abandon
      # Lines logged while the thread finished; later ones go to standard error.
      @drain_thread.write_logs
      Native.detach_logs
      @drain_thread = nil
      if lost.positive? && @configuration.settings[:log_dropped_events]
        TaskerEvents.logger.warn("tasker_events: #{lost} drain thread items dropped at shutdown")
      end
      lost
    end
  end
end
